/* A container id reused while the old container's poststop has yet to run: runc removes a
 * container's state before its poststop hooks, so `runc run foo` may start a new foo meanwhile.
 * Hooks for one id take its lock in turn (lib/state/paths.ts containerLockPath), and poststop
 * leaves alone a record whose container process still runs (lib/pipeline.ts unlessRunning). */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { describePrivileged } from '../helpers/privileged';
import { cgroupPrograms, deviceAddresses, emptyCgroup, eventually, holdLock, onCleanup, removeCgroup, runCleanups, sleeperIn, testHost, TestHost, uniq, waitInCgroup } from '../helpers/kernel';
import { destroyContainer } from '../../lib/pipeline';
import { silentLog } from '../../lib/log';
import { hookBinary, hookBinaryAsync } from '../helpers/hook';
import { cgroupWithProcess, startTask } from '../helpers/task';
import { containerLockPath } from '../../lib/state/paths';
import { readRecord } from '../../lib/state/record';

const ipt = { 'io.taskwire.ip-per-task': 'auto' };

describePrivileged('a container id reused before the old container is cleaned up', () => {
  let host: TestHost;
  beforeAll(() => {
    host = testHost();
  });
  afterAll(runCleanups);

  const ip6Of = (id: string) => readRecord(host.layout, id)!.plugins[0].summary.ip6 as string;

  test("the old container's poststop, run after the new one started, leaves the new one alone", async () => {
    const old = await startTask(host, ipt, 'tw.reuse');
    const oldIp = ip6Of(old.id);
    removeCgroup(old.cgroup); // runc delete: the cgroup and the runtime's state go, poststop comes last

    const again = await cgroupWithProcess(); // runc run foo again, in the meantime
    expect(hookBinary('createRuntime', { id: old.id, pid: again.pid, annotations: ipt }, host.configPath)).toEqual({ code: 0, stderr: '' });
    const reborn = readRecord(host.layout, old.id)!;
    expect(reborn.cgroup).toBe(again.cgroup);
    expect(deviceAddresses()).not.toContain(oldIp); // the old container's state went with the new create

    expect(hookBinary('poststop', { id: old.id, status: 'stopped' }, host.configPath)).toEqual({ code: 0, stderr: '' });
    expect(readRecord(host.layout, old.id)).toEqual(reborn);
    expect(cgroupPrograms(again.cgroup)).toHaveLength(9);
    expect(deviceAddresses()).toContain(ip6Of(old.id));
    expect(readFileSync(host.logFile, 'utf8')).toMatch(/the container recorded under this id still runs: a newer container under a reused id; left alone/);

    // The new container's own poststop, once it has stopped, undoes it.
    const ip = ip6Of(old.id);
    await emptyCgroup(again.cgroup);
    expect(hookBinary('poststop', { id: old.id, status: 'stopped' }, host.configPath)).toEqual({ code: 0, stderr: '' });
    expect(readRecord(host.layout, old.id)).toBeUndefined();
    expect(deviceAddresses()).not.toContain(ip);
    await eventually(() => cgroupPrograms(again.cgroup).length === 0, 'links detached');
  });

  test('hooks for one id run one at a time, and its lock file goes with the last', async () => {
    const c = await cgroupWithProcess();
    const id = uniq('tw.locked');
    onCleanup(() => destroyContainer(host.layout, id, silentLog()));
    const lock = containerLockPath(host.layout, id);
    const release = await holdLock(lock, 'exclusive'); // a poststop of the id in progress elsewhere

    const created = hookBinaryAsync('createRuntime', { id, pid: c.pid, annotations: ipt }, host.configPath);
    const ino = statSync(lock).ino;
    const waiting = () => readFileSync('/proc/locks', 'utf8').split('\n').some((l) => / -> FLOCK +ADVISORY +WRITE /.test(l) && l.includes(`:${ino} `));
    await eventually(waiting, 'createRuntime waiting for the id lock', 10000);
    expect(readRecord(host.layout, id)).toBeUndefined();

    release();
    expect(await created).toEqual({ code: 0, stderr: '' });
    expect(cgroupPrograms(c.cgroup)).toHaveLength(9);
    expect(existsSync(lock)).toBe(false);
    await emptyCgroup(c.cgroup);
    expect(hookBinary('poststop', { id, status: 'stopped' }, host.configPath)).toEqual({ code: 0, stderr: '' });
    expect(readRecord(host.layout, id)).toBeUndefined();
    expect(existsSync(lock)).toBe(false);
  });

  test('createRuntime of an id a running container holds is refused with one line, and leaves it intact', async () => {
    const a = await startTask(host, ipt, 'tw.taken');
    const b = await cgroupWithProcess(); // another runtime (or runc --root) starts a container of the same id
    const r = hookBinary('createRuntime', { id: a.id, pid: b.pid, annotations: ipt }, host.configPath);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`^taskwire: ${a.id.replace(/\./g, '\\.')}: the id is taken: a running container has it \\(process ${a.pid} in cgroup ${a.cgroup}, since [^)]+\\); delete that one first\n$`));
    expect(readRecord(host.layout, a.id)).toEqual(a.record);
    expect(cgroupPrograms(a.cgroup)).toHaveLength(9);
    expect(cgroupPrograms(b.cgroup)).toEqual([]);
    // The runtime runs poststop for the container it failed to create: the running one stays.
    removeCgroup(b.cgroup);
    expect(hookBinary('poststop', { id: a.id, status: 'stopped' }, host.configPath)).toEqual({ code: 0, stderr: '' });
    expect(readRecord(host.layout, a.id)).toEqual(a.record);
    expect(cgroupPrograms(a.cgroup)).toHaveLength(9);
    expect(deviceAddresses()).toContain(ip6Of(a.id));
    // Once that container has stopped, the id is free again.
    const c = await cgroupWithProcess();
    await emptyCgroup(a.cgroup);
    expect(hookBinary('createRuntime', { id: a.id, pid: c.pid, annotations: ipt }, host.configPath)).toEqual({ code: 0, stderr: '' });
    expect(readRecord(host.layout, a.id)!.cgroup).toBe(c.cgroup);
    expect(cgroupPrograms(c.cgroup)).toHaveLength(9);
  });

  test("processes left in a container's cgroup after its own process is gone do not stop its poststop", async () => {
    const t = await startTask(host, ipt, 'tw.leftover');
    const leftover = sleeperIn(t.cgroup); // one the runtime failed to kill, or another container's given the same cgroup
    await waitInCgroup(t.cgroup, leftover.pid!);
    process.kill(t.pid, 'SIGKILL');
    await eventually(() => !existsSync(`/proc/${t.pid}`), 'container process gone');
    expect(hookBinary('poststop', { id: t.id, status: 'stopped' }, host.configPath)).toEqual({ code: 0, stderr: '' });
    expect(readRecord(host.layout, t.id)).toBeUndefined();
    await eventually(() => cgroupPrograms(t.cgroup).length === 0, 'links detached');
  });

  test('a container that shares its cgroup with other processes (podman --cgroups=disabled) is undone by its poststop while they run', async () => {
    const shared = await cgroupWithProcess(); // the caller's cgroup: podman, conmon...
    const other = sleeperIn(shared.cgroup);
    await waitInCgroup(shared.cgroup, other.pid!);
    const id = uniq('tw.shared');
    onCleanup(() => destroyContainer(host.layout, id, silentLog()));
    expect(hookBinary('createRuntime', { id, pid: shared.pid, annotations: ipt }, host.configPath)).toEqual({ code: 0, stderr: '' });
    expect(readRecord(host.layout, id)!.cgroup).toBe(shared.cgroup);
    const ip = ip6Of(id);
    process.kill(shared.pid, 'SIGKILL'); // the container ends; the others stay in the cgroup
    expect(hookBinary('poststop', { id, status: 'stopped' }, host.configPath)).toEqual({ code: 0, stderr: '' });
    expect(readRecord(host.layout, id)).toBeUndefined();
    expect(deviceAddresses()).not.toContain(ip);
    await eventually(() => cgroupPrograms(shared.cgroup).length === 0, 'links detached');
  });
});
