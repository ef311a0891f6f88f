/*
 * Privileged suites: run as root against the real kernel. Off CI a machine that cannot run them
 * skips them with the reason; in CI (CI=true) the same suite fails, so nothing passes by not
 * running.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const BIN_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

function haveProgram(name: string): boolean {
  return BIN_DIRS.some((d) => existsSync(join(d, name)));
}

export function privilegeProblem(needs: string[] = []): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  if (!existsSync('/proc/self/mountinfo')) return 'needs /proc';
  for (const bin of needs) if (!haveProgram(bin)) return `needs ${bin} (run scripts/setup.sh)`;
  return null;
}

export function describePrivileged(name: string, fn: () => void, needs: string[] = []): void {
  const problem = privilegeProblem(needs);
  if (!problem) return describe(name, fn);
  if (process.env.CI === 'true')
    return describe(name, () => {
      test(`can run (${problem})`, () => {
        throw new Error(`privileged suite "${name}" cannot run in CI: ${problem}`);
      });
    });
  return describe.skip(`${name} [skipped: ${problem}]`, fn);
}
