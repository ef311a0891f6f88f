/* taskwire gc on real state: what a crash leaves (dead cgroup, no poststop; pins without a
 * record; an allocation without a record) is removed; live containers are untouched, also one
 * created under a dead container's id while gc runs. */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { describePrivileged } from '../helpers/privileged';
import { cli as runCli, CLI_BIN } from '../helpers/cli';
import { hook } from '../helpers/hook';
import { cgroupPrograms, deviceAddresses, emptyCgroup, eventually, holdLock, NODE, onCleanup, removeCgroup, runCleanups, testHost, TestHost } from '../helpers/kernel';
import { cgroupWithProcess, startTask } from '../helpers/task';
import { containerLockPath, containerPinDir, containersLockPath, recordPath } from '../../lib/state/paths';
import { readRecord } from '../../lib/state/record';
import { netnsUsers } from '../../plugins/netns/shared';
import { ipamEntries, reserveAddress } from '../../lib/state/ipam';

const cli = (host: TestHost, ...args: string[]) => runCli(host.configPath, ...args);

describePrivileged('taskwire gc', () => {
  let host: TestHost;
  beforeAll(() => {
    host = testHost();
  });
  afterAll(runCleanups);

  test('removes the state of dead containers and orphans, keeps live ones; --dry-run removes nothing', async () => {
    const layout = host.layout;
    const live = await startTask(host, { 'io.taskwire.ip-per-task': 'auto' }, 'tw.live');
    const dead = await startTask(host, { 'io.taskwire.ip-per-task': 'auto' }, 'tw.dead');
    const orphan = await startTask(host, { 'io.taskwire.ip-per-task': 'auto' }, 'tw.orph');
    removeCgroup(dead.cgroup); // the runtime died: no poststop
    rmSync(recordPath(layout, orphan.id)); // a record lost: pins and address remain
    reserveAddress(layout, host.pool6.replace('::/112', '::fff0'), 'tw.lost-1', 'lo');

    const dry = cli(host, 'gc', '--dry-run', '--json');
    expect(dry.status).toBe(0);
    const planned = JSON.parse(dry.stdout).removed.map((i: { id: string }) => i.id).sort();
    expect(planned).toEqual([dead.id, orphan.id, 'tw.lost-1'].sort());
    expect(existsSync(containerPinDir(layout, dead.id))).toBe(true);

    const run = cli(host, 'gc');
    expect(run.status).toBe(0);
    expect(run.stdout).toContain(`removed ${dead.id}`);
    for (const t of [dead, orphan]) {
      expect(existsSync(containerPinDir(layout, t.id))).toBe(false);
      expect(deviceAddresses()).not.toContain(t.summary<{ ip6: string }>('ip-per-task').ip6);
    }
    expect(Object.values(ipamEntries(layout)).map((e) => e.owner)).toEqual([live.id, live.id]);
    await eventually(() => cgroupPrograms(orphan.cgroup).length === 0, 'orphan links detached');
    expect(cgroupPrograms(live.cgroup)).toHaveLength(9);
    expect(cli(host, 'gc').stdout).toBe('nothing to collect\n');

    const ls = JSON.parse(cli(host, 'ls', '--json').stdout);
    expect(ls.map((c: { id: string; alive: boolean }) => [c.id, c.alive])).toEqual([[live.id, true]]);
  });

  test('a damaged record is reported by ls and gc, and its container and what it holds are left alone', async () => {
    const layout = host.layout;
    const t = await startTask(host, { 'io.taskwire.ip-per-task': 'auto' }, 'tw.damaged');
    const ip6 = t.summary<{ ip6: string }>('ip-per-task').ip6;
    writeFileSync(recordPath(layout, t.id), '{"version":1,"id":'); // damaged by hand or by the disk
    expect(netnsUsers(layout)).toContain(t.id); // what it uses is unknown: the netns plugin's host-wide pins stay
    onCleanup(() => writeFileSync(recordPath(layout, t.id), JSON.stringify(t.record))); // should the test stop early: the task's cleanup reads it

    const ls = cli(host, 'ls', '--json');
    expect(ls.status).toBe(0);
    expect(ls.stderr).toMatch(new RegExp(`^taskwire ls: \\S+: damaged record \\(.*\\); its container is not listed\n$`));
    expect(JSON.parse(ls.stdout).map((c: { id: string }) => c.id)).not.toContain(t.id);

    for (const args of [['gc', '--dry-run', '--json'], ['gc', '--json']]) {
      const r = cli(host, ...args);
      expect(r.status).toBe(1);
      const out = JSON.parse(r.stdout);
      expect(out.failed).toContainEqual({ id: `_damaged/${t.id}`, error: expect.stringMatching(/is damaged .*; left alone: repair it \(once it is removed, gc takes whatever is under this id\)$/) });
      expect(out.removed.map((i: { id: string }) => i.id)).not.toContain(t.id);
    }
    expect(cli(host, 'gc').stderr).toMatch(new RegExp(`^taskwire gc: _damaged/${t.id.replace(/\./g, '\\.')}: record `, 'm'));
    expect(existsSync(containerPinDir(layout, t.id))).toBe(true);
    expect(cgroupPrograms(t.cgroup)).toHaveLength(9);
    expect(deviceAddresses()).toContain(ip6);
    writeFileSync(recordPath(layout, t.id), JSON.stringify(t.record)); // repaired: gc has nothing to report
    expect(JSON.parse(cli(host, 'gc', '--dry-run', '--json').stdout).failed).toEqual([]);
  });

  test("removes files half written by a writer that died, keeps a running writer's", () => {
    // A pid that ran and is gone: a hook killed between its write and its rename.
    const gone = spawnSync('true').pid!;
    const dir = join(host.layout.runDir, 'containers');
    mkdirSync(dir, { recursive: true });
    const dead = join(dir, `.tw%2Ekilled.json.${gone}.tmp`);
    const running = join(dir, `.tw%2Ewriting.json.${process.pid}.tmp`);
    for (const f of [dead, running]) writeFileSync(f, '{"version":1,"id":');
    onCleanup(() => rmSync(running, { force: true }));

    const plan = JSON.parse(cli(host, 'gc', '--dry-run', '--json').stdout);
    expect(plan.removed).toContainEqual({ id: `_tmp/containers/.tw%2Ekilled.json.${gone}.tmp`, why: `temp file of process ${gone}, which is gone` });
    expect(JSON.stringify(plan)).not.toContain('writing');
    expect(existsSync(dead)).toBe(true);

    expect(cli(host, 'gc').stdout).toContain(`removed _tmp/containers/.tw%2Ekilled.json.${gone}.tmp`);
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(running)).toBe(true);
  });

  test('takes a container whose own cgroup is still there but empty (deleted without poststop, or a cgroup the runtime failed to remove)', async () => {
    const t = await startTask(host, { 'io.taskwire.ip-per-task': 'auto' }, 'tw.empty');
    await emptyCgroup(t.cgroup);
    const item = { id: t.id, why: `cgroup ${t.cgroup} has no process left` };
    expect(JSON.parse(cli(host, 'ls', '--json').stdout).find((c: { id: string }) => c.id === t.id)).toMatchObject({ alive: false, state: 'stopped' });
    expect(JSON.parse(cli(host, 'gc', '--dry-run', '--json').stdout).removed).toContainEqual(item);
    expect(JSON.parse(cli(host, 'gc', '--json').stdout).removed).toContainEqual(item);
    expect(readRecord(host.layout, t.id)).toBeUndefined();
    expect(deviceAddresses()).not.toContain(t.summary<{ ip6: string }>('ip-per-task').ip6);
    await eventually(() => cgroupPrograms(t.cgroup).length === 0, 'links detached');
  });

  test("removes the id lock a hook killed while holding it left behind", () => {
    const lock = containerLockPath(host.layout, 'tw.killed-holder');
    mkdirSync(dirname(lock), { recursive: true });
    writeFileSync(lock, '');
    const item = { id: `_locks/${basename(lock)}`, why: 'id lock file left by a hook killed while holding it' };
    expect(JSON.parse(cli(host, 'gc', '--dry-run', '--json').stdout).removed).toContainEqual(item);
    expect(existsSync(lock)).toBe(true);
    expect(JSON.parse(cli(host, 'gc', '--json').stdout).removed).toContainEqual(item);
    expect(existsSync(lock)).toBe(false);
  });

  test('does not list the id lock of a hook at work, and lists it once its holder is gone', async () => {
    const lock = containerLockPath(host.layout, 'tw.hook-at-work');
    const release = await holdLock(lock, 'exclusive'); // a createRuntime holding its id
    const item = { id: `_locks/${basename(lock)}`, why: 'id lock file left by a hook killed while holding it' };
    const dry = JSON.parse(cli(host, 'gc', '--dry-run', '--json').stdout);
    expect(dry.removed.map((i: { id: string }) => i.id)).not.toContain(item.id);
    expect(existsSync(lock)).toBe(true);
    release(); // the holder dies without unlinking: the kernel lets go of its lock
    await eventually(() => JSON.parse(cli(host, 'gc', '--dry-run', '--json').stdout).removed.some((i: { id: string }) => i.id === item.id), 'lock listed once free');
    expect(JSON.parse(cli(host, 'gc', '--json').stdout).removed).toContainEqual(item);
    expect(existsSync(lock)).toBe(false);
  });

  test('waits for hooks in progress, and keeps a container created under an id it found dead', async () => {
    const ipt = { 'io.taskwire.ip-per-task': 'auto' };
    const dead = await startTask(host, ipt, 'tw.reuse');
    removeCgroup(dead.cgroup); // runc run foo ... its cgroup gone, no poststop
    const lock = containersLockPath(host.layout);

    const release = await holdLock(lock, 'shared'); // a hook in progress elsewhere

    const gc = spawn(NODE, [CLI_BIN, '--config', host.configPath, 'gc', '--json'], { env: {}, stdio: ['ignore', 'pipe', 'pipe'] });
    onCleanup(() => gc.kill('SIGKILL'));
    let out = '';
    gc.stdout!.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => gc.on('exit', resolve));
    // gc has found the dead container and waits for the lock exclusive (a "->" line of /proc/locks).
    const ino = statSync(lock).ino;
    const waiting = () => readFileSync('/proc/locks', 'utf8').split('\n').some((l) => / -> FLOCK +ADVISORY +WRITE /.test(l) && l.includes(`:${ino} `) && l.includes(` ${gc.pid} `));
    await eventually(waiting, 'gc waiting for the containers lock', 10000);

    // Meanwhile the id is reused: runc run foo again, a new cgroup, createRuntime through the hook.
    const again = await cgroupWithProcess();
    const r = await hook('createRuntime', { id: dead.id, pid: again.pid, annotations: ipt }, host.configPath);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const reborn = readRecord(host.layout, dead.id)!;
    const ip6 = reborn.plugins[0].summary.ip6 as string;

    release(); // the other hook is done
    expect(await exited).toBe(0);
    expect(JSON.parse(out).removed.map((i: { id: string }) => i.id)).not.toContain(dead.id);
    expect(readRecord(host.layout, dead.id)).toEqual(reborn);
    expect(cgroupPrograms(again.cgroup)).toHaveLength(9);
    expect(deviceAddresses()).toContain(ip6);
  });
});
