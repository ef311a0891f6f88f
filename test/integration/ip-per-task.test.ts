import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { describePrivileged } from '../helpers/privileged';
import { onCleanup, cgroupPrograms, deviceAddresses, emptyCgroup, eventually, removeCgroup, runCleanups, testHost, TestHost, uniq } from '../helpers/kernel';
import { hook, hookBinary, hookBinaryAsync } from '../helpers/hook';
import { cgroupWithProcess, startTask } from '../helpers/task';
import { destroyContainer } from '../../lib/pipeline';
import { silentLog } from '../../lib/log';
import { actor, once } from '../helpers/net';
import { BpfMap } from '../../lib/bpf/map';
import { bindKey, bindValue, BINDS_MAP, TASK_MAP, taskKey, taskValue } from '../../plugins/ip-per-task/codec';
import { sharedMapPath } from '../../lib/bpf/shared';
import { gc, gcCandidates, listContainers } from '../../lib/inventory';
import { listPorts } from '../../cli/commands/ls-ports';
import { ipamEntries } from '../../lib/state/ipam';
import { containerPinDir } from '../../lib/state/paths';
import { readRecord } from '../../lib/state/record';
import { nthAddress, parseCidr } from '../../lib/net/addr';

async function startIpt(host: TestHost, annotation: string) {
  const t = await startTask(host, { 'io.taskwire.ip-per-task': annotation }, 'tw.ipt');
  const { ip6, ip4 } = t.summary<{ ip6: string; ip4: string | null }>('ip-per-task');
  return { ...t, ip6, ip4 };
}

describePrivileged('ip-per-task on the real kernel', () => {
  let host: TestHost;
  beforeAll(() => {
    host = testHost();
  });
  afterAll(runCleanups);

  test('a TCP server on [::]:P ends up on [task IP]:P, and the post-bind map lists it', async () => {
    const t = await startIpt(host, 'auto');
    const srv = actor(t.cgroup, { op: 'tcp-listen', host: '::', port: 0, ipv6Only: true });
    const l = await srv.next('listening');
    expect(l.address).toBe(t.ip6);
    const fromHost = await once(null, { op: 'tcp-connect', host: t.ip6, port: l.port });
    expect(fromHost.map((e) => e.event)).toEqual(['connected', 'reply']);
    // The host-wide map tags the socket with the container's cgroup; ls --ports reads it so.
    const [set] = t.record.resources.filter((r) => r.kind === 'shared-object').map((r) => r.path as string);
    const binds = BpfMap.openPinned(sharedMapPath(set, BINDS_MAP));
    const entries = [...binds.entries(bindKey, bindValue)].map(([, v]) => v);
    binds.close();
    expect(entries).toContainEqual({ cgroup_id: BigInt(t.record.cgroupId), addr: t.ip6, port: l.port, protocol: 6, family: 10 });
    const ports = listPorts(listContainers(host.layout));
    expect(ports.filter((p) => p.container === t.id)).toEqual([{ container: t.id, protocol: 'tcp', address: t.ip6, port: l.port, localhost: null }]);
    // Its storage counts the task's entries (the per-task cap); the count goes back at release.
    const task = BpfMap.openPinned(sharedMapPath(set, TASK_MAP));
    const count = () => task.lookup(taskKey, BigInt(t.record.cgroupId), taskValue)!.binds;
    try {
      expect(count()).toBe(1n);
      srv.kill();
      await eventually(() => count() === 0n, 'the bind count to drop at sock_release');
    } finally {
      task.close();
    }
  });

  test('a pin root someone else made or can write is refused, with nothing left', async () => {
    const own = testHost();
    const { cgroup, pid } = await cgroupWithProcess();
    const root = join(own.bpffs, 'taskwire');
    mkdirSync(root, { mode: 0o777 });
    chmodSync(root, 0o777);
    const id = uniq('tw.owner');
    const r = await hook('createRuntime', { id, pid, annotations: { 'io.taskwire.ip-per-task': 'auto' } }, own.configPath);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/taskwire is writable by group or others: refusing to use it/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(cgroupPrograms(cgroup)).toEqual([]);
    expect(readRecord(own.layout, id)).toBeUndefined();
    expect(Object.values(ipamEntries(own.layout)).filter((e) => e.owner === id)).toEqual([]);
    chmodSync(root, 0o700);
    expect((await hook('createRuntime', { id, pid, annotations: { 'io.taskwire.ip-per-task': 'auto' } }, own.configPath)).code).toBe(0);
    await emptyCgroup(cgroup);
    expect((await hook('poststop', { id }, own.configPath)).code).toBe(0);
    expect(readRecord(own.layout, id)).toBeUndefined();
  });

  test('the object is verified once per host: later containers link the same programs; a sub-cgroup keeps its container address; gc unloads unused sets', async () => {
    // A host of its own (private bpffs): no other test's container uses its loaded object.
    const own = testHost();
    const a = await startIpt(own, 'auto');
    const b = await startIpt(own, 'auto');
    const progIds = (cgroup: string) => JSON.parse(execFileSync('bpftool', ['-j', 'cgroup', 'show', cgroup], { encoding: 'utf8' })).map((p: { id: number }) => p.id).sort();
    expect(progIds(a.cgroup).length).toBeGreaterThan(0);
    expect(progIds(b.cgroup)).toEqual(progIds(a.cgroup));
    const setOf = (t: typeof a) => t.record.resources.find((r) => r.kind === 'shared-object')!.path as string;
    expect(setOf(b)).toBe(setOf(a));

    // The cgroup storage belongs to the cgroup the programs are attached to, so a process in a
    // child cgroup (systemd in a container, a nested runtime) still binds to its container's IP.
    const child = join(b.cgroup, 'inner');
    mkdirSync(child);
    const srv = actor(child, { op: 'tcp-listen', host: '::', port: 0, ipv6Only: true });
    expect((await srv.next('listening')).address).toBe(b.ip6);
    srv.kill();
    removeCgroup(child);

    const layout = own.layout;
    const item = `_shared/objects/${basename(setOf(a))}`;
    // A loader's directory before it is published is never gc's (it would publish a partial set).
    mkdirSync(join(dirname(setOf(a)), 'tmp-1-1'));
    expect(gcCandidates(layout).map((i) => i.id).filter((i) => i.includes('tmp-'))).toEqual([]);
    expect(gcCandidates(layout).map((i) => i.id)).not.toContain(item);
    destroyContainer(layout, a.id, silentLog());
    expect(gcCandidates(layout).map((i) => i.id)).not.toContain(item);
    destroyContainer(layout, b.id, silentLog());
    // poststop keeps it loaded for the next container; gc unloads it.
    expect(existsSync(setOf(a))).toBe(true);
    expect(gcCandidates(layout).map((i) => i.id)).toEqual([item]);
    expect(gc(layout, silentLog(), false).removed.map((i) => i.id)).toEqual([item]);
    expect(existsSync(setOf(a))).toBe(false);
    const c = await startIpt(own, 'auto');
    expect(existsSync(setOf(c))).toBe(true);
  });

  test('IPv4: a wildcard bind moves to the task IPv4; TCP and unconnected UDP leave from it', async () => {
    const t = await startIpt(host, 'auto');
    expect(t.ip4).toMatch(/^10\.123\./);
    const srv = actor(t.cgroup, { op: 'tcp-listen', host: '0.0.0.0', port: 0 });
    expect((await srv.next('listening')).address).toBe(t.ip4);
    srv.kill();

    const hostTcp = actor(null, { op: 'tcp-listen', host: '127.0.0.1', port: 0 });
    const hl = await hostTcp.next('listening');
    // A loopback destination is left alone: the source stays 127.0.0.1.
    const [c1] = await once(t.cgroup, { op: 'tcp-connect', host: '127.0.0.1', port: hl.port });
    expect(c1.local).toBe('127.0.0.1');

    // A host listener on another host address (a second task's IPv4 stands in for a remote
    // peer): without the program the kernel would pick that address itself as the source.
    const other = await startIpt(host, 'auto');
    const hostTcp4 = actor(null, { op: 'tcp-listen', host: other.ip4!, port: 0 });
    const h4 = await hostTcp4.next('listening');
    const [c2] = await once(t.cgroup, { op: 'tcp-connect', host: other.ip4, port: h4.port });
    expect(c2.event).toBe('connected');
    expect(c2.local).toBe(t.ip4);

    // A dual-stack IPv6 socket reaching IPv4 through a v4-mapped address leaves from the
    // v4-mapped task IPv4 (connect6 sees ::ffff:a.b.c.d).
    const [c3] = await once(t.cgroup, { op: 'tcp-connect', host: `::ffff:${other.ip4}`, port: h4.port });
    expect(c3.event).toBe('connected');
    expect(c3.local).toBe(`::ffff:${t.ip4}`);

    const udp = actor(null, { op: 'udp-listen', host: '0.0.0.0', port: 0 });
    const ul = await udp.next('listening');
    const [reply] = await once(t.cgroup, { op: 'udp-send', host: other.ip4, port: ul.port });
    expect(reply.event).toBe('reply');
    const seen = await udp.next('datagram');
    expect(seen.from).toBe(t.ip4);
    for (const a of [hostTcp, hostTcp4, udp]) a.kill();
  });

  test('IPv6: a TCP client reaching a host listener and unconnected UDP arrive from the task IP', async () => {
    const t = await startIpt(host, JSON.stringify({ ip6: 'auto' }));
    expect(t.ip4).toBeNull();
    // No IPv4 address, no IPv4 rewriting programs on the cgroup.
    expect(cgroupPrograms(t.cgroup)).toEqual(['tw_ipt_bind6', 'tw_ipt_connect6', 'tw_ipt_post_bind4', 'tw_ipt_post_bind6', 'tw_ipt_release', 'tw_ipt_sendmsg6']);
    // A host listener on another host address (a second task's IP stands in for a remote peer).
    const other = await startIpt(host, 'auto');
    const hostSrv = actor(null, { op: 'tcp-listen', host: other.ip6, port: 0 });
    const hl = await hostSrv.next('listening');
    const events = await once(t.cgroup, { op: 'tcp-connect', host: other.ip6, port: hl.port });
    expect(events.map((e) => e.event)).toEqual(['connected', 'reply']);
    expect((await hostSrv.next('accepted')).remote).toBe(t.ip6);

    const udp = actor(null, { op: 'udp-listen', host: '::', port: 0 });
    const ul = await udp.next('listening');
    const [reply] = await once(t.cgroup, { op: 'udp-send', host: other.ip6, port: ul.port });
    expect(reply.event).toBe('reply');
    expect((await udp.next('datagram')).from).toBe(t.ip6);

    // Loopback stays loopback, and a process outside the cgroup is untouched.
    const [lo] = await once(t.cgroup, { op: 'tcp-connect', host: '::1', port: (await (async () => {
      const s = actor(null, { op: 'tcp-listen', host: '::1', port: 0 });
      return (await s.next('listening')).port;
    })()) });
    expect(lo.local).toBe('::1');
    const outside = actor(null, { op: 'tcp-listen', host: '::', port: 0, ipv6Only: true });
    expect((await outside.next('listening')).address).toBe('::');
    for (const a of [hostSrv, udp, outside]) a.kill();
  });

  test('poststop undoes everything; twice is a no-op; the cgroup then behaves normally', async () => {
    const t = await startIpt(host, 'auto');
    const layout = host.layout;
    expect(cgroupPrograms(t.cgroup)).toHaveLength(9);
    expect(deviceAddresses()).toContain(t.ip6);
    await emptyCgroup(t.cgroup); // the container has stopped; its cgroup stays for the check below
    expect((await hook('poststop', { id: t.id }, host.configPath)).code).toBe(0);
    expect(hookBinary('poststop', { id: t.id }, host.configPath)).toEqual({ code: 0, stderr: '' });
    expect(existsSync(containerPinDir(layout, t.id))).toBe(false);
    expect(readRecord(layout, t.id)).toBeUndefined();
    expect(deviceAddresses()).not.toContain(t.ip6);
    expect(Object.values(ipamEntries(layout)).some((e) => e.owner === t.id)).toBe(false);
    await eventually(() => cgroupPrograms(t.cgroup).length === 0, 'links detached');
    const srv = actor(t.cgroup, { op: 'tcp-listen', host: '::', port: 0, ipv6Only: true });
    expect((await srv.next('listening')).address).toBe('::');
    srv.kill();
  });

  test('after the cgroup is deleted, poststop (no pid, empty env) still cleans up', async () => {
    const t = await startIpt(host, 'auto');
    removeCgroup(t.cgroup);
    expect(hookBinary('poststop', { id: t.id, status: 'stopped' }, host.configPath)).toEqual({ code: 0, stderr: '' });
    expect(existsSync(containerPinDir(host.layout, t.id))).toBe(false);
    expect(deviceAddresses()).not.toContain(t.ip6);
  });

  test('poststop reads only where the state is: a host config broken elsewhere still lets it undo everything', async () => {
    const t = await startIpt(host, 'auto');
    removeCgroup(t.cgroup);
    const broken = join(host.dir, `broken-${t.id}.json`);
    const cfg = JSON.parse(readFileSync(host.configPath, 'utf8'));
    cfg.plugins['ip-per-task'].enabled = 'yes'; // invalid, and irrelevant to undoing
    writeFileSync(broken, JSON.stringify(cfg));
    expect((await hook('createRuntime', { id: uniq('tw.nope'), pid: process.pid, annotations: { 'io.taskwire.ip-per-task': 'auto' } }, broken)).stderr).toMatch(/must be boolean/);
    expect(hookBinary('poststop', { id: t.id, status: 'stopped' }, broken)).toEqual({ code: 0, stderr: '' });
    expect(readRecord(host.layout, t.id)).toBeUndefined();
    expect(deviceAddresses()).not.toContain(t.ip6);
    // Where the state is must still be right: a wrong type there is refused (exit 0, logged).
    cfg.plugins['ip-per-task'].enabled = true;
    cfg.runDir = 7;
    writeFileSync(broken, JSON.stringify(cfg));
    expect(hookBinary('poststop', { id: t.id, status: 'stopped' }, broken).stderr).toMatch(/runDir must be string/);
  });

  test('auto under 20 parallel hooks gives 20 distinct addresses', async () => {
    const tasks = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const id = uniq('tw.par');
        onCleanup(() => destroyContainer(host.layout, id, silentLog()));
        return { id, ...(await cgroupWithProcess()) };
      }),
    );
    const results = await Promise.all(tasks.map((t) => hookBinaryAsync('createRuntime', { id: t.id, pid: t.pid, annotations: { 'io.taskwire.ip-per-task': 'auto' } }, host.configPath)));
    const codes = results.map((r) => r.code);
    expect(codes).toEqual(Array(20).fill(0));
    const layout = host.layout;
    const addrs = tasks.map((t) => (readRecord(layout, t.id)!.plugins[0].summary as { ip6: string }).ip6);
    expect(new Set(addrs).size).toBe(20);
    for (const t of tasks) removeCgroup(t.cgroup);
    for (const t of tasks) expect((await hook('poststop', { id: t.id }, host.configPath)).code).toBe(0);
    const left = readdirSync(join(host.bpffs, 'taskwire'));
    for (const t of tasks) expect(left).not.toContain(t.id.replace(/\./g, '%2E'));
  });

  test('a bad annotation is refused with one line and leaves nothing behind', async () => {
    const { cgroup, pid } = await cgroupWithProcess();
    const layout = host.layout;
    for (const [value, message] of [
      ['2001:db8::1', /outside the host's allowed prefixes/],
      ['0177.0.0.1', /not an IPv6 address/],
      ['{"ip6":"fd00:7a5c::1","extra":1}', /unknown field "extra"/],
      ['{"ip4":"10.123.0.300"}', /not an IPv4 address/],
    ] as const) {
      const id = uniq('tw.bad');
      onCleanup(() => destroyContainer(layout, id, silentLog()));
      const r = await hook('createRuntime', { id, pid, annotations: { 'io.taskwire.ip-per-task': value } }, host.configPath);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(readRecord(layout, id)).toBeUndefined();
      expect(existsSync(containerPinDir(layout, id))).toBe(false);
    }
    expect(cgroupPrograms(cgroup)).toEqual([]);
  });

  test('auto skips a pool address the host already carries; an explicit one is refused', async () => {
    const { execFileSync } = await import('node:child_process');
    const squatter = host.pool6.replace('::/112', '::ff00');
    execFileSync('ip', ['addr', 'add', `${squatter}/128`, 'dev', 'lo', 'nodad']);
    onCleanup(() => execFileSync('ip', ['addr', 'del', `${squatter}/128`, 'dev', 'lo']));
    const { cgroup, pid } = await cgroupWithProcess();
    const id = uniq('tw.sq');
    onCleanup(() => destroyContainer(host.layout, id, silentLog()));
    const r = await hook('createRuntime', { id, pid, annotations: { 'io.taskwire.ip-per-task': squatter } }, host.configPath);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(`address ${squatter} is already configured on this host (not by taskwire)`);
    expect(cgroupPrograms(cgroup)).toEqual([]);
    expect(deviceAddresses()).toContain(squatter); // not ours to remove

    // The allocator's next three candidates are host addresses it does not know about.
    const small = testHost((cfg) => {
      cfg.pools.default = { ip6: cfg.pools.default.ip6.replace('/112', '/124') };
    });
    const base = small.pool6.replace('::/124', '::');
    for (const i of [1, 2, 3]) {
      execFileSync('ip', ['addr', 'add', `${base}${i}/128`, 'dev', 'lo', 'nodad']);
      onCleanup(() => execFileSync('ip', ['addr', 'del', `${base}${i}/128`, 'dev', 'lo']));
    }
    const t = await startIpt(small, 'auto');
    expect(t.ip6).toBe(`${base}4`);
    expect(Object.keys(ipamEntries(small.layout))).toEqual([`${base}4`]);
  });

  test("a failed placement releases its family's claims without touching addresses that are not ours", async () => {
    // The IPv6 asked for is on the host already; the IPv4 pool's next address is too (an admin's).
    // Both are claimed in one transaction; the IPv6 add fails first, and the undo must not take
    // the admin's IPv4 address off the device for an allocation that was never placed.
    const own = testHost();
    const squat6 = own.pool6.replace('::/112', '::ab');
    const admin4 = nthAddress(parseCidr(own.pool4, 'pool'), 1n);
    for (const [a, len] of [[squat6, 128], [admin4, 32]] as const) {
      execFileSync('ip', ['addr', 'add', `${a}/${len}`, 'dev', 'lo', ...(len === 128 ? ['nodad'] : [])]);
      onCleanup(() => execFileSync('ip', ['addr', 'del', `${a}/${len}`, 'dev', 'lo']));
    }
    const { pid } = await cgroupWithProcess();
    const id = uniq('tw.pair');
    const r = await hook('createRuntime', { id, pid, annotations: { 'io.taskwire.ip-per-task': JSON.stringify({ ip6: squat6, ip4: 'auto' }) } }, own.configPath);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(`address ${squat6} is already configured on this host (not by taskwire)`);
    expect(deviceAddresses()).toEqual(expect.arrayContaining([squat6, admin4]));
    expect(ipamEntries(own.layout)).toEqual({});
    expect(readRecord(own.layout, id)).toBeUndefined();
  });

  test('an address in use by another container is refused, and the first keeps it', async () => {
    const a = await startIpt(host, JSON.stringify({ ip6: host.pool6.replace('::/112', '::77') }));
    const { cgroup, pid } = await cgroupWithProcess();
    const dupId = uniq('tw.dup');
    onCleanup(() => destroyContainer(host.layout, dupId, silentLog()));
    const r = await hook('createRuntime', { id: dupId, pid, annotations: { 'io.taskwire.ip-per-task': a.ip6 } }, host.configPath);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(`in use by container ${a.id}`);
    expect(deviceAddresses()).toContain(a.ip6);
    expect(cgroupPrograms(cgroup)).toEqual([]);
  });
});
