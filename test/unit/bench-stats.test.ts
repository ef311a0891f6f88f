/* bench/stats.ts: the confidence interval of a median and the goal verdicts the benches print. */
import fc from 'fast-check';
import { medianInterval, stats, verdict } from '../../bench/stats';

const ranks = (n: number) => Array.from({ length: n }, (_, i) => i + 1); // x(i) = i

/** P(X ≤ k), X ~ Binomial(n, 1/2), exactly: sum of C(n, i) over 2^n, in BigInt. */
function exactCdf(n: number, k: number): number {
  let c = 1n;
  let sum = 0n;
  for (let i = 0; i <= k; i++) {
    if (i > 0) c = (c * BigInt(n - i + 1)) / BigInt(i);
    sum += c;
  }
  return Number((sum * 10n ** 15n) / 2n ** BigInt(n)) / 1e15;
}

describe('medianInterval', () => {
  test('the textbook order statistics: n=20 → x(6)..x(15), n=100 → x(40)..x(61)', () => {
    const a = medianInterval(ranks(20))!;
    expect([a.lo, a.hi]).toEqual([6, 15]);
    expect(a.coverage).toBeCloseTo(0.9586, 4);
    const b = medianInterval(ranks(100))!;
    expect([b.lo, b.hi]).toEqual([40, 61]);
    expect(b.coverage).toBeCloseTo(0.9648, 4);
  });

  test('too few samples for 95%: none below 6, [min, max] at 6', () => {
    expect(medianInterval(ranks(5))).toBeUndefined();
    expect(medianInterval([])).toBeUndefined();
    const six = medianInterval([3, 1, 6, 2, 5, 4])!;
    expect([six.lo, six.hi]).toEqual([1, 6]);
    expect(six.coverage).toBeCloseTo(1 - 2 / 64, 10);
  });

  test('is the narrowest symmetric interval with coverage >= the level (exact binomial)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 6, max: 400 }), fc.constantFrom(0.9, 0.95, 0.99), (n, level) => {
        const ci = medianInterval(ranks(n), level);
        if (!ci) return 1 - 2 * exactCdf(n, 0) < level;
        const k = ci.lo;
        expect(ci.hi).toBe(n + 1 - k);
        expect(1 - 2 * exactCdf(n, k - 1)).toBeGreaterThanOrEqual(level - 1e-9);
        expect(ci.coverage).toBeCloseTo(1 - 2 * exactCdf(n, k - 1), 9);
        // One rank narrower falls below the level (or would cross the middle).
        if (k + 1 <= Math.floor((n + 1) / 2)) expect(1 - 2 * exactCdf(n, k)).toBeLessThan(level);
        return true;
      }),
    );
  });

  test('works on unsorted samples and leaves them as they were', () => {
    const s = [5, 1, 4, 2, 3, 9, 8, 7, 6, 10];
    const copy = [...s];
    expect(medianInterval(s)).toMatchObject({ lo: 2, hi: 9 });
    expect(s).toEqual(copy);
  });
});

describe('verdict', () => {
  const le = { op: '<=' as const, value: 1.3 };
  const ge = { op: '>=' as const, value: 0.97 };
  const ci = (lo: number, hi: number) => ({ level: 0.95, coverage: 0.96, lo, hi });

  test('met, not met, on the line, for both kinds of bound', () => {
    expect(verdict(le, 1.25, ci(1.22, 1.28))).toBe('met');
    expect(verdict(le, 1.35, ci(1.31, 1.4))).toBe('not met');
    expect(verdict(le, 1.28, ci(1.26, 1.31))).toBe('on the line');
    expect(verdict(le, 1.3, ci(1.3, 1.3))).toBe('met');
    expect(verdict(ge, 0.99, ci(0.98, 1.0))).toBe('met');
    expect(verdict(ge, 0.96, ci(0.95, 0.965))).toBe('not met');
    expect(verdict(ge, 0.97, ci(0.96, 0.98))).toBe('on the line');
  });

  test('without an interval the median alone decides', () => {
    expect(verdict(le, 1.29, undefined)).toBe('met');
    expect(verdict(ge, 0.96, undefined)).toBe('not met');
  });
});

describe('stats', () => {
  test('median and quartiles by linear interpolation', () => {
    expect(stats([4, 1, 3, 2])).toEqual({ n: 4, median: 2.5, q1: 1.75, q3: 3.25, iqr: 1.5, min: 1, max: 4 });
    expect(() => stats([])).toThrow('no samples');
  });
});
