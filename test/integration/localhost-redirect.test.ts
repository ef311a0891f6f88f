/*
 * localhost-redirect on the real kernel: tasks are test cgroups set up by the real hook with
 * ip-per-task + localhost-redirect; clients and servers are child processes inside them.
 */
import { cliOk } from '../helpers/cli';
import { existsSync } from 'node:fs';
import { describePrivileged } from '../helpers/privileged';
import { cgroupPrograms, emptyCgroup, eventually, runCleanups, testHost, TestHost } from '../helpers/kernel';
import { hook } from '../helpers/hook';
import { startTask } from '../helpers/task';
import { actor, once } from '../helpers/net';
import { containerPinDir } from '../../lib/state/paths';
import { listContainers } from '../../lib/inventory';
import { listPorts } from '../../cli/commands/ls-ports';

interface LrTask {
  id: string;
  cgroup: string;
  ip6: string;
  ip4: string;
}

async function startLr(host: TestHost, lr = 'true', ipt = 'auto'): Promise<LrTask> {
  const t = await startTask(host, { 'io.taskwire.ip-per-task': ipt, 'io.taskwire.localhost-redirect': lr }, 'tw.lr');
  const { ip6, ip4 } = t.summary<{ ip6: string; ip4: string }>('ip-per-task');
  return { id: t.id, cgroup: t.cgroup, ip6, ip4 };
}

/** A TCP echo server of the task on [::]:port (v6 only) and 0.0.0.0:port, tagged to tell servers apart. */
async function tcpServers(t: LrTask, tag: string, port = 0) {
  const s6 = actor(t.cgroup, { op: 'tcp-listen', host: '::', port, ipv6Only: true, tag });
  const l6 = await s6.next('listening');
  expect(l6.address).toBe(t.ip6);
  const s4 = actor(t.cgroup, { op: 'tcp-listen', host: '0.0.0.0', port: l6.port, tag });
  expect((await s4.next('listening')).address).toBe(t.ip4);
  return { port: l6.port as number, s6, s4 };
}

/** A port nobody listens on right now, on any address. */
async function freePort(): Promise<number> {
  const probe = actor(null, { op: 'tcp-listen', host: '::', port: 0 });
  const { port } = await probe.next('listening');
  probe.kill();
  await new Promise((r) => probe.proc.once('exit', r));
  return port;
}

describePrivileged('localhost-redirect on the real kernel', () => {
  let host: TestHost;
  beforeAll(() => {
    host = testHost();
  });
  afterAll(runCleanups);

  test('[::1]:P and 127.0.0.1:P reach the task server on its task IP; getpeername shows loopback', async () => {
    const a = await startLr(host);
    const { port, s6, s4 } = await tcpServers(a, 'A');

    const v6 = await once(a.cgroup, { op: 'tcp-connect', host: '::1', port, data: 'hi6' });
    expect(v6.map((e) => e.event)).toEqual(['connected', 'reply']);
    expect(v6[0]).toMatchObject({ remote: '::1', remotePort: port });
    expect(v6[1].data).toBe('A:hi6');
    // Composition with ip-per-task: the kernel picked the task IP as source for the rewritten destination.
    expect(v6[0].local).toBe(a.ip6);
    expect(await s6.next('accepted')).toMatchObject({ remote: a.ip6, local: a.ip6 });

    const v4 = await once(a.cgroup, { op: 'tcp-connect', host: '127.0.0.1', port, data: 'hi4' });
    expect(v4.map((e) => e.event)).toEqual(['connected', 'reply']);
    expect(v4[0]).toMatchObject({ remote: '127.0.0.1', remotePort: port, local: a.ip4 });
    expect(v4[1].data).toBe('A:hi4');
    expect(await s4.next('accepted')).toMatchObject({ remote: a.ip4, local: a.ip4 });

    // Any 127/8 address behaves like a wildcard-bound server's would.
    const other = await once(a.cgroup, { op: 'tcp-connect', host: '127.0.0.9', port });
    expect(other[0]).toMatchObject({ event: 'connected', remote: '127.0.0.9' });

    // Outside the task nothing is redirected: nothing listens on the host's loopback port.
    const outside = await once(null, { op: 'tcp-connect', host: '::1', port });
    expect(outside[0]).toMatchObject({ event: 'error', code: 'ECONNREFUSED' });
    for (const s of [s6, s4]) s.kill();
  });

  test('two tasks with servers on the same port each reach their own; no listener → host loopback or ECONNREFUSED', async () => {
    const [a, b] = [await startLr(host), await startLr(host)];
    const A = await tcpServers(a, 'A');
    const B = await tcpServers(b, 'B', A.port);
    for (const [t, tag] of [[a, 'A'], [b, 'B']] as const)
      for (const dst of ['::1', '127.0.0.1']) {
        const r = await once(t.cgroup, { op: 'tcp-connect', host: dst, port: A.port });
        expect(r.map((e) => `${e.event}:${e.data ?? e.remote}`)).toEqual([`connected:${dst}`, `reply:${tag}:ping`]);
      }

    const q = await freePort();
    const hostSrv = actor(null, { op: 'tcp-listen', host: '::1', port: q, tag: 'host' });
    await hostSrv.next('listening');
    const toHost = await once(a.cgroup, { op: 'tcp-connect', host: '::1', port: q });
    expect(toHost.map((e) => e.data ?? e.local)).toEqual(['::1', 'host:ping']);
    hostSrv.kill();

    const r = await freePort();
    for (const dst of ['::1', '127.0.0.1']) {
      const none = await once(a.cgroup, { op: 'tcp-connect', host: dst, port: r });
      expect(none[0]).toMatchObject({ event: 'error', code: 'ECONNREFUSED' });
    }
    for (const s of [A.s6, A.s4, B.s6, B.s4]) s.kill();
  });

  test('hostLoopback "refuse": a loopback port the task does not serve is refused, its own still work', async () => {
    const c = await startLr(host, JSON.stringify({ hostLoopback: 'refuse' }));
    const q = await freePort();
    const hostSrv = actor(null, { op: 'tcp-listen', host: '::', port: q, tag: 'host' });
    await hostSrv.next('listening');
    for (const dst of ['::1', '127.0.0.1']) {
      const r = await once(c.cgroup, { op: 'tcp-connect', host: dst, port: q });
      expect(r[0]).toMatchObject({ event: 'error', code: 'ECONNREFUSED' });
    }
    const udp = await once(c.cgroup, { op: 'udp-send', host: '::1', port: q });
    expect(udp[0]).toMatchObject({ event: 'error', code: 'ECONNREFUSED' });
    const own = await tcpServers(c, 'C');
    const ok = await once(c.cgroup, { op: 'tcp-connect', host: '::1', port: own.port });
    expect(ok.map((e) => e.event)).toEqual(['connected', 'reply']);
    for (const s of [hostSrv, own.s6, own.s4]) s.kill();
  });

  test('a listener that closes: a later connect is not redirected', async () => {
    const a = await startLr(host);
    const srv = actor(a.cgroup, { op: 'tcp-listen', host: '::', port: 0, ipv6Only: true, tag: 'A' });
    const { port } = await srv.next('listening');
    const hostSrv = actor(null, { op: 'tcp-listen', host: '::1', port, tag: 'host' });
    await hostSrv.next('listening');
    expect((await once(a.cgroup, { op: 'tcp-connect', host: '::1', port }))[1].data).toBe('A:ping');
    srv.kill();
    await new Promise((r) => srv.proc.once('exit', r));
    const after = await once(a.cgroup, { op: 'tcp-connect', host: '::1', port });
    expect(after.map((e) => e.data ?? e.local)).toEqual(['::1', 'host:ping']);
    hostSrv.kill();
  });

  test.each([
    ['IPv6', '::', '::1'],
    ['IPv4', '0.0.0.0', '127.0.0.1'],
  ])('UDP echo through loopback (%s): replies come from the loopback address, connected or not', async (_f, any, lo) => {
    const a = await startLr(host);
    const b = await startLr(host);
    const v6only = any === '::' ? { ipv6Only: true } : {};
    const srv = actor(a.cgroup, { op: 'udp-listen', host: any, port: 0, ...v6only, tag: 'A' });
    const { port, address } = await srv.next('listening');
    expect([a.ip6, a.ip4]).toContain(address);
    // Another task's socket on the same port must not get A's datagrams.
    const other = actor(b.cgroup, { op: 'udp-listen', host: any, port, ...v6only, tag: 'B' });
    await other.next('listening');

    const unconnected = await once(a.cgroup, { op: 'udp-send', host: lo, port, data: 'u' });
    expect(unconnected[0]).toMatchObject({ event: 'reply', from: lo, fromPort: port, data: 'A:u' });
    expect((await srv.next('datagram')).from).toBe(address);

    const connected = await once(a.cgroup, { op: 'udp-send', host: lo, port, data: 'c', connect: true });
    expect(connected[0]).toMatchObject({ event: 'reply', from: lo, fromPort: port, data: 'A:c', remote: lo });

    const fromB = await once(b.cgroup, { op: 'udp-send', host: lo, port, data: 'b', connect: true });
    expect(fromB[0]).toMatchObject({ event: 'reply', from: lo, data: 'B:b', remote: lo });
    for (const s of [srv, other]) s.kill();
  });

  test('a task with only IPv6 leaves 127.0.0.1 alone', async () => {
    const a = await startLr(host, 'true', JSON.stringify({ ip6: 'auto' }));
    const hostSrv = actor(null, { op: 'tcp-listen', host: '127.0.0.1', port: 0, tag: 'host' });
    const { port } = await hostSrv.next('listening');
    const own = actor(a.cgroup, { op: 'tcp-listen', host: '::', port, ipv6Only: true, tag: 'A' });
    await own.next('listening');
    const r = await once(a.cgroup, { op: 'tcp-connect', host: '127.0.0.1', port });
    expect(r.map((e) => e.data ?? e.local)).toEqual(['127.0.0.1', 'host:ping']);
    for (const s of [hostSrv, own]) s.kill();
  });

  test('taskwire ls --ports shows who listens where, and the localhost address of each', async () => {
    const a = await startLr(host);
    const { port, s6, s4 } = await tcpServers(a, 'A');
    const udp = actor(a.cgroup, { op: 'udp-listen', host: '::', port, ipv6Only: true });
    await udp.next('listening');
    const layout = host.layout;
    const mine = listPorts(listContainers(layout)).filter((p) => p.container === a.id);
    expect(mine).toEqual([
      { container: a.id, protocol: 'tcp', address: a.ip4, port, localhost: '127.0.0.1' },
      { container: a.id, protocol: 'tcp', address: a.ip6, port, localhost: '::1' },
      { container: a.id, protocol: 'udp', address: a.ip6, port, localhost: '::1' },
    ]);
    const table = cliOk(host.configPath, 'ls', '--ports');
    expect(table.split('\n')[0]).toMatch(/^CONTAINER\s+PROTO\s+BOUND\s+LOCALHOST$/);
    expect(table).toMatch(new RegExp(`^${a.id.replace(/\./g, '\\.')}\\s+tcp\\s+\\[${a.ip6}\\]:${port}\\s+\\[::1\\]:${port}$`, 'm'));
    for (const s of [s6, s4, udp]) s.kill();
  });

  test('one set of programs per cgroup next to ip-per-task; poststop removes them all', async () => {
    const a = await startLr(host);
    const progs = cgroupPrograms(a.cgroup);
    expect(progs.filter((p) => p.startsWith('tw_lr_'))).toEqual(
      ['tw_lr_connect4', 'tw_lr_connect6', 'tw_lr_peer4', 'tw_lr_peer6', 'tw_lr_recvmsg4', 'tw_lr_recvmsg6', 'tw_lr_sendmsg4', 'tw_lr_sendmsg6'],
    );
    expect(progs.filter((p) => p.startsWith('tw_ipt_'))).toHaveLength(9);
    await emptyCgroup(a.cgroup);
    expect((await hook('poststop', { id: a.id }, host.configPath)).code).toBe(0);
    expect(existsSync(containerPinDir(host.layout, a.id))).toBe(false);
    await eventually(() => cgroupPrograms(a.cgroup).length === 0, 'links detached');
  });

  test('bad annotations are refused with one line naming the problem', async () => {
    const strict = testHost((cfg) => (cfg.plugins['localhost-redirect'].hostLoopback = 'refuse'));
    for (const [h, value, ann, message] of [
      [host, 'yes', 'auto', /must be "true" or an object/],
      [host, '{"hostLoopback":"maybe"}', 'auto', /hostLoopback must be equal to one of the allowed values/],
      [strict, '{"hostLoopback":"allow"}', 'auto', /not permitted: the host config refuses/],
    ] as const) {
      const err = await startTask(h, { 'io.taskwire.ip-per-task': ann, 'io.taskwire.localhost-redirect': value }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).toMatch(/io\.taskwire\.localhost-redirect/);
    }
    const alone = await startTask(host, { 'io.taskwire.localhost-redirect': 'true' }).catch((e: Error) => e);
    expect((alone as Error).message).toMatch(/requires io\.taskwire\.ip-per-task/);
  });
});
