/* taskwire gc on real state: what a crash leaves (dead cgroup, no poststop; pins without a
 * record; an allocation without a record) is removed; live containers are untouched, also one
 * created under a dead container's id while gc runs. */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describePrivileged } from '../helpers/privileged';
import { cli as runCli, CLI_BIN } from '../helpers/cli';
import { hook } from '../helpers/hook';
import { cgroupPrograms, deviceAddresses, eventually, NODE, onCleanup, removeCgroup, runCleanups, testHost, TestHost } from '../helpers/kernel';
import { cgroupWithProcess, startTask } from '../helpers/task';
import { containerPinDir, containersLockPath, recordPath } from '../../lib/state/paths';
import { readRecord } from '../../lib/state/record';
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

  test('waits for hooks in progress, and keeps a container created under an id it found dead', async () => {
    const ipt = { 'io.taskwire.ip-per-task': 'auto' };
    const dead = await startTask(host, ipt, 'tw.reuse');
    removeCgroup(dead.cgroup); // runc run foo ... its cgroup gone, no poststop
    const lock = containersLockPath(host.layout);

    // A hook in progress elsewhere holds the containers lock shared.
    // Its own process group: the sleep it runs goes with it.
    const holder = spawn('flock', ['-s', lock, '-c', 'echo held; exec sleep 60'], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
    const release = () => {
      try {
        process.kill(-holder.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    };
    onCleanup(release);
    await new Promise((resolve) => holder.stdout!.once('data', resolve));

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
