/* Crash-safe writes (lib/state/atomic.ts): a write the kernel cuts short (a full /run, a file
 * size limit) fails and leaves the old file, never a short one under the real name. Runs the
 * real module in a child whose file size limit is 2 KiB (Node ignores SIGXFSZ, so a write
 * past it returns short, then EFBIG). No privilege needed. */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import { NODE, ROOT, runCleanups, tempDir } from '../helpers/kernel';

afterAll(runCleanups);

test('a short write is an error: the old file stays and no temp file is left', () => {
  const dir = tempDir('tw-atomic-');
  const target = join(dir, 'record.json');
  writeFileSync(target, '{"old":true}');
  const script = join(dir, 'write.js');
  buildSync({
    stdin: { contents: `require('./lib/state/atomic').writeFileAtomic(process.argv[2], 'x'.repeat(3000));`, resolveDir: ROOT, loader: 'js' },
    bundle: true,
    platform: 'node',
    outfile: script,
    logLevel: 'silent',
  });
  const r = spawnSync('bash', ['-c', 'ulimit -f 2 && exec "$0" "$@"', NODE, script, target], { encoding: 'utf8' });
  expect(r.status).not.toBe(0);
  expect(r.stderr).toMatch(/EFBIG/);
  expect(readFileSync(target, 'utf8')).toBe('{"old":true}');
  expect(readdirSync(dir).sort()).toEqual(['record.json', 'write.js']);
});
