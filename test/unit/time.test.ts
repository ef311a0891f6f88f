import fc from 'fast-check';
import { isoTime } from '../../lib/time';

describe('isoTime', () => {
  test('writes what Date.prototype.toISOString writes', () => {
    fc.assert(fc.property(fc.integer({ min: -62198755200000, max: 253402300799999 }), (ms) => isoTime(ms) === new Date(ms).toISOString()), { numRuns: 5000 });
  });
  test.each([0, 1, 999, 1000, 951782400000, 1795276800000, 253402300799999])('at %d ms', (ms) => {
    expect(isoTime(ms)).toBe(new Date(ms).toISOString());
  });
  test('defaults to now', () => {
    const before = Date.now();
    const t = Date.parse(isoTime());
    expect(t).toBeGreaterThanOrEqual(before - 1);
    expect(t).toBeLessThanOrEqual(Date.now());
  });
});
