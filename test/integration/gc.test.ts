/* taskwire gc on real state: what a crash leaves (dead cgroup, no poststop; pins without a
 * record; an allocation without a record) is removed; live containers are untouched. */
import { existsSync, rmSync } from 'node:fs';
import { describePrivileged } from '../helpers/privileged';
import { cli as runCli } from '../helpers/cli';
import { cgroupPrograms, deviceAddresses, eventually, removeCgroup, runCleanups, testHost, TestHost } from '../helpers/kernel';
import { startTask } from '../helpers/task';
import { containerPinDir, recordPath } from '../../lib/state/paths';
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
});
