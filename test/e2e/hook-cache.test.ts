/*
 * The hook launcher's code caches (scripts/hook-launcher.js), on a private build of the hook so
 * that the checkout's dist/.cache is left alone: a createRuntime's deep cache is named by the
 * plugins that ran when it was made, a run of a plugin it lacks replaces it with the union, a run
 * it covers writes nothing, and no annotation ever names a cache.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describePrivileged } from '../helpers/privileged';
import { emptyCgroup, NODE, onCleanup, ROOT, runCleanups, tempDir, testHost, TestHost, uniq } from '../helpers/kernel';
import { cgroupWithProcess } from '../helpers/task';
import { destroyContainer } from '../../lib/pipeline';
import { silentLog } from '../../lib/log';
import { readRecord } from '../../lib/state/record';

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

  /** One stage of the private build's hook for `state`; its exit code and stderr. */
  function run(stage: string, state: Record<string, unknown>): { code: number; stderr: string } {
    // The build lives outside the checkout: it is told where the BPF objects are.
    const r = spawnSync(NODE, [join(dist, 'taskwire-hook.js'), stage, '--config', host.configPath], {
      input: JSON.stringify({ ociVersion: '1.0.2', status: 'creating', bundle: '/tmp', ...state }),
      env: { TASKWIRE_BPF_DIR: join(ROOT, 'build', 'bpf') },
      cwd: '/',
      encoding: 'utf8',
    });
    return { code: r.status ?? -1, stderr: r.stderr };
  }

  /** createRuntime of a new container through the private build. */
  async function create(annotations: Record<string, string>): Promise<{ id: string; code: number; stderr: string; stop: () => Promise<void> }> {
    const id = uniq('tw.cache');
    const c = await cgroupWithProcess();
    onCleanup(() => destroyContainer(host.layout, id, silentLog()));
    return { id, ...run('createRuntime', { id, pid: c.pid, annotations }), stop: () => emptyCgroup(c.cgroup) };
  }

  const caches = (stage: string) =>
    readdirSync(join(dist, '.cache'))
      .filter((f) => f.includes(`-${stage}-`) && !f.endsWith('.tmp'))
      .map((f) => f.replace(/^.*-(deep|shallow)/, '$1'))
      .sort();
  const mtimes = () => readdirSync(join(dist, '.cache')).map((f) => `${f}@${statSync(join(dist, '.cache', f)).mtimeMs}`);

  test("a createRuntime's deep cache grows to the union of the plugins that ran, then stays", async () => {
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

  test('a cache is never named after an annotation: a refused createRuntime writes none, poststop caches have no plugins', async () => {
    const r = await create({ 'io.taskwire.nosuch': '1' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no such taskwire plugin/);

    // poststop undoes whatever a record says without loading plugins, whatever the annotations name.
    const c = await create({ 'io.taskwire.ip-per-task': 'auto' });
    expect(c.code).toBe(0);
    await c.stop();
    const made = { 'io.taskwire.ip-per-task': 'auto', [`io.taskwire.${'a'.repeat(32)}`]: 'x' };
    expect(run('poststop', { id: c.id, status: 'stopped', annotations: made })).toEqual({ code: 0, stderr: '' });
    expect(readRecord(host.layout, c.id)).toBeUndefined(); // it did undo the container: a deep run
    expect(caches('poststop')).toEqual(['deep~']);
    expect(readdirSync(join(dist, '.cache')).filter((f) => /nosuch|aaaa/.test(f))).toEqual([]);
  }, 30000);
});
