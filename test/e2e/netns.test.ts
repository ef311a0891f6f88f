/*
 * netns through the real runc: the bundle has a private network namespace (runc creates it and
 * brings its lo up) and io.taskwire.netns; runc runs our createRuntime and poststop hooks. We
 * look from the host (ip in the container's netns through nsenter, sockets, bpftool, the CLI)
 * and from inside (runc exec + busybox nc). This kernel has no netkit: auto gives veth + tcx;
 * netkit is the kernel matrix's job (test/vm/focused.sh on Debian 6.12).
 */
import { cliOk } from '../helpers/cli';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { describePrivileged } from '../helpers/privileged';
import { cgroupPrograms, eventually, onCleanup, runCleanups, testHost, TestHost } from '../helpers/kernel';
import { actor, once } from '../helpers/net';
import { Bundle, containerOutput, makeBundle, runcDelete, runcExec, runcRun, runcState } from '../helpers/bundle';
import { BpfMap } from '../../lib/bpf/map';
import { BPF_TCX_INGRESS, deviceProgramIds } from '../../lib/bpf/netdev';
import { nthAddress, parseCidr, prefixSize } from '../../lib/net/addr';
import { ipamEntries } from '../../lib/state/ipam';
import { containerPinDir, Layout } from '../../lib/state/paths';
import { readRecord } from '../../lib/state/record';
import { epKey, epValue } from '../../plugins/netns/codec';
import { epsMapPath } from '../../plugins/netns/shared';
import type { NetnsSummary } from '../../plugins/netns';

const ANN = 'io.taskwire.netns';
const freePort = () => randomInt(20000, 40000);

/** `ip -j` in the host netns, or in another one through nsenter (never setns in this process). */
const ipj = (args: string[], netns?: string) =>
  JSON.parse(execFileSync(netns ? 'nsenter' : 'ip', netns ? [`--net=${netns}`, 'ip', '-j', ...args] : ['-j', ...args], { encoding: 'utf8' }) || '[]');
const hostLinks = (): string[] => ipj(['link', 'show']).map((l: any) => l.ifname);

describePrivileged(
  'netns end to end with runc',
  () => {
    let host: TestHost;
    let layout: Layout;
    let svc4: string;
    let svc6: string;
    const svcPort = freePort();
    beforeAll(() => {
      host = testHost((cfg) => {
        // The host services target: the top of this run's pools, put on lo for the run (the
        // operator's job on a real host; auto allocation starts at the bottom of the pool).
        const top = (p: string) => nthAddress(parseCidr(p, 'pool'), prefixSize(parseCidr(p, 'pool')) - 2n);
        svc4 = top(cfg.pools.default.ip4);
        svc6 = top(cfg.pools.default.ip6);
        cfg.plugins.netns.hostServices = { ip4: svc4, ip6: svc6, ports: [svcPort], annotationPorts: [] };
      });
      layout = host.layout;
      for (const [a, l] of [[svc4, 32], [svc6, 128]] as const) {
        execFileSync('ip', ['addr', 'add', `${a}/${l}`, 'dev', 'lo', ...(l === 128 ? ['nodad'] : [])]);
        onCleanup(() => execFileSync('ip', ['addr', 'del', `${a}/${l}`, 'dev', 'lo']));
      }
    });
    afterAll(runCleanups);

    function summaryOf(b: Bundle): NetnsSummary {
      const rec = readRecord(layout, b.id);
      if (!rec) throw new Error(`no record for ${b.id}`);
      return rec.plugins.find((p) => p.name === 'netns')!.summary as NetnsSummary;
    }

    function epsOf(ifindex: number): string[] {
      // The shared map goes with the last netns container: then nobody has entries.
      if (!existsSync(epsMapPath(layout))) return [];
      const eps = BpfMap.openPinned(epsMapPath(layout));
      try {
        return [...eps.entries(epKey, epValue)].filter(([, v]) => v.ifindex === ifindex).map(([k]) => k.addr);
      } finally {
        eps.close();
      }
    }

    /** After runc delete: no runc container, device, route, endpoint entry, pin, record or claim. */
    async function expectNothingLeft(b: Bundle, s: NetnsSummary): Promise<void> {
      expect(runcState(b)).toBeUndefined();
      await eventually(() => !hostLinks().includes(s.hostDevice), `host end ${s.hostDevice} deleted`);
      expect(ipj(['route', 'show', `${s.ip4}/32`])).toEqual([]);
      expect(ipj(['-6', 'route', 'show', `${s.ip6}/128`])).toEqual([]);
      expect(epsOf(s.ifindex)).toEqual([]);
      expect(existsSync(containerPinDir(layout, b.id))).toBe(false);
      expect(readRecord(layout, b.id)).toBeUndefined();
      expect(Object.values(ipamEntries(layout)).filter((e) => e.owner === b.id)).toEqual([]);
      expect(existsSync(b.cgroup)).toBe(false);
    }

    test('eth0 with its addresses and routes; TCP both ways (v4, v6); the host services connector; taskwire ls; runc delete leaves nothing', async () => {
      const port = freePort();
      const b = makeBundle({
        args: ['httpd', '-f', '-p', String(port), '-h', '/www'],
        files: { 'www/index.html': 'hello from the netns\n' },
        annotations: { [ANN]: 'auto' },
        hostConfig: host.configPath,
        netns: true,
      });
      expect(runcRun(b, { detach: true })).toMatchObject({ code: 0 });
      const { pid, status } = runcState(b)!;
      expect(status).toBe('running');
      const netns = `/proc/${pid}/ns/net`;
      const s = summaryOf(b);
      expect(s).toMatchObject({ device: 'veth', attach: 'tcx', gateway4: '169.254.1.1', gateway6: 'fe80::1', services: [svcPort] });
      expect(s.hostDevice).toMatch(/^tw[0-9a-f]{8}$/);

      // Inside: eth0 up with both addresses, default routes through the link-local gateway.
      const eth0 = ipj(['addr', 'show', 'dev', 'eth0'], netns)[0];
      expect(eth0.operstate).toBe('UP');
      expect(eth0.addr_info.map((a: any) => a.local)).toEqual(expect.arrayContaining([s.ip4, s.ip6]));
      expect(ipj(['route', 'show', 'default'], netns)[0]).toMatchObject({ gateway: '169.254.1.1', dev: 'eth0' });
      expect(ipj(['-6', 'route', 'show', 'default'], netns)[0]).toMatchObject({ gateway: 'fe80::1', dev: 'eth0' });
      // Outside: the host end, its /32 and /128, its program, the endpoint entries, the connector.
      // Its peer is the container's eth0, in another netns (the host has an eth0 of its own).
      const hostEnd = ipj(['link', 'show', 'dev', s.hostDevice])[0];
      expect(hostEnd.link_netnsid).toEqual(expect.any(Number));
      expect(hostEnd.link_index).toBe(eth0.ifindex);
      expect(ipj(['route', 'show', `${s.ip4}/32`])[0]).toMatchObject({ dev: s.hostDevice });
      expect(ipj(['-6', 'route', 'show', `${s.ip6}/128`])[0]).toMatchObject({ dev: s.hostDevice });
      expect(deviceProgramIds(s.ifindex, BPF_TCX_INGRESS)).toHaveLength(1);
      expect(epsOf(s.ifindex).sort()).toEqual([s.ip4, s.ip6].sort());
      expect(cgroupPrograms(b.cgroup)).toEqual(['tw_ns_conn4', 'tw_ns_conn6']);

      // host → the server in the container, on each of its addresses.
      for (const addr of [s.ip4!, s.ip6!]) {
        const ev = await once(null, { op: 'tcp-connect', host: addr, port, data: 'GET / HTTP/1.0\r\n\r\n' });
        expect(ev.map((e) => e.event)).toEqual(['connected', 'reply']);
        expect(ev[1].data).toMatch(/^HTTP\/1\.[01] 200/);
      }

      // container → a host listener (v4 and v6): it arrives from the container's address. The
      // listener is on the service address but another port, so the connector leaves it alone.
      for (const [target, from] of [[svc4, s.ip4], [svc6, s.ip6]] as const) {
        const l = actor(null, { op: 'tcp-listen', host: target, port: 0, timeoutMs: 20000 });
        const lp = (await l.next('listening')).port;
        const r = runcExec(b, ['sh', '-c', `echo out | nc ${target} ${lp}`]);
        expect(r).toMatchObject({ code: 0, stdout: 'echo:out\n' });
        expect((await l.next('accepted')).remote).toBe(from);
        l.kill();
      }

      // The connector: the gateway on the host's configured port reaches the host agent.
      const agents = [svc4, svc6].map((a) => actor(null, { op: 'tcp-listen', host: a, port: svcPort, timeoutMs: 20000 }));
      for (const a of agents) await a.next('listening');
      expect(runcExec(b, ['sh', '-c', `echo agent4 | nc 169.254.1.1 ${svcPort}`])).toMatchObject({ code: 0, stdout: 'echo:agent4\n' });
      expect((await agents[0].next('accepted')).remote).toBe(s.ip4);
      expect(runcExec(b, ['sh', '-c', `echo agent6 | nc fe80::1 ${svcPort}`])).toMatchObject({ code: 0, stdout: 'echo:agent6\n' });
      expect((await agents[1].next('accepted')).remote).toBe(s.ip6);
      // Another port at the gateway is not rewritten: nothing answers there.
      expect(runcExec(b, ['sh', '-c', `echo x | nc -w 2 169.254.1.1 ${svcPort + 1}`]).code).not.toBe(0);
      for (const a of agents) a.kill();

      // The CLI as a user runs it: the host end with its kind and attach mode, not "gone".
      const cli = (args: string[]) => cliOk(host.configPath, 'ls', ...args);
      const mine = JSON.parse(cli(['--json'])).find((c: { id: string }) => c.id === b.id);
      expect(mine).toMatchObject({ alive: true, complete: true });
      expect(mine.devices).toEqual([{ device: s.hostDevice, kind: 'veth', attach: 'tcx' }]);
      const row = cli([]).split('\n').find((l) => l.startsWith(b.id))!;
      expect(row).toContain(`${s.hostDevice}(veth/tcx)`);
      expect(row).toContain(`${s.ip6},${s.ip4}`);

      expect(runcDelete(b)).toMatchObject({ code: 0, stderr: '' });
      expect(containerOutput(b)).toBe('');
      await expectNothingLeft(b, s);
    });

    test('a foreground runc run: the container process sees eth0 and reaches the host; poststop on exit leaves nothing', async () => {
      const l = actor(null, { op: 'tcp-listen', host: svc4, port: 0, timeoutMs: 20000 });
      const lp = (await l.next('listening')).port;
      // The process itself (no exec): what runc started is wired before it runs.
      const b = makeBundle({
        args: ['sh', '-c', `cat /sys/class/net/eth0/operstate && echo fg | nc ${svc4} ${lp}`],
        annotations: { [ANN]: JSON.stringify({ device: 'veth', ip4: 'auto' }) },
        hostConfig: host.configPath,
        netns: true,
      });
      // Read the record while it exists: the listener's accept gives us the time.
      const run = runcRun(b);
      expect(run).toEqual({ code: 0, stdout: 'up\necho:fg\n', stderr: '' });
      const accepted = await l.next('accepted');
      expect(accepted.remote).toMatch(new RegExp(`^${host.pool4.split('.').slice(0, 3).join('\\.')}\\.`));
      l.kill();
      // No record left to read the device from: nothing of ours may remain on the host at all.
      expect(runcState(b)).toBeUndefined();
      expect(existsSync(containerPinDir(layout, b.id))).toBe(false);
      expect(readRecord(layout, b.id)).toBeUndefined();
      expect(Object.values(ipamEntries(layout)).filter((e) => e.owner === b.id)).toEqual([]);
      expect(ipj(['route', 'show', `${accepted.remote}/32`])).toEqual([]);
    });
  },
  ['runc', 'bpftool', 'ip', 'nsenter'],
);
