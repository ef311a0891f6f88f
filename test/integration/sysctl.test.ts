/*
 * sysctl control on the real kernel: child processes in a test cgroup read and write /proc/sys.
 * Writes go only to network sysctls inside a private netns (`unshare -n`), so nothing on the
 * host changes; reads are of harmless names (kernel.ostype, kernel.osrelease, ...).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describePrivileged } from '../helpers/privileged';
import { cgroupPrograms, emptyCgroup, eventually, NODE, runCleanups, tempDir, testHost, TestHost } from '../helpers/kernel';
import { hook, hookBinary } from '../helpers/hook';
import { cgroupWithProcess, startTask, Task } from '../helpers/task';
import { containerPinDir } from '../../lib/state/paths';
import { readRecord } from '../../lib/state/record';
import { BpfMap } from '../../lib/bpf/map';
import { RingBuffer } from '../../lib/bpf/ringbuf';
import { statValue, STATS_MAP, STAT, u32Key } from '../../plugins/sysctl/codec';
import { decodeSysctlEvent, EVENTS_PIN, PLUGIN_DIR, SysctlEvent } from '../../plugins/sysctl/events';
import { uniq } from '../helpers/kernel';

const CHILD = join(__dirname, 'sysctl-child.js');
const PORT_START = 'net.ipv4.ip_unprivileged_port_start';
const PING_RANGE = 'net.ipv4.ping_group_range';

type Op = { op: 'read'; name: string } | { op: 'write'; name: string; value: string };
type Result = { ok: boolean; value?: string; code?: string };
const read = (name: string): Op => ({ op: 'read', name });
const write = (name: string, value: string): Op => ({ op: 'write', name, value });
const OK = expect.objectContaining({ ok: true });
const EPERM = { ok: false, code: 'EPERM' };

/** Runs ops in a fresh child inside `cgroup` (null: outside any test cgroup) and a private netns. */
function inCgroup(cgroup: string | null, ops: Op[]): Result[] {
  const r = spawnSync('unshare', ['-n', NODE, CHILD, cgroup ?? '', JSON.stringify(ops)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sysctl child failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function hostWith(section: Record<string, unknown>): TestHost {
  return testHost((cfg) => {
    cfg.plugins.sysctl = { enabled: true, ...section };
  });
}

const policy = (p: object) => ({ 'io.taskwire.sysctl': JSON.stringify(p) });

describePrivileged('sysctl control on the real kernel', () => {
  let open: TestHost;
  beforeAll(() => {
    // The host allows everything and lets annotations replace that: each test states its policy.
    open = hostWith({ policy: { default: 'allow' }, annotations: 'replace' });
  });
  afterAll(runCleanups);

  test('allowed reads work, denied reads and writes fail with EPERM, processes outside are unaffected', async () => {
    const t = await startTask(open, policy({ default: 'allow', rules: [{ name: 'kernel.ostype', access: 'deny' }, { name: PORT_START, access: 'read-only' }] }), 'tw.sc');
    expect(cgroupPrograms(t.cgroup)).toEqual(['tw_sc_check']);
    const ops = [read('kernel.osrelease'), read('kernel.ostype'), read(PORT_START), write(PORT_START, '1000'), write(PING_RANGE, '0 0')];
    expect(inCgroup(t.cgroup, ops)).toEqual([OK, EPERM, OK, EPERM, OK]);
    expect(inCgroup(null, ops)).toEqual([OK, { ok: true, value: 'Linux' }, OK, OK, OK]);
  });

  test('the host default applies to a container without the annotation (applyToAll)', async () => {
    const strict = hostWith({ policy: { default: 'read-only' }, applyToAll: 'default' });
    const t = await startTask(strict, {}, 'tw.sc-all');
    expect(t.record.plugins.map((p) => p.name)).toEqual(['sysctl']);
    expect(cgroupPrograms(t.cgroup)).toEqual(['tw_sc_check']);
    expect(inCgroup(t.cgroup, [read(PORT_START), write(PORT_START, '1000')])).toEqual([OK, EPERM]);
  });

  test('a read-only default blocks every write and no read', async () => {
    const t = await startTask(open, { 'io.taskwire.sysctl': 'read-only' }, 'tw.sc');
    const r = inCgroup(t.cgroup, [read(PORT_START), write(PORT_START, '1000'), write(PING_RANGE, '0 0'), write('net.core.somaxconn', '1024'), read('kernel.ostype')]);
    expect(r).toEqual([OK, EPERM, EPERM, EPERM, { ok: true, value: 'Linux' }]);
  });

  test('value-restricted writes accept the listed values and ranges (kernel integer syntax) and refuse others', async () => {
    const t = await startTask(open, policy({ default: 'read-only', rules: [{ name: PORT_START, access: 'allow', values: [1024, { min: 2000, max: 2010 }, '80'] }] }), 'tw.sc');
    const r = inCgroup(t.cgroup, [
      write(PORT_START, '1024'), read(PORT_START),
      write(PORT_START, '2005\n'), read(PORT_START),
      write(PORT_START, '0x7d1'), read(PORT_START),
      write(PORT_START, '80'), read(PORT_START),
      write(PORT_START, '2011'), write(PORT_START, '81'), write(PORT_START, '1024 5'), write(PORT_START, 'abc'), write(PORT_START, '01024'),
      read(PORT_START),
    ]);
    expect(r).toEqual([
      OK, { ok: true, value: '1024' },
      OK, { ok: true, value: '2005' },
      OK, { ok: true, value: '2001' },
      OK, { ok: true, value: '80' },
      EPERM, EPERM, EPERM, EPERM, EPERM,
      { ok: true, value: '80' },
    ]);
  });

  test('both spellings, * within one component and ** across components match as documented', async () => {
    const t = await startTask(open, policy({
      default: 'allow',
      rules: [
        { name: 'net/ipv4/ip_unprivileged_port_start', access: 'read-only' },
        { name: 'kernel.ost*', access: 'deny' },
        { name: 'net.ipv6.conf.*.disable_ipv6', access: 'deny' },
        { name: 'net.ipv4.conf.**', access: 'deny' },
        // One component only: net.core.somaxconn has two separators and is not matched.
        { name: 'net.*', access: 'deny' },
        { name: 'kernel/random/**', access: 'deny' },
      ],
    }), 'tw.sc');
    const r = inCgroup(t.cgroup, [
      write(PORT_START, '1000'), read(PORT_START),
      read('kernel.ostype'), read('kernel.osrelease'),
      read('net.ipv6.conf.lo.disable_ipv6'), read('net.ipv6.conf.lo.mtu'),
      read('net.ipv4.conf.lo.forwarding'), read('net/ipv4/conf/all/rp_filter'),
      read('net.core.somaxconn'), read('kernel.random.boot_id'), read('kernel/hostname'),
    ]);
    expect(r).toEqual([EPERM, OK, EPERM, OK, EPERM, OK, EPERM, EPERM, OK, EPERM, OK]);
  });

  test('tighten: an annotation can take access away but never add it; replace and forbid', async () => {
    const tight = hostWith({ policy: { default: 'allow', rules: [{ name: PORT_START, access: 'read-only' }] }, annotations: 'tighten' });
    const t = await startTask(tight, policy({ default: 'allow', rules: [{ name: 'kernel.ostype', access: 'deny' }] }), 'tw.sc');
    expect(t.summary('sysctl')).toMatchObject({ policies: ['host', 'annotation'], defaults: ['allow', 'allow'] });
    expect(inCgroup(t.cgroup, [write(PORT_START, '1000'), read('kernel.ostype'), write(PING_RANGE, '0 0')])).toEqual([EPERM, EPERM, OK]);
    // The host default alone, for "default".
    const d = await startTask(tight, { 'io.taskwire.sysctl': 'default' }, 'tw.sc');
    expect(inCgroup(d.cgroup, [write(PORT_START, '1000'), read('kernel.ostype')])).toEqual([EPERM, OK]);

    const replace = hostWith({ policy: { default: 'deny' }, annotations: 'replace' });
    const r = await startTask(replace, { 'io.taskwire.sysctl': 'allow' }, 'tw.sc');
    expect(inCgroup(r.cgroup, [write(PORT_START, '1000'), read('kernel.ostype')])).toEqual([OK, OK]);

    const forbid = hostWith({ policy: { default: 'read-only' }, annotations: 'forbid' });
    const { pid } = await cgroupWithProcess();
    const res = await hook('createRuntime', { id: uniq('tw.sc'), pid, annotations: { 'io.taskwire.sysctl': 'allow' } }, forbid.configPath);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/io\.taskwire\.sysctl: the host accepts only "default" here/);
  });

  test("the bundle's linux.sysctl (name, value) passes a read-only policy, and nothing else does", async () => {
    const bundle = tempDir('tw-sc-bundle-');
    writeFileSync(join(bundle, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', linux: { sysctl: { [PORT_START]: '1000', 'net/ipv4/ping_group_range': '0 10' } } }));
    const t = await startTask(open, { 'io.taskwire.sysctl': 'read-only' }, 'tw.sc', bundle);
    expect(t.summary('sysctl').bundleSysctls).toEqual({ [PORT_START]: '1000', [PING_RANGE]: '0 10' });
    const r = inCgroup(t.cgroup, [write(PORT_START, '1000'), read(PORT_START), write(PORT_START, '999'), write(PING_RANGE, '0 10'), write(PING_RANGE, '0 11'), write('net.core.somaxconn', '1000')]);
    expect(r).toEqual([OK, { ok: true, value: '1000' }, EPERM, OK, EPERM, EPERM]);

    // bundleSysctls "policy": the same bundle is refused up front, naming the sysctl.
    const strict = hostWith({ policy: { default: 'read-only' }, bundleSysctls: 'policy' });
    const { pid } = await cgroupWithProcess();
    const res = await hook('createRuntime', { id: uniq('tw.sc'), pid, bundle, annotations: { 'io.taskwire.sysctl': 'default' } }, strict.configPath);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain(`linux.sysctl sets ${PORT_START}="1000", which the host sysctl policy refuses (default`);
  });

  test('denied accesses become ring buffer events with the right fields, and are counted', async () => {
    const t = await startTask(open, policy({ default: 'read-only', events: true, rules: [{ name: 'kernel.ostype', access: 'deny' }, { name: PORT_START, access: 'allow', values: [1000] }] }), 'tw.sc');
    const pinDir = join(containerPinDir(open.layout, t.id), PLUGIN_DIR);
    const events: SysctlEvent[] = [];
    const rb = new RingBuffer(join(pinDir, EVENTS_PIN), (b) => events.push(decodeSysctlEvent(b)));
    try {
      expect(inCgroup(t.cgroup, [read('kernel.ostype'), write(PORT_START, '1000'), write(PORT_START, '77\n'), write(PING_RANGE, '0 0')])).toEqual([EPERM, OK, EPERM, EPERM]);
      expect(rb.consume()).toBe(3);
    } finally {
      rb.close();
    }
    expect(events.map(({ op, name, value, reason, comm }) => ({ op, name, value, reason, comm }))).toEqual([
      { op: 'read', name: 'kernel.ostype', value: undefined, reason: 'policy', comm: expect.stringMatching(/^.+$/) },
      { op: 'write', name: PORT_START, value: '77', reason: 'value', comm: expect.stringMatching(/^.+$/) },
      { op: 'write', name: PING_RANGE, value: '0 0', reason: 'policy', comm: expect.stringMatching(/^.+$/) },
    ]);
    expect(events[0].pid).toBeGreaterThan(1);
    expect(events.every((e) => e.cgroupId === BigInt(t.record.cgroupId))).toBe(true);
    const stats = BpfMap.openPinned(join(pinDir, `map_${STATS_MAP}`));
    const sum = (k: number) => stats.lookupPerCpu(u32Key, k, statValue)!.reduce((a, b) => a + b, 0n);
    expect([sum(STAT.readDenied), sum(STAT.writeDenied), sum(STAT.eventsLost)]).toEqual([1n, 2n, 0n]);
    stats.close();
  });

  test('poststop removes everything; the cgroup is then unrestricted', async () => {
    const t: Task = await startTask(open, { 'io.taskwire.sysctl': 'deny' }, 'tw.sc');
    expect(inCgroup(t.cgroup, [read('kernel.ostype')])).toEqual([EPERM]);
    await emptyCgroup(t.cgroup);
    expect((await hook('poststop', { id: t.id }, open.configPath)).code).toBe(0);
    expect(hookBinary('poststop', { id: t.id }, open.configPath)).toEqual({ code: 0, stderr: '' });
    const layout = open.layout;
    expect(existsSync(containerPinDir(layout, t.id))).toBe(false);
    expect(readRecord(layout, t.id)).toBeUndefined();
    await eventually(() => cgroupPrograms(t.cgroup).length === 0, 'sysctl program detached');
    expect(inCgroup(t.cgroup, [read('kernel.ostype')])).toEqual([{ ok: true, value: 'Linux' }]);
  });

  test('a policy file named @NAME in the policy directory', async () => {
    mkdirSync(open.config.policyDir, { recursive: true });
    writeFileSync(join(open.config.policyDir, 'no-ostype.json'), JSON.stringify({ default: 'allow', rules: [{ name: 'kernel.ostype', access: 'deny' }] }));
    const t = await startTask(open, { 'io.taskwire.sysctl': '@no-ostype' }, 'tw.sc');
    expect(inCgroup(t.cgroup, [read('kernel.ostype'), read('kernel.osrelease')])).toEqual([EPERM, OK]);
  });
});
