/* The per-container lock (lib/state/lock.ts withTransientLock): its file is unlinked by each
 * holder before it lets go, yet holders never overlap. Children of the real module race for one
 * lock; each checks that nobody else is inside (an O_EXCL marker) and bumps a counter. No
 * privilege needed. */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import { NODE, ROOT, runCleanups, tempDir } from '../helpers/kernel';

afterAll(runCleanups);

const CHILD = `
const fs = require('node:fs');
const { withTransientLock } = require('./lib/state/lock');
const [lock, counter, inside, rounds] = process.argv.slice(2);
for (let i = 0; i < Number(rounds); i++)
  withTransientLock(lock, () => {
    fs.writeFileSync(inside, String(process.pid), { flag: 'wx' }); // EEXIST: two holders at once
    const n = Number(fs.readFileSync(counter, 'utf8'));
    for (const end = Date.now() + 1; Date.now() < end; ); // hold it a moment
    fs.writeFileSync(counter, String(n + 1));
    fs.unlinkSync(inside);
  });
`;

test('holders of a lock whose file comes and goes never overlap, and the file is gone after the last', async () => {
  const dir = tempDir('tw-lock-');
  const script = join(dir, 'child.js');
  buildSync({ stdin: { contents: CHILD, resolveDir: ROOT, loader: 'js' }, bundle: true, platform: 'node', external: ['koffi'], outfile: script, logLevel: 'silent' });
  const lock = join(dir, 'locks', 'c.lock');
  const counter = join(dir, 'counter');
  writeFileSync(counter, '0');
  const children = Array.from({ length: 6 }, () =>
    spawn(NODE, [script, lock, counter, join(dir, 'inside'), '40'], { env: { NODE_PATH: join(ROOT, 'node_modules') }, stdio: ['ignore', 'ignore', 'pipe'] }),
  );
  const results = await Promise.all(
    children.map(
      (c) =>
        new Promise<{ code: number | null; stderr: string }>((resolve) => {
          let stderr = '';
          c.stderr!.on('data', (d) => (stderr += d));
          c.on('close', (code) => resolve({ code, stderr }));
        }),
    ),
  );
  expect(results).toEqual(Array(6).fill({ code: 0, stderr: '' }));
  expect(readFileSync(counter, 'utf8')).toBe('240');
  expect(existsSync(lock)).toBe(false);
});
