/*
 * The hook launcher's code caches (scripts/hook-launcher.js), on a private build of the hook so
 * that the checkout's dist/.cache is left alone: a createRuntime's deep caches are kept per set
 * of plugins asked for, a run whose set has one writes nothing, their number is bounded, and a
 * cache is only ever named by plugins the hook ran.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, readdirSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
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

  test("a createRuntime's deep caches are kept per set of plugins asked for", async () => {
    // The host's first ip-per-task container loads the shared object: an atypical run, no cache.
    expect((await create({ 'io.taskwire.ip-per-task': 'auto' })).code).toBe(0);
    expect((await create({ 'io.taskwire.ip-per-task': 'auto' })).code).toBe(0);
    expect(caches('createRuntime')).toEqual(['deep~ip-per-task']);

    // sysctl's code is not in that cache: this run compiles it and keeps a cache of its own.
    expect(await create({ 'io.taskwire.sysctl': 'read-only' })).toMatchObject({ code: 0, stderr: '' });
    expect(caches('createRuntime')).toEqual(['deep~ip-per-task', 'deep~sysctl']);

    // Each set finds its own from now on: nothing is written again.
    const before = mtimes();
    expect((await create({ 'io.taskwire.ip-per-task': 'auto' })).code).toBe(0);
    expect((await create({ 'io.taskwire.sysctl': 'read-only' })).code).toBe(0);
    expect(mtimes()).toEqual(before);

    // Both together are a third set.
    expect((await create({ 'io.taskwire.sysctl': 'read-only', 'io.taskwire.ip-per-task': 'auto' })).code).toBe(0);
    expect(caches('createRuntime')).toEqual(['deep~ip-per-task', 'deep~ip-per-task+sysctl', 'deep~sysctl']);
  }, 60000);

  test('a cache V8 rejects is written again by the next run that uses it', async () => {
    const dir = join(dist, '.cache');
    const file = readdirSync(dir).find((f) => f.endsWith('-createRuntime-deep~ip-per-task'))!;
    writeFileSync(join(dir, file), 'not a code cache');
    expect((await create({ 'io.taskwire.ip-per-task': 'auto' })).code).toBe(0);
    expect(statSync(join(dir, file)).size).toBeGreaterThan(100000);
  }, 30000);

  test('at most eight sets are kept, the oldest go first; temp files of dead hooks go too', async () => {
    const dir = join(dist, '.cache');
    const real = readdirSync(dir).find((f) => f.endsWith('-createRuntime-deep~ip-per-task'))!;
    const prefix = real.slice(0, -'ip-per-task'.length);
    // Made long ago (a day per step back), for sets this test never asks for: eight in all.
    const old = ['twfw', 'netns', 'netns+twfw', 'netns+sysctl', 'sysctl+twfw', 'netns+sysctl+twfw', 'localhost-redirect'].slice(0, 8 - caches('createRuntime').filter((c) => c.startsWith('deep~')).length);
    expect(old.length).toBeGreaterThanOrEqual(2);
    old.forEach((set, i) => {
      copyFileSync(join(dir, real), join(dir, prefix + set));
      const t = Date.now() / 1000 - 86400 * (old.length - i);
      utimesSync(join(dir, prefix + set), t, t);
    });
    const dead = spawnSync('true').pid;
    writeFileSync(join(dir, `${prefix}twfw.${dead}.tmp`), 'half a cache');

    // Nine sets with this one: the oldest planted one goes, and the dead hook's temp file.
    const r = await create({ 'io.taskwire.ip-per-task': 'auto', 'io.taskwire.localhost-redirect': 'true' });
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const deep = caches('createRuntime').filter((c) => c.startsWith('deep~'));
    expect(deep).toHaveLength(8);
    expect(deep).toContain('deep~ip-per-task+localhost-redirect');
    expect(deep).not.toContain('deep~twfw');
    expect(deep).toContain('deep~netns');
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  }, 30000);

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
