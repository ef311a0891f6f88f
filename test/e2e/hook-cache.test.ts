/*
 * The hook launcher's code caches (scripts/hook-launcher.js), on a private build of the hook so
 * that the checkout's dist/.cache is left alone: a deep cache is named by the plugins that ran
 * when it was made, a run naming a plugin it lacks replaces it with the union, and a run it
 * covers writes nothing.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describePrivileged } from '../helpers/privileged';
import { emptyCgroup, NODE, onCleanup, ROOT, runCleanups, tempDir, testHost, TestHost, uniq } from '../helpers/kernel';
import { cgroupWithProcess } from '../helpers/task';
import { destroyContainer } from '../../lib/pipeline';
import { silentLog } from '../../lib/log';

const { buildHook } = require('../../scripts/bundle.js') as { buildHook(entry: string, outDir: string): Promise<void> };

describePrivileged('the hook launcher caches compiled code per set of plugins', () => {
  let host: TestHost;
  let dist: string;
  beforeAll(async () => {
    host = testHost();
    const dir = tempDir('tw-hook-build-');
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    dist = join(dir, 'dist');
    await buildHook(join(ROOT, 'hooks', 'taskwire-hook.ts'), dist);
  }, 60000);
  afterAll(runCleanups);

  /** createRuntime of a new container through the private build; its exit code and stderr. */
  async function create(annotations: Record<string, string>): Promise<{ id: string; code: number; stderr: string; stop: () => void }> {
    const id = uniq('tw.cache');
    const c = await cgroupWithProcess();
    onCleanup(() => destroyContainer(host.layout, id, silentLog()));
    const state = JSON.stringify({ ociVersion: '1.0.2', id, pid: c.pid, status: 'creating', bundle: '/tmp', annotations });
    // The build lives outside the checkout: it is told where the BPF objects are.
    const r = spawnSync(NODE, [join(dist, 'taskwire-hook.js'), 'createRuntime', '--config', host.configPath], {
      input: state,
      env: { TASKWIRE_BPF_DIR: join(ROOT, 'build', 'bpf') },
      cwd: '/',
      encoding: 'utf8',
    });
    return { id, code: r.status ?? -1, stderr: r.stderr, stop: () => emptyCgroup(c.cgroup) };
  }

  const caches = (stage: string) =>
    readdirSync(join(dist, '.cache'))
      .filter((f) => f.includes(`-${stage}-`) && !f.endsWith('.tmp'))
      .map((f) => f.replace(/^.*-(deep|shallow)/, '$1'))
      .sort();
  const mtimes = () => readdirSync(join(dist, '.cache')).map((f) => `${f}@${statSync(join(dist, '.cache', f)).mtimeMs}`);

  test('a deep cache grows to the union of the plugins its runs named, then stays', async () => {
    // The host's first ip-per-task container loads the shared object: an atypical run, no cache.
    expect((await create({ 'io.taskwire.ip-per-task': 'auto' })).code).toBe(0);
    expect((await create({ 'io.taskwire.ip-per-task': 'auto' })).code).toBe(0);
    expect(caches('createRuntime')).toEqual(['deep~ip-per-task']);

    // sysctl is not in that cache: this run compiles its code and writes the union in its place.
    const s = await create({ 'io.taskwire.sysctl': 'read-only' });
    expect(s).toMatchObject({ code: 0, stderr: '' });
    expect(caches('createRuntime')).toEqual(['deep~ip-per-task+sysctl']);

    // Covered from now on: nothing is written again.
    const before = mtimes();
    expect((await create({ 'io.taskwire.ip-per-task': 'auto' })).code).toBe(0);
    expect((await create({ 'io.taskwire.sysctl': 'read-only' })).code).toBe(0);
    expect(mtimes()).toEqual(before);
  }, 60000);

  test('a refused annotation names no cache', async () => {
    const r = await create({ 'io.taskwire.nosuch': '1' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no such taskwire plugin/);
    expect(readdirSync(join(dist, '.cache')).filter((f) => f.includes('nosuch'))).toEqual([]);
  }, 30000);
});
