/*
 * Summaries of benchmark samples: median and quartiles, and how sure a median is.
 *
 * A goal such as "≤ 1.3×" is judged on the median of per-round ratios. On this shared machine
 * two runs of the same build differ by ±0.05×, so a median near the goal says little alone: the
 * confidence interval of the median says whether the goal is met, missed, or within the run's
 * own uncertainty ("on the line"). The interval is distribution-free (order statistics, from the
 * binomial distribution of how many samples fall below the true median), as the per-round ratios
 * are skewed by the machine's bursts, not normal. simple-statistics gives the quantiles and the
 * binomial distribution; it has no interval for a median, which is the few lines below.
 */
import { binomialDistribution, quantileSorted } from 'simple-statistics';

export interface Stats {
  n: number;
  median: number;
  q1: number;
  q3: number;
  iqr: number;
  min: number;
  max: number;
}

export function stats(samples: number[]): Stats {
  if (samples.length === 0) throw new Error('no samples');
  const s = [...samples].sort((a, b) => a - b);
  const q1 = quantileSorted(s, 0.25);
  const q3 = quantileSorted(s, 0.75);
  return { n: s.length, median: quantileSorted(s, 0.5), q1, q3, iqr: q3 - q1, min: s[0], max: s[s.length - 1] };
}

export interface MedianInterval {
  /** The coverage asked for (0.95) and the one the order statistics give (at least that). */
  level: number;
  coverage: number;
  lo: number;
  hi: number;
}

/**
 * The shortest symmetric interval [x(k), x(n+1-k)] (1-based order statistics) that covers the
 * median with at least `level` probability; undefined when even [min, max] covers less (n < 6 at 95%).
 */
export function medianInterval(samples: number[], level = 0.95): MedianInterval | undefined {
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return undefined;
  // X, the number of samples below the true median, is Binomial(n, 1/2); [x(k), x(n+1-k)]
  // covers the median unless X < k or X > n-k: coverage 1 - 2·P(X ≤ k-1). The largest k that
  // keeps it at or above `level` gives the narrowest such interval.
  const pmf = binomialDistribution(n, 0.5);
  if (!pmf) throw new Error(`no binomial distribution for ${n} samples`);
  let below = 0; // P(X ≤ k-1)
  let best: { k: number; coverage: number } | undefined;
  for (let k = 1; k <= Math.floor((n + 1) / 2); k++) {
    below += pmf[k - 1] ?? 0;
    const coverage = 1 - 2 * below;
    if (coverage < level) break;
    best = { k, coverage };
  }
  if (!best) return undefined;
  return { level, coverage: best.coverage, lo: s[best.k - 1], hi: s[n - best.k] };
}

export type Verdict = 'met' | 'not met' | 'on the line';

/**
 * A goal on the median, judged with its interval: met or not met when the whole interval is on
 * one side of the bound, "on the line" when the bound lies inside it. Without an interval (too
 * few samples) the median alone decides.
 */
export function verdict(goal: { op: '<=' | '>='; value: number }, median: number, ci: MedianInterval | undefined): Verdict {
  const ok = (x: number) => (goal.op === '<=' ? x <= goal.value : x >= goal.value);
  if (!ci) return ok(median) ? 'met' : 'not met';
  const [worst, best] = goal.op === '<=' ? [ci.hi, ci.lo] : [ci.lo, ci.hi];
  if (ok(worst)) return 'met';
  if (!ok(best)) return 'not met';
  return 'on the line';
}
