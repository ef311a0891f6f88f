/*
 * The netns plugin on the real (host) kernel: a "container" is a process in its own netns
 * (`unshare -n`) inside a test cgroup, wired by the real createRuntime hook. This kernel has no
 * netkit, so auto must give veth with tcx programs; netkit itself is covered by the kernel matrix
 * (test/vm/focused.sh on Debian 6.12).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cgroup2Mount } from '../../lib/host/discovery';

import { describePrivileged } from '../helpers/privileged';
import { emptyCgroup, eventually, onCleanup, removeCgroup, runCleanups, tempCgroup, testHost, TestHost, uniq, waitInCgroup, cgroupPrograms } from '../helpers/kernel';
import { hook, hookBinary, hookBinaryAsync } from '../helpers/hook';
import { cli } from '../helpers/cli';
import { actor, once } from '../helpers/net';
import { destroyContainer } from '../../lib/pipeline';
import { silentLog } from '../../lib/log';
import { readRecord, writeRecord } from '../../lib/state/record';
import { containerPinDir, recordPath } from '../../lib/state/paths';
import { ipamEntries } from '../../lib/state/ipam';
import { BpfMap } from '../../lib/bpf/map';
import { BPF_TCX_INGRESS, deviceProgramIds } from '../../lib/bpf/netdev';
import { epKey, epValue } from '../../plugins/netns/codec';
import { epsMapPath, sharedDir, uplinkPinPath } from '../../plugins/netns/shared';
import type { NetnsSummary } from '../../plugins/netns';
import { nthAddress, parseCidr, prefixSize } from '../../lib/net/addr';

interface NsTask {
  id: string;
  cgroup: string;
  pid: number;
  netns: string;
  s: NetnsSummary;
}

const HOST_NETNS = readlinkSync('/proc/self/ns/net');

async function netnsProcess(): Promise<{ cgroup: string; pid: number; netns: string }> {
  const cgroup = tempCgroup();
  const p = spawn('sh', ['-c', `echo $$ > ${cgroup}/cgroup.procs && exec unshare -n sleep 600`], { stdio: 'ignore' });
  onCleanup(() => p.kill('SIGKILL'));
  await waitInCgroup(cgroup, p.pid!);
  const netns = `/proc/${p.pid}/ns/net`;
  await eventually(() => readlinkSync(netns) !== HOST_NETNS, 'unshare -n');
  return { cgroup, pid: p.pid!, netns };
}

async function startNs(host: TestHost, annotation: string): Promise<NsTask> {
  const id = uniq('tw.ns');
  const { cgroup, pid, netns } = await netnsProcess();
  onCleanup(() => destroyContainer(host.layout, id, silentLog()));
  const r = await hook('createRuntime', { id, pid, annotations: { 'io.taskwire.netns': annotation } }, host.configPath);
  if (r.code !== 0) throw new Error(`createRuntime failed: ${r.stderr}`);
  const rec = readRecord(host.layout, id)!;
  expect(rec.pid).toBe(pid);
  return { id, cgroup, pid, netns, s: rec.plugins.find((p) => p.name === 'netns')!.summary as NetnsSummary };
}

const ipj = (args: string[], netns?: string) =>
  JSON.parse(execFileSync(netns ? 'nsenter' : 'ip', netns ? [`--net=${netns}`, 'ip', '-j', ...args] : ['-j', ...args], { encoding: 'utf8' }) || '[]');
const hostLinks = (): string[] => ipj(['link', 'show']).map((l: any) => l.ifname);

describePrivileged('netns on the real kernel', () => {
  let host: TestHost;
  let svc4: string;
  let svc6: string;
  beforeAll(() => {
    host = testHost((cfg) => {
      // A host services target unique to this run, on lo (removed in cleanup).
      // The top of this run's pools: auto allocation starts at the bottom.
      const top = (p: string) => nthAddress(parseCidr(p, 'pool'), prefixSize(parseCidr(p, 'pool')) - 2n);
      svc4 = top(cfg.pools.default.ip4);
      svc6 = top(cfg.pools.default.ip6);
      cfg.plugins.netns.hostServices = { ip4: svc4, ip6: svc6, ports: [], annotationPorts: [18125, 18126] };
    });
    for (const [a, l] of [[svc4, 32], [svc6, 128]] as const) {
      execFileSync('ip', ['addr', 'add', `${a}/${l}`, 'dev', 'lo', ...(l === 128 ? ['nodad'] : [])]);
      onCleanup(() => execFileSync('ip', ['addr', 'del', `${a}/${l}`, 'dev', 'lo']));
    }
  });
  afterAll(runCleanups);

  test('auto: veth with a tcx program here, addresses and gateway routes inside, /32 and /128 outside', async () => {
    const t = await startNs(host, 'auto');
    expect(t.s).toMatchObject({ device: 'veth', attach: 'tcx', gateway4: '169.254.1.1', gateway6: 'fe80::1', mtu: 1500 });
    expect(t.s.hostDevice).toMatch(/^tw[0-9a-f]{8}$/);
    const eth0 = ipj(['addr', 'show', 'dev', 'eth0'], t.netns)[0];
    expect(eth0.operstate).toBe('UP');
    expect(eth0.addr_info.map((a: any) => a.local)).toEqual(expect.arrayContaining([t.s.ip4, t.s.ip6]));
    expect(ipj(['route', 'show', 'default'], t.netns)[0]).toMatchObject({ gateway: '169.254.1.1', dev: 'eth0' });
    expect(ipj(['-6', 'route', 'show', 'default'], t.netns)[0]).toMatchObject({ gateway: 'fe80::1', dev: 'eth0' });
    expect(ipj(['route', 'show', `${t.s.ip4}/32`])[0]).toMatchObject({ dev: t.s.hostDevice });
    expect(ipj(['-6', 'route', 'show', `${t.s.ip6}/128`])[0]).toMatchObject({ dev: t.s.hostDevice });
    const ids = deviceProgramIds(t.s.ifindex, BPF_TCX_INGRESS);
    expect(ids).toHaveLength(1);
    expect(execFileSync('bpftool', ['-j', 'prog', 'show', 'id', String(ids[0])], { encoding: 'utf8' })).toContain('tw_ns_from_ctr');
    // The endpoint map sends both addresses to this pair.
    const eps = BpfMap.openPinned(epsMapPath(host.layout));
    const mine = [...eps.entries(epKey, epValue)].filter(([, v]) => v.ifindex === t.s.ifindex).map(([k]) => k.addr);
    eps.close();
    expect(mine.sort()).toEqual([t.s.ip4, t.s.ip6].sort());
    // Host-side sysctls only.
    expect(execFileSync('sysctl', ['-n', `net.ipv6.conf.${t.s.hostDevice}.accept_ra`], { encoding: 'utf8' }).trim()).toBe('0');
  });

  test('TCP and UDP both ways, IPv4 and IPv6', async () => {
    const t = await startNs(host, 'auto');
    for (const [fam, ctrAddr, wild] of [[4, t.s.ip4!, '0.0.0.0'], [6, t.s.ip6!, '::']] as const) {
      // host → container
      const srv = actor(t.cgroup, { op: 'tcp-listen', host: wild, port: 0 }, t.netns);
      const l = await srv.next('listening');
      expect((await once(null, { op: 'tcp-connect', host: ctrAddr, port: l.port })).map((e) => e.event)).toEqual(['connected', 'reply']);
      const usrv = actor(t.cgroup, { op: 'udp-listen', host: wild, port: 0 }, t.netns);
      const ul = await usrv.next('listening');
      expect((await once(null, { op: 'udp-send', host: ctrAddr, port: ul.port }))[0].event).toBe('reply');
      // container → host: a host address reached through the gateway, arriving from the container's address.
      const target = fam === 4 ? svc4 : svc6;
      const hsrv = actor(null, { op: 'tcp-listen', host: target, port: 0 });
      const hl = await hsrv.next('listening');
      const c = await once(t.cgroup, { op: 'tcp-connect', host: target, port: hl.port }, t.netns);
      expect(c.map((e) => e.event)).toEqual(['connected', 'reply']);
      expect(c[0].local).toBe(ctrAddr);
      const hu = actor(null, { op: 'udp-listen', host: target, port: 0 });
      const hul = await hu.next('listening');
      expect((await once(t.cgroup, { op: 'udp-send', host: target, port: hul.port }, t.netns))[0].event).toBe('reply');
      expect((await hu.next('datagram')).from).toBe(ctrAddr);
      for (const a of [srv, usrv, hsrv, hu]) a.kill();
    }
  });

  test('host services connector: gateway:port reaches the host listener; other ports do not', async () => {
    const t = await startNs(host, JSON.stringify({ services: [18126] }));
    expect(t.s.services).toEqual([18126]);
    expect(cgroupPrograms(t.cgroup)).toEqual(['tw_ns_conn4', 'tw_ns_conn6']);
    const agents = [actor(null, { op: 'tcp-listen', host: svc4, port: 18126 }), actor(null, { op: 'tcp-listen', host: svc6, port: 18126 })];
    for (const a of agents) await a.next('listening');
    const v4 = await once(t.cgroup, { op: 'tcp-connect', host: '169.254.1.1', port: 18126 }, t.netns);
    expect(v4.map((e) => e.event)).toEqual(['connected', 'reply']);
    expect(v4[0].remote).toBe(svc4);
    const v6 = await once(t.cgroup, { op: 'tcp-connect', host: 'fe80::1', port: 18126 }, t.netns);
    expect(v6.map((e) => e.event)).toEqual(['connected', 'reply']);
    expect(v6[0].remote).toBe(svc6);
    // A port not on the list is not rewritten: nothing answers at the gateway itself.
    const other = await once(t.cgroup, { op: 'tcp-connect', host: '169.254.1.1', port: 18127, timeoutMs: 1500 }, t.netns);
    expect(other[0].event).toBe('error');
    for (const a of agents) a.kill();
  });

  test('bad input: one clear line naming the problem', async () => {
    const { pid } = await netnsProcess();
    const cases: [string, RegExp][] = [
      ['{"device":"tap"}', /device/],
      ['{"ip4":"192.0.2.9"}', /outside the host's allowed prefixes/],
      ['{"services":[22]}', /port 22 is not in the host's hostServices.annotationPorts/],
      ['{"mtu":9500}', /over the host's maxMtu/],
      ['nonsense', /must be "auto" or a JSON object/],
    ];
    for (const [value, re] of cases) {
      const r = await hook('createRuntime', { id: uniq('tw.nsbad'), pid, annotations: { 'io.taskwire.netns': value } }, host.configPath);
      expect(r.code).not.toBe(0);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(re);
    }
  });

  test('netkit asked for on a kernel without it fails clearly and leaves nothing', async () => {
    const before = hostLinks();
    const { pid } = await netnsProcess();
    const id = uniq('tw.nsnk');
    const r = await hook('createRuntime', { id, pid, annotations: { 'io.taskwire.netns': '{"device":"netkit"}' } }, host.configPath);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/this kernel has no netkit/);
    expect(hostLinks()).toEqual(before);
    expect(Object.values(ipamEntries(host.layout)).some((e) => e.owner === id)).toBe(false);
  });

  test('poststop removes device, routes, map entries and pins; twice is a no-op; also after the netns is gone', async () => {
    const layout = host.layout;
    for (const killFirst of [false, true]) {
      const t = await startNs(host, JSON.stringify({ services: [18125] }));
      if (killFirst) {
        process.kill(t.pid, 'SIGKILL');
        await eventually(() => !existsSync(`/proc/${t.pid}`), 'container gone');
      } else {
        // The container's cgroup is empty but its netns lives on, held by a process elsewhere
        // (as a pod's infra container holds the netns its containers share).
        writeFileSync(join(cgroup2Mount(), 'cgroup.procs'), String(t.pid));
        await emptyCgroup(t.cgroup);
        expect(existsSync(`/proc/${t.pid}/ns/net`)).toBe(true);
      }
      expect((await hook('poststop', { id: t.id }, host.configPath)).code).toBe(0);
      expect(hookBinary('poststop', { id: t.id, status: 'stopped' }, host.configPath)).toEqual({ code: 0, stderr: '' });
      await eventually(() => !hostLinks().includes(t.s.hostDevice), 'host end deleted');
      expect(ipj(['route', 'show', `${t.s.ip4}/32`])).toEqual([]);
      expect(ipj(['-6', 'route', 'show', `${t.s.ip6}/128`])).toEqual([]);
      expect(existsSync(containerPinDir(layout, t.id))).toBe(false);
      expect(readRecord(layout, t.id)).toBeUndefined();
      expect(Object.values(ipamEntries(layout)).some((e) => e.owner === t.id)).toBe(false);
      // The map itself goes with the last live netns container (other tests' may still be up).
      if (existsSync(epsMapPath(layout))) {
        const eps = BpfMap.openPinned(epsMapPath(layout));
        expect([...eps.entries(epKey, epValue)].some(([, v]) => v.ifindex === t.s.ifindex)).toBe(false);
        eps.close();
      }
    }
  });

  test('twenty containers wired in parallel: distinct devices and addresses, all reachable, all cleaned up', async () => {
    const layout = host.layout;
    const procs = await Promise.all(Array.from({ length: 20 }, async () => ({ id: uniq('tw.nspar'), ...(await netnsProcess()) })));
    for (const p of procs) onCleanup(() => destroyContainer(layout, p.id, silentLog()));
    const codes = (await Promise.all(procs.map((t) => hookBinaryAsync('createRuntime', { id: t.id, pid: t.pid, annotations: { 'io.taskwire.netns': 'auto' } }, host.configPath)))).map((r) => r.code);
    expect(codes).toEqual(Array(20).fill(0));
    const sums = procs.map((t) => readRecord(layout, t.id)!.plugins[0].summary as NetnsSummary);
    expect(new Set(sums.map((s) => s.hostDevice)).size).toBe(20);
    expect(new Set(sums.map((s) => s.ip4)).size).toBe(20);
    expect(new Set(sums.map((s) => s.ip6)).size).toBe(20);
    const results = await Promise.all(
      procs.map(async (t, i) => {
        const srv = actor(t.cgroup, { op: 'tcp-listen', host: '::', port: 0, timeoutMs: 30000 }, t.netns);
        const l = await srv.next('listening');
        const ev = await once(null, { op: 'tcp-connect', host: sums[i].ip6, port: l.port, timeoutMs: 15000 });
        srv.kill();
        return ev.map((e) => e.event).join(',');
      }),
    );
    expect(results).toEqual(Array(20).fill('connected,reply'));
    for (const t of procs) await emptyCgroup(t.cgroup);
    for (const t of procs) expect(hookBinary('poststop', { id: t.id }, host.configPath).code).toBe(0);
    const links = hostLinks();
    expect(sums.filter((s) => links.includes(s.hostDevice))).toEqual([]);
    expect(Object.values(ipamEntries(layout)).filter((e) => procs.some((p) => p.id === e.owner))).toEqual([]);
  }, 120_000);
});

describePrivileged('netns host-wide pins and devices journaled by name', () => {
  let host: TestHost;
  const up = `twu${randomBytes(3).toString('hex')}`; // an uplink of this run (not tw<8 hex>)
  const layout = () => host.layout;
  const upIndex = () => Number(readFileSync(`/sys/class/net/${up}/ifindex`, 'utf8'));
  const upProgs = () => deviceProgramIds(upIndex(), BPF_TCX_INGRESS);
  const progName = (id: number) => JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show', 'id', String(id)], { encoding: 'utf8' })).name;
  beforeAll(() => {
    // A veth end stands in for a NIC (this kernel has no dummy driver); tcx takes either.
    execFileSync('ip', ['link', 'add', up, 'type', 'veth', 'peer', 'name', `${up}p`]);
    onCleanup(() => execFileSync('ip', ['link', 'del', up]));
    host = testHost((cfg) => {
      cfg.plugins.netns.uplinks = [up];
    });
  });
  afterAll(runCleanups);

  test('the shared map and uplink program go with the last netns container (poststop), and with gc when it died', async () => {
    const a = await startNs(host, 'auto');
    const b = await startNs(host, 'auto');
    expect(existsSync(uplinkPinPath(layout(), up))).toBe(true);
    expect(upProgs().map(progName)).toEqual(['tw_ns_to_ctr']);

    await emptyCgroup(a.cgroup);
    expect((await hook('poststop', { id: a.id }, host.configPath)).code).toBe(0);
    expect(existsSync(epsMapPath(layout()))).toBe(true); // b still uses them
    expect(upProgs()).toHaveLength(1);

    await emptyCgroup(b.cgroup);
    expect(hookBinary('poststop', { id: b.id }, host.configPath)).toEqual({ code: 0, stderr: '' });
    expect(existsSync(sharedDir(layout()))).toBe(false);
    await eventually(() => upProgs().length === 0, 'uplink program detached');

    // The next container makes them again; when it dies without poststop, gc removes them.
    const c = await startNs(host, 'auto');
    expect(upProgs()).toHaveLength(1);
    process.kill(c.pid, 'SIGKILL');
    removeCgroup(c.cgroup);
    const run = cli(host.configPath, 'gc');
    expect(run.status).toBe(0);
    expect(run.stdout).toContain(`removed ${c.id}`);
    expect(existsSync(sharedDir(layout()))).toBe(false);
    await eventually(() => upProgs().length === 0, 'uplink program detached by gc');
    expect(hostLinks()).not.toContain(c.s.hostDevice);
    expect(readRecord(layout(), c.id)).toBeUndefined();
  }, 60_000);

  test('gc removes shared pins nobody journaled (a lost record) once no live netns container is left', async () => {
    const t = await startNs(host, 'auto');
    rmSync(recordPath(layout(), t.id)); // its record lost: nobody journals the shared pins now
    process.kill(t.pid, 'SIGKILL');
    const run = cli(host.configPath, 'gc');
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('removed _shared/netns');
    expect(existsSync(sharedDir(layout()))).toBe(false);
    await eventually(() => upProgs().length === 0, 'uplink program detached by gc');
  }, 60_000);

  test('a pair journaled by name only (hook killed before its ifindex was) is deleted while down, never when up', () => {
    const mk = (name: string, upToo: boolean) => {
      execFileSync('ip', ['link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`]);
      onCleanup(() => spawnSync('ip', ['link', 'del', name]));
      if (upToo) execFileSync('ip', ['link', 'set', name, 'up']);
    };
    const down = `tw${randomBytes(4).toString('hex')}`;
    const upDev = `tw${randomBytes(4).toString('hex')}`;
    mk(down, false);
    mk(upDev, true);
    const id = uniq('tw.nsname');
    writeRecord(layout(), {
      version: 1, id, createdAt: new Date().toISOString(), stage: 'createRuntime', pid: 1, bundle: '/tmp', cgroup: '/nonexistent', cgroupId: '0',
      netns: null, complete: false, plugins: [],
      resources: [{ kind: 'netdev', name: upDev }, { kind: 'netdev', name: down }, { kind: 'netdev', name: `tw${randomBytes(4).toString('hex')}` }],
    });
    expect(destroyContainer(layout(), id, silentLog()).errors).toEqual([]);
    expect(hostLinks()).not.toContain(down);
    expect(hostLinks()).toContain(upDev);
    expect(readRecord(layout(), id)).toBeUndefined();
  });
});
