/*
 * `taskwire monitor` as one stream of every plugin's events, through the bundled CLI_BIN (a separate
 * process, as an operator runs it): a twfw task whose log rule drops a connection and a sysctl
 * task whose policy (events on) refuses a write. Records wait in the rings until read, so the
 * first test makes its events before the monitor starts; the second starts the monitor first and
 * the task after, so the monitor has to pick the new container up.
 */
import { CLI_BIN } from '../helpers/cli';
import { execFile, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describePrivileged } from '../helpers/privileged';
import { NODE, runCleanups, testHost, TestHost } from '../helpers/kernel';
import { actor, once } from '../helpers/net';
import { startTask, Task } from '../helpers/task';
import { statePath } from '../../plugins/twfw/apply';
import { writeFileSync } from 'node:fs';

const SYSCTL_CHILD = join(__dirname, 'sysctl-child.js');
const PING_RANGE = 'net.ipv4.ping_group_range';

describePrivileged('taskwire monitor: twfw and sysctl events in one stream', () => {
  let host: TestHost;
  beforeAll(() => {
    // Host events off: the sysctl task's own policy turns them on.
    host = testHost((c) => {
      c.plugins.sysctl = { ...c.plugins.sysctl, enabled: true, events: false };
    });
  });
  afterAll(runCleanups);

  /** The real CLI_BIN; resolves with its stdout lines once it exits (count reached or timeout). */
  async function monitor(...args: string[]): Promise<{ lines: string[]; stderr: string }> {
    const r = await promisify(execFile)(NODE, [CLI_BIN, '--config', host.configPath, 'monitor', ...args], { encoding: 'utf8', timeout: 20000 });
    return { lines: r.stdout.split('\n').filter(Boolean), stderr: r.stderr };
  }

  const sysctlTask = () => startTask(host, { 'io.taskwire.sysctl': JSON.stringify({ default: 'allow', events: true, rules: [{ name: PING_RANGE, access: 'read-only' }] }) }, 'tw.mon.sc');

  /** A write of the read-only sysctl from inside the task's cgroup, in a private netns. */
  function deniedWrite(t: Task): void {
    const ops = [{ op: 'read', name: PING_RANGE }, { op: 'write', name: PING_RANGE, value: '0 0' }];
    const r = spawnSync('unshare', ['-n', NODE, SYSCTL_CHILD, t.cgroup, JSON.stringify(ops)], { encoding: 'utf8' });
    expect(JSON.parse(r.stdout)).toEqual([expect.objectContaining({ ok: true }), { ok: false, code: 'EPERM' }]);
  }

  async function loggedDrop(): Promise<{ t: Task; port: number; kill: () => void }> {
    const srv = actor(null, { op: 'tcp-listen', host: '127.0.0.1', port: 0 });
    const port = (await srv.next('listening')).port as number;
    const t = await startTask(host, { 'io.taskwire.twfw': JSON.stringify({ rules: [{ name: 'logged', direction: 'egress', action: 'drop+log', proto: 'tcp', ports: [port] }] }) }, 'tw.mon.fw');
    const ev = await once(t.cgroup, { op: 'tcp-connect', host: '127.0.0.1', port, timeoutMs: 1500 });
    expect(ev.find((e) => e.event === 'error')?.code).toBe('ECONNREFUSED');
    return { t, port, kill: () => srv.kill() };
  }

  test('--json: both plugins\' events arrive decoded, each with time, container, plugin and kind', async () => {
    const fw = await loggedDrop();
    const sc = await sysctlTask();
    deniedWrite(sc);
    const { lines } = await monitor('--json', '--count', '2', '--timeout', '10');
    expect(lines).toHaveLength(2);
    const events = lines.map((l) => JSON.parse(l));
    const byPlugin = Object.fromEntries(events.map((e) => [e.plugin, e]));
    expect(byPlugin.twfw).toMatchObject({
      container: fw.t.id,
      plugin: 'twfw',
      kind: 'log',
      direction: 'egress',
      verdict: 'drop',
      layer: 'socket',
      proto: 'tcp',
      remote: '127.0.0.1',
      remotePort: fw.port,
      rule: '0 (logged)',
    });
    expect(byPlugin.sysctl).toEqual({
      time: expect.any(String),
      container: sc.id,
      plugin: 'sysctl',
      kind: 'denied',
      pid: expect.any(Number),
      comm: expect.stringMatching(/^.+$/),
      op: 'write',
      name: PING_RANGE,
      value: '0 0',
      verdict: 'denied',
      reason: 'policy',
      policy: 1, // the annotation's, under "tighten"
      cgroupId: String(sc.record.cgroupId),
    });
    for (const e of events) expect(Math.abs(Date.parse(e.time) - Date.now())).toBeLessThan(15000);
    fw.kill();
  });

  test('--plugin sysctl: text lines of a container started after the monitor, no twfw events', async () => {
    const fw = await loggedDrop(); // waits in the twfw ring: the filter must leave it there
    const running = monitor('--plugin', 'sysctl', '--count', '1', '--timeout', '10');
    await new Promise((r) => setTimeout(r, 1500)); // the monitor's first scan finds no sysctl ring
    const sc = await sysctlTask();
    deniedWrite(sc);
    const { lines } = await running;
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\S+Z ${sc.id.replace(/[.+]/g, '\\$&')} sysctl write ${PING_RANGE}="0 0" denied \\(policy\\) pid \\d+ \\(.+\\)$`));
    // The twfw event was not consumed: it is there for a monitor of twfw, in twfw's text format.
    const fwOnly = await monitor(fw.t.id, '--plugin', 'twfw', '--count', '1', '--timeout', '10');
    expect(fwOnly.lines).toHaveLength(1);
    expect(fwOnly.lines[0]).toMatch(/^\S+Z \S+ egress DROP tcp(\[[a-z,]*\])? /);
    expect(fwOnly.lines[0].split(' ')[1]).toBe(fw.t.id);
    expect(fwOnly.lines[0]).toContain(`-> 127.0.0.1:${fw.port} rule 0 (logged) (at connect/sendmsg)`);
    fw.kill();
  });

  test('a container whose twfw state is damaged is named once on stderr, and the other events go on', async () => {
    const fw = await loggedDrop(); // its event waits in its ring
    const state = statePath(host.layout, fw.t.id);
    writeFileSync(state, '{"id": "');
    const sc = await sysctlTask();
    deniedWrite(sc);
    const { lines, stderr } = await monitor('--json', '--count', '1', '--timeout', '10');
    expect(lines.map((l) => JSON.parse(l))).toEqual([expect.objectContaining({ container: sc.id, plugin: 'sysctl' })]);
    const said = stderr.split('\n').filter(Boolean);
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(new RegExp(`^taskwire: ${fw.t.id.replace(/[.+]/g, '\\$&')}: twfw events skipped: twfw state ${state.replace(/[.+%]/g, '\\$&')} is damaged \\(`));
    // Asked for by id: one line that says why, and exit 1.
    const one = spawnSync(NODE, [CLI_BIN, '--config', host.configPath, 'monitor', fw.t.id, '--plugin', 'twfw', '--timeout', '2'], { encoding: 'utf8' });
    expect(one.status).toBe(1);
    expect(one.stderr.trim().split('\n')).toEqual([expect.stringContaining(`container ${fw.t.id}: twfw state ${state} is damaged (`)]);
    fw.kill();
  });

  test('an id with no event ring of the chosen plugin fails with one line', async () => {
    const sc = await sysctlTask();
    const r = spawnSync(NODE, [CLI_BIN, '--config', host.configPath, 'monitor', sc.id, '--plugin', 'twfw', '--timeout', '2'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe(`taskwire: container ${sc.id} has no twfw event ring (not running, or no plugin logs events for it)`);
  });
});
