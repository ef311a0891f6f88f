/*
 * The hook executable against docs/HOOK-CONTRACT.md, run the way runtimes run it: the bundled
 * dist/taskwire-hook.js under our node by absolute path, an empty environment, cwd /, the state
 * on stdin without a trailing newline. Each case is one promise of the contract.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describePrivileged } from '../helpers/privileged';
import { cgroupPrograms, emptyCgroup, NODE, onCleanup, runCleanups, testHost, TestHost, uniq } from '../helpers/kernel';
import { HOOK_BIN } from '../helpers/hook';
import { cgroupWithProcess } from '../helpers/task';
import { destroyContainer } from '../../lib/pipeline';
import { silentLog } from '../../lib/log';
import { containerPinDir, Layout } from '../../lib/state/paths';
import { readRecord } from '../../lib/state/record';

const ANN = 'io.taskwire.ip-per-task';

interface Run {
  code: number;
  stderr: string;
  stdout: string;
  ms: number;
}

/** The hook binary with exactly this stdin text (no newline added) and these argv. */
function raw(argv: string[], stdin: string): Run {
  const t = process.hrtime.bigint();
  const r = spawnSync(NODE, [HOOK_BIN, ...argv], { input: stdin, env: {}, cwd: '/', encoding: 'utf8', timeout: 30000 });
  return { code: r.status ?? -1, stderr: r.stderr, stdout: r.stdout, ms: Number(process.hrtime.bigint() - t) / 1e6 };
}

const state = (o: Record<string, unknown>) => JSON.stringify({ ociVersion: '1.0.2', status: 'creating', bundle: '/tmp', ...o });

/** Exactly one line on stderr, matching `re`. */
function expectOneLine(r: Run, re: RegExp): void {
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(re);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

describePrivileged('the hook executable keeps the OCI hook contract', () => {
  let host: TestHost;
  let layout: Layout;
  let proc: { cgroup: string; pid: number };
  beforeAll(async () => {
    host = testHost();
    layout = host.layout;
    proc = await cgroupWithProcess();
  });
  afterAll(runCleanups);

  /** A fresh container id whose state is destroyed at cleanup whatever the test did. */
  function newId(prefix = 'tw.hc'): string {
    const id = uniq(prefix);
    onCleanup(() => destroyContainer(layout, id, silentLog()));
    return id;
  }

  function expectNothingFor(id: string): void {
    expect(readRecord(layout, id)).toBeUndefined();
    expect(existsSync(containerPinDir(layout, id))).toBe(false);
  }

  const cfg = () => ['--config', host.configPath];

  /** A container of its own, for a test that runs poststop: stop() ends its processes as a runtime's delete does, keeping the cgroup to look at. */
  async function container() {
    const c = await cgroupWithProcess();
    return { ...c, stop: () => emptyCgroup(c.cgroup) };
  }

  test('empty env, cwd /, stdin without a trailing newline and with unknown fields: createRuntime attaches, poststop undoes', async () => {
    const id = newId();
    const c = await container();
    const stdin = state({ id, pid: c.pid, annotations: { [ANN]: 'auto' }, root: '/run/crun', extra: { nested: [1, 2] } });
    expect(stdin.endsWith('\n')).toBe(false);
    const r = raw(['createRuntime', ...cfg()], stdin);
    expect(r).toMatchObject({ code: 0, stderr: '', stdout: '' });
    expect(readRecord(layout, id)).toMatchObject({ complete: true, cgroup: c.cgroup, pid: c.pid });
    await c.stop();
    expect(raw(['poststop', ...cfg()], state({ id, status: 'stopped', annotations: { [ANN]: 'auto' } }))).toMatchObject({ code: 0, stderr: '', stdout: '' });
    expectNothingFor(id);
    expect(cgroupPrograms(c.cgroup)).toEqual([]);
  });

  test('the status field is irrelevant: "creating" (runc) and "created" (crun) give the same result', async () => {
    for (const status of ['creating', 'created', 'anything']) {
      const id = newId();
      const c = await container();
      const r = raw(['createRuntime', ...cfg()], state({ id, pid: c.pid, status, annotations: { [ANN]: JSON.stringify({ ip6: 'auto' }) } }));
      expect(r).toMatchObject({ code: 0, stderr: '' });
      expect(readRecord(layout, id)!.complete).toBe(true);
      await c.stop();
      expect(raw(['poststop', ...cfg()], state({ id, status: 'stopped' })).code).toBe(0);
      expectNothingFor(id);
    }
  });

  test('poststop with pid absent (runc, podman) and pid 0 (crun) cleans up; again and for unknown ids it is a silent no-op', async () => {
    for (const pid of [undefined, 0]) {
      const id = newId();
      const c = await container();
      expect(raw(['createRuntime', ...cfg()], state({ id, pid: c.pid, annotations: { [ANN]: 'auto' } })).code).toBe(0);
      await c.stop();
      for (let i = 0; i < 2; i++) {
        // Neither the state (no annotations) nor pid matters at poststop: the record drives it.
        expect(raw(['poststop', ...cfg()], state({ id, pid, status: 'stopped' }))).toMatchObject({ code: 0, stderr: '', stdout: '' });
        expectNothingFor(id);
      }
    }
    expect(raw(['poststop', ...cfg()], state({ id: uniq('tw.never') }))).toMatchObject({ code: 0, stderr: '' });
  });

  test('no taskwire annotations (absent, {}, or only foreign ones) means nothing enabled, and it is fast', () => {
    // A host config that does not exist proves createRuntime never even reads it. poststop does
    // read it (podman may not pass the annotations): it looks for a record, finds none, exits.
    const missing = ['--config', join(host.dir, 'no-such-config.json')];
    const id = newId();
    const logSize = () => (existsSync(host.logFile) ? statSync(host.logFile).size : 0);
    const logBefore = logSize();
    for (const annotations of [undefined, {}, { 'org.opencontainers.image.title': 'x', 'io.taskwire': 'not a key of ours' }]) {
      for (const stage of ['createRuntime', 'prestart']) {
        expect(raw([stage, ...missing], state({ id, pid: proc.pid, annotations }))).toMatchObject({ code: 0, stderr: '', stdout: '' });
      }
      expect(raw(['poststop', ...cfg()], state({ id, annotations }))).toMatchObject({ code: 0, stderr: '', stdout: '' });
    }
    expectNothingFor(id);
    expect(logSize()).toBe(logBefore);
    // Fast: close to bare node start-up (same binary, same run); the margin absorbs a shared machine.
    const base: number[] = [];
    const hookMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = process.hrtime.bigint();
      spawnSync(NODE, ['-e', '0'], { env: {}, cwd: '/' });
      base.push(Number(process.hrtime.bigint() - t) / 1e6);
      hookMs.push(raw(['createRuntime', ...missing], state({ id, pid: proc.pid, annotations: {} })).ms);
    }
    expect(median(hookMs)).toBeLessThan(median(base) * 2 + 50);
  });

  test.each([
    ['../x', /container id "\.\.\/x" is not valid/],
    ['.hidden', /container id "\.hidden" is not valid/],
    ['a/b', /container id "a\/b" is not valid/],
    ['', /id/],
  ])('container id %j is refused at createRuntime with one line, and nothing is created', (id, message) => {
    const r = raw(['createRuntime', ...cfg()], state({ id, pid: proc.pid, annotations: { [ANN]: 'auto' } }));
    expect(r.code).toBe(1);
    expectOneLine(r, message);
    expect(r.stdout).toBe('');
    expect(cgroupPrograms(proc.cgroup)).toEqual([]);
    // poststop never fails, even for an id it refuses to touch.
    expect(raw(['poststop', ...cfg()], state({ id })).code).toBe(0);
  });

  test.each([
    [['start'], /expected one stage/],
    [[], /expected one stage/],
    [['createRuntime', 'poststop'], /expected one stage/],
    [['createRuntime', '--bogus'], /bogus/],
  ])('a bad invocation %j exits 2 with a usage message', (argv, message) => {
    const r = raw([...argv, ...cfg()], state({ id: uniq('tw.hc'), pid: proc.pid }));
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toMatch(message);
    expect(r.stdout).toBe('');
  });

  test('an unknown io.taskwire.* annotation is refused with one line naming it', () => {
    const id = newId();
    const r = raw(['createRuntime', ...cfg()], state({ id, pid: proc.pid, annotations: { [ANN]: 'auto', 'io.taskwire.foo': 'bar' } }));
    expect(r.code).toBe(1);
    expectOneLine(r, new RegExp(`^taskwire: ${id.replace(/\./g, '\\.')}: annotation io\\.taskwire\\.foo: no such taskwire plugin`));
    expectNothingFor(id);
    expect(cgroupPrograms(proc.cgroup)).toEqual([]);
  });

  test('a plugin the host config does not enable is refused with one line, before touching anything', () => {
    const off = testHost((c) => (c.plugins['ip-per-task'].enabled = false));
    const id = uniq('tw.hc');
    onCleanup(() => destroyContainer(off.layout, id, silentLog()));
    const r = raw(['createRuntime', '--config', off.configPath], state({ id, pid: proc.pid, annotations: { [ANN]: 'auto' } }));
    expect(r.code).toBe(1);
    expectOneLine(r, /annotation io\.taskwire\.ip-per-task: plugin ip-per-task is not enabled on this host/);
    expect(existsSync(join(off.bpffs, 'taskwire'))).toBe(false);
    expect(readRecord(off.layout, id)).toBeUndefined();
    expect(cgroupPrograms(proc.cgroup)).toEqual([]);
  });

  test('bad state on stdin: one line at createRuntime (exit 1), exit 0 at poststop', () => {
    for (const [stdin, message] of [
      ['', /not JSON/],
      ['{"id": "x"', /not JSON/],
      [JSON.stringify({ bundle: '/tmp', annotations: { [ANN]: 'auto' } }), /id/],
      [JSON.stringify({ id: 'x', bundle: '/tmp', pid: -1 }), /pid/],
    ] as const) {
      const r = raw(['createRuntime', ...cfg()], stdin);
      expect(r.code).toBe(1);
      expectOneLine(r, message);
      expect(raw(['poststop', ...cfg()], stdin).code).toBe(0);
    }
  });

  test('createRuntime without a pid is refused with one line', () => {
    const id = newId();
    const r = raw(['createRuntime', ...cfg()], state({ id, annotations: { [ANN]: 'auto' } }));
    expect(r.code).toBe(1);
    expectOneLine(r, /gave no pid/);
    expectNothingFor(id);
  });
});
