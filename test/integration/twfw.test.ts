/*
 * twfw on the real kernel: real sockets in a test cgroup (the task) against host processes and
 * against a second task, through the real createRuntime hook. Loopback carries the traffic, so
 * both the task's egress and its ingress are exercised; 127.0.0.2 stands for a second remote.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describePrivileged } from '../helpers/privileged';
import { cgroupPrograms, emptyCgroup, eventually, onCleanup, runCleanups, testHost, TestHost } from '../helpers/kernel';
import { hook } from '../helpers/hook';
import { startTask, Task } from '../helpers/task';
import { actor, once } from '../helpers/net';
import { RingBuffer } from '../../lib/bpf/ringbuf';
import { loadHostConfig, HostConfig } from '../../lib/host/config';
import { containerPinDir, Layout } from '../../lib/state/paths';
import { liveApplyHooks, PLUGIN, statePath } from '../../plugins/twfw/apply';
import { pluginPinDir } from '../../lib/state/paths';
import { linkInfo, withPinned } from '../../lib/introspect';
import { decodeEvent, eventsPath, faultAdd, faultClear, fwApply, fwStats, FwEvent } from '../../plugins/twfw/ops';
import { registryPath, updateSet } from '../../plugins/twfw/sets';

type Policy = Record<string, unknown>;

describePrivileged('twfw on the real kernel', () => {
  let host: TestHost;
  let cfg: HostConfig;
  let layout: Layout;
  beforeAll(() => {
    host = testHost((c) => {
      c.plugins.twfw.sets = { blocked: ['127.0.0.1:1'] };
    });
    cfg = loadHostConfig(host.configPath);
    layout = host.layout;
  });
  afterAll(runCleanups);

  const fw = (policy: Policy) => startTask(host, { 'io.taskwire.twfw': JSON.stringify(policy) }, 'tw.fw');

  async function listen(h: string, op: 'tcp-listen' | 'udp-listen' = 'tcp-listen', cgroup: string | null = null) {
    const a = actor(cgroup, { op, host: h, port: 0 });
    const l = await a.next('listening');
    return { a, port: l.port as number };
  }

  /** connected+reply → 'ok'; else the error code (ETIMEDOUT after timeoutMs). */
  async function tcp(cgroup: string | null, h: string, port: number, timeoutMs = 1500, localAddress?: string): Promise<string> {
    const ev = await once(cgroup, { op: 'tcp-connect', host: h, port, timeoutMs, localAddress });
    return ev.some((e) => e.event === 'reply') ? 'ok' : ev.find((e) => e.event === 'error')?.code;
  }

  async function udp(cgroup: string | null, h: string, port: number, timeoutMs = 1500): Promise<string> {
    const ev = await once(cgroup, { op: 'udp-send', host: h, port, timeoutMs });
    return ev.some((e) => e.event === 'reply') ? 'ok' : ev.find((e) => e.event === 'error')?.code;
  }

  const stat = (t: Task, rule: string) => fwStats(layout, t.id).rules.find((r) => r.rule === rule)!;

  test('egress TCP by port, v4 and v6: the dropped port fails at connect with ECONNREFUSED, the other works', async () => {
    const t = await fw({ rules: [{ name: 'no-b', direction: 'egress', action: 'drop', proto: 'tcp', ports: [0] }] });
    expect(t.summary('twfw')).toMatchObject({ rules: 1, socketLevel: true });
    expect(cgroupPrograms(t.cgroup)).toEqual(['tw_fw_connect4', 'tw_fw_connect6', 'tw_fw_egress', 'tw_fw_ingress', 'tw_fw_sendmsg4', 'tw_fw_sendmsg6']);
    for (const h of ['127.0.0.1', '::1']) {
      const a = await listen(h);
      const b = await listen(h);
      expect(await fwApplyPorts(t, b.port)).toBeGreaterThan(1);
      expect(await tcp(t.cgroup, h, a.port)).toBe('ok');
      const started = Date.now();
      expect(await tcp(t.cgroup, h, b.port)).toBe('ECONNREFUSED');
      expect(Date.now() - started).toBeLessThan(1000);
      // The host itself is not the task: its connection to the same port works.
      expect(await tcp(null, h, b.port)).toBe('ok');
      a.a.kill();
      b.a.kill();
    }
    // Counters belong to a generation: the last apply (::1) started from zero; one refused connect since.
    expect(stat(t, '0 (no-b)').packets).toBe(1n);
  });

  /** Re-points rule no-b at `port` live; returns the new generation. */
  async function fwApplyPorts(t: Task, port: number): Promise<number> {
    return fwApply(cfg, layout, t.id, JSON.stringify({ rules: [{ name: 'no-b', direction: 'egress', action: 'drop', proto: 'tcp', ports: [port] }] })).generation;
  }

  test('egress UDP: a dropped destination fails the send with EPERM; remote prefixes pick the destination', async () => {
    const u = await listen('127.0.0.1', 'udp-listen');
    const u2 = await listen('127.0.0.2', 'udp-listen');
    const t = await fw({ rules: [{ direction: 'egress', action: 'drop', proto: 'udp', remote: ['127.0.0.2/32'] }] });
    expect(await udp(t.cgroup, '127.0.0.1', u.port)).toBe('ok');
    expect(await udp(t.cgroup, '127.0.0.2', u2.port)).toBe('EPERM');
    u.a.kill();
    u2.a.kill();
  });

  test('default-drop ingress: replies to the task’s own TCP and UDP flows pass, new inbound SYNs do not', async () => {
    const t = await fw({ defaults: { ingress: 'drop' } });
    for (const h of ['127.0.0.1', '::1']) {
      const srv = await listen(h);
      expect(await tcp(t.cgroup, h, srv.port)).toBe('ok');
      srv.a.kill();
      const u = await listen(h, 'udp-listen');
      expect(await udp(t.cgroup, h, u.port)).toBe('ok');
      u.a.kill();
      const inside = await listen(h, 'tcp-listen', t.cgroup);
      expect(await tcp(null, h, inside.port, 800)).toBe('ETIMEDOUT');
      inside.a.kill();
    }
    expect(stat(t, 'established').packets).toBeGreaterThan(0n);
    expect(stat(t, 'default ingress').packets).toBeGreaterThan(0n);
  });

  test('ingress pass by local port and remote prefix under default drop; tcpFlags new blocks only new connections', async () => {
    const t = await fw({
      defaults: { ingress: 'drop' },
      rules: [{ name: 'web', direction: 'ingress', action: 'pass', proto: 'tcp', remote: ['127.0.0.2'] }],
    });
    const srv = await listen('0.0.0.0', 'tcp-listen', t.cgroup);
    expect(await tcp(null, '127.0.0.1', srv.port, 1500, '127.0.0.2')).toBe('ok');
    expect(await tcp(null, '127.0.0.1', srv.port, 800, '127.0.0.1')).toBe('ETIMEDOUT');
    srv.a.kill();

    const t2 = await fw({ rules: [{ name: 'no-new-in', direction: 'ingress', action: 'drop', proto: 'tcp', tcpFlags: 'new' }] });
    const inside = await listen('::1', 'tcp-listen', t2.cgroup);
    expect(await tcp(null, '::1', inside.port, 800)).toBe('ETIMEDOUT');
    const out = await listen('::1');
    expect(await tcp(t2.cgroup, '::1', out.port)).toBe('ok');
    expect(stat(t2, '0 (no-new-in)').packets).toBeGreaterThan(0n);
    inside.a.kill();
    out.a.kill();
  });

  test('counters count exactly: 300 UDP datagrams to a counted rule, 200 dropped by another', async () => {
    const u = await listen('127.0.0.1', 'udp-listen');
    const t = await fw({
      rules: [
        { name: 'drop', direction: 'egress', action: 'drop', proto: 'udp', ports: [u.port + 1] },
        { name: 'count', direction: 'egress', action: 'pass', proto: 'udp', ports: [u.port] },
      ],
    });
    const [sent] = await once(t.cgroup, { op: 'udp-blast', host: '127.0.0.1', port: u.port, count: 300, data: 'x'.repeat(100) });
    expect(sent).toMatchObject({ event: 'blasted', sent: 300 });
    const [dropped] = await once(t.cgroup, { op: 'udp-blast', host: '127.0.0.1', port: u.port + 1, count: 200 });
    expect(dropped).toMatchObject({ event: 'blasted', sent: 0, errors: { EPERM: 200 } });
    expect(stat(t, '1 (count)')).toMatchObject({ packets: 300n, bytes: 300n * (20n + 8n + 100n) });
    expect(stat(t, '0 (drop)').packets).toBe(200n); // refused at sendmsg
    u.a.kill();
  });

  test('log rules produce events with the right fields', async () => {
    const srv = await listen('127.0.0.1');
    const t = await fw({ rules: [{ name: 'logged', direction: 'egress', action: 'drop+log', proto: 'tcp', ports: [srv.port] }] });
    const events: FwEvent[] = [];
    const ring = new RingBuffer(eventsPath(layout, t.id), (d) => events.push(decodeEvent(d, t.id, ['d-in', 'd-out', 'est', '0 (logged)'])));
    try {
      expect(await tcp(t.cgroup, '127.0.0.1', srv.port)).toBe('ECONNREFUSED');
      await eventually(() => (ring.consume(), events.length > 0), 'an event');
    } finally {
      ring.close();
    }
    expect(events[0]).toMatchObject({ container: t.id, direction: 'egress', verdict: 'drop', layer: 'socket', proto: 'tcp', remote: '127.0.0.1', remotePort: srv.port, rule: '0 (logged)' });
    expect(Math.abs(Date.parse(events[0].time) - Date.now())).toBeLessThan(10000);
    srv.a.kill();
  });

  test('fault injection: 30% of 2,000 UDP datagrams dropped, within 5 sigma; cleared again', async () => {
    const u = await listen('127.0.0.1', 'udp-listen');
    const t = await fw({ rules: [] });
    faultAdd(cfg, layout, t.id, { dropPercent: 30, direction: 'egress', proto: 'udp' });
    const [r] = await once(t.cgroup, { op: 'udp-blast', host: '127.0.0.1', port: u.port, count: 2000, timeoutMs: 30000 });
    const n = 2000;
    const p = 0.3;
    const sigma = Math.sqrt(n * p * (1 - p));
    const dropped = r.errors.EPERM ?? 0;
    expect(dropped + r.sent).toBe(n);
    expect(Math.abs(dropped - n * p)).toBeLessThan(5 * sigma);
    expect(stat(t, 'fault#1').packets).toBe(BigInt(dropped));
    faultClear(cfg, layout, t.id);
    const [r2] = await once(t.cgroup, { op: 'udp-blast', host: '127.0.0.1', port: u.port, count: 200 });
    expect(r2).toMatchObject({ sent: 200 });
    u.a.kill();
  });

  test('live apply under traffic: never accepts what both policies drop, never refuses what both allow', async () => {
    const allowed = await listen('127.0.0.1');
    const denied = await listen('127.0.0.1');
    const flip = await listen('127.0.0.1');
    const p = (dropFlip: boolean) =>
      JSON.stringify({
        defaults: { egress: 'drop' },
        rules: [
          { direction: 'egress', action: 'pass', proto: 'tcp', ports: [allowed.port] },
          { direction: 'egress', action: dropFlip ? 'drop' : 'pass', proto: 'tcp', ports: [flip.port] },
        ],
      });
    const t = await fw(JSON.parse(p(true)));
    const loop = actor(t.cgroup, { op: 'tcp-loop', durationMs: 3000, attemptMs: 500, targets: [allowed, denied, flip].map((s) => ({ host: '127.0.0.1', port: s.port })) });
    await loop.next('started');
    let swaps = 0;
    const end = Date.now() + 2500;
    while (Date.now() < end) {
      fwApply(cfg, layout, t.id, p(swaps % 2 === 1));
      swaps++;
      await new Promise((r) => setTimeout(r, 20));
    }
    const { results } = await loop.next('summary');
    expect(swaps).toBeGreaterThan(20);
    expect(Object.keys(results[allowed.port])).toEqual(['ok']);
    expect(results[allowed.port].ok).toBeGreaterThan(10);
    expect(results[denied.port].ok).toBe(0);
    expect(results[flip.port].ok).toBeGreaterThan(0);
    for (const s of [allowed, denied, flip]) s.a.kill();
  });

  test('a live apply that fails on one link after others moved puts every link back and leaves nothing of the new generation', async () => {
    const a = await listen('127.0.0.1');
    const b = await listen('127.0.0.1');
    const drop = (port: number) => JSON.stringify({ rules: [{ name: 'no-port', direction: 'egress', action: 'drop', proto: 'tcp', ports: [port] }] });
    const t = await fw(JSON.parse(drop(a.port)));
    const pinDir = pluginPinDir(layout, t.id, PLUGIN);
    const links = readdirSync(pinDir).filter((f) => f.startsWith('link_')).sort();
    const progs = () => links.map((f) => withPinned(join(pinDir, f), (fd) => linkInfo(fd).progId));
    const before = { progs: progs(), pins: readdirSync(pinDir).sort(), state: readFileSync(statePath(layout, t.id), 'utf8') };
    expect(links).toHaveLength(6);
    const moved: string[] = [];
    liveApplyHooks.beforeLinkUpdate = (path) => {
      // Fails the fifth link: four have already been switched to the new generation by then.
      if (moved.length === 4) throw new Error(`injected failure at ${path}`);
      moved.push(path);
    };
    try {
      expect(() => fwApply(cfg, layout, t.id, drop(b.port))).toThrow(/^live policy apply for .* failed: injected failure at .*link_tw_fw_sendmsg4; generation 1 stays in force on every hook$/);
    } finally {
      delete liveApplyHooks.beforeLinkUpdate;
    }
    expect(moved).toHaveLength(4);
    expect(progs()).toEqual(before.progs);
    expect(readdirSync(pinDir).sort()).toEqual(before.pins);
    expect(readFileSync(statePath(layout, t.id), 'utf8')).toBe(before.state);
    expect(await tcp(t.cgroup, '127.0.0.1', a.port)).toBe('ECONNREFUSED');
    expect(await tcp(t.cgroup, '127.0.0.1', b.port)).toBe('ok');
    expect(stat(t, '0 (no-port)').packets).toBe(1n);
    // The same apply without the failure goes through.
    expect(fwApply(cfg, layout, t.id, drop(b.port)).generation).toBe(2);
    expect(progs().every((id, i) => id !== before.progs[i])).toBe(true);
    expect(await tcp(t.cgroup, '127.0.0.1', a.port)).toBe('ok');
    expect(await tcp(t.cgroup, '127.0.0.1', b.port)).toBe('ECONNREFUSED');
    a.a.kill();
    b.a.kill();
  });

  test('named sets: egress drop to set blocked; `set update` changes it for the running task', async () => {
    const a = await listen('127.0.0.1');
    const b = await listen('127.0.0.1');
    updateSet(layout, 'blocked', [`127.0.0.1:${a.port}`]);
    const t = await fw({ rules: [{ name: 'no-blocked', direction: 'egress', action: 'drop', proto: 'tcp', set: 'blocked' }] });
    expect(await tcp(t.cgroup, '127.0.0.1', a.port)).toBe('ECONNREFUSED');
    expect(await tcp(t.cgroup, '127.0.0.1', b.port)).toBe('ok');
    updateSet(layout, 'blocked', [`127.0.0.1:${b.port}`]);
    expect(await tcp(t.cgroup, '127.0.0.1', a.port)).toBe('ok');
    expect(await tcp(t.cgroup, '127.0.0.1', b.port)).toBe('ECONNREFUSED');
    a.a.kill();
    b.a.kill();
  });

  test('a damaged live state or set registry is refused naming the file, never read as empty, and left as it was', async () => {
    updateSet(layout, 'blocked', ['127.0.0.1:1']);
    const t = await fw({ rules: [{ name: 'no-blocked', direction: 'egress', action: 'drop', proto: 'tcp', set: 'blocked' }] });
    const state = statePath(layout, t.id);
    const goodState = readFileSync(state, 'utf8');
    const repair = (path: string, good: string, bad: string) => onCleanup(() => existsSync(path) && readFileSync(path, 'utf8') === bad && writeFileSync(path, good));
    repair(state, goodState, goodState.slice(0, 20)); // should an assertion fail before the repair below
    writeFileSync(state, goodState.slice(0, 20));
    expect(() => fwApply(cfg, layout, t.id, JSON.stringify({ rules: [] }))).toThrow(`twfw state ${state} is damaged`);
    expect(() => faultAdd(cfg, layout, t.id, { dropPercent: 30, direction: 'egress', proto: 'udp' })).toThrow(`twfw state ${state} is damaged`);
    expect(readFileSync(state, 'utf8')).toBe(goodState.slice(0, 20));
    writeFileSync(state, goodState);

    // An empty registry would give a new set bit 0, which `blocked` has in the running task's rules.
    const reg = registryPath(layout);
    const goodReg = readFileSync(reg, 'utf8');
    repair(reg, goodReg, '{"version": 1, "sets": {"blocked"');
    writeFileSync(reg, '{"version": 1, "sets": {"blocked"');
    expect(() => updateSet(layout, 'another', ['127.0.0.3'])).toThrow(`endpoint set registry ${reg} is damaged`);
    expect(readFileSync(reg, 'utf8')).toBe('{"version": 1, "sets": {"blocked"');
    writeFileSync(reg, goodReg);
    expect(updateSet(layout, 'another', ['127.0.0.3']).bit).not.toBe(JSON.parse(goodReg).sets.blocked.bit);
  });

  test('between two tasks: the server task admits only the client task’s port', async () => {
    const server = await fw({ defaults: { ingress: 'drop' }, rules: [{ direction: 'ingress', action: 'pass', proto: 'tcp', ports: ['40000-40099'] }] });
    const client = await fw({ defaults: { egress: 'drop' }, rules: [{ direction: 'egress', action: 'pass', proto: 'tcp', remote: ['::1/128'] }] });
    const open = actor(server.cgroup, { op: 'tcp-listen', host: '::1', port: 40000 + (process.pid % 100) });
    const closed = await listen('::1', 'tcp-listen', server.cgroup);
    const port = (await open.next('listening')).port;
    expect(await tcp(client.cgroup, '::1', port)).toBe('ok');
    expect(await tcp(client.cgroup, '::1', closed.port, 800)).toBe('ETIMEDOUT');
    expect(await tcp(client.cgroup, '127.0.0.1', port)).toBe('ECONNREFUSED'); // client egress default drop, at connect
    open.kill();
    closed.a.kill();
  });

  test('@NAME policies load from the policy directory; bad ones are refused naming the rule', async () => {
    mkdirSync(host.config.policyDir, { recursive: true });
    writeFileSync(join(host.config.policyDir, 'strict.json'), JSON.stringify({ defaults: { ingress: 'drop' } }));
    const t = await startTask(host, { 'io.taskwire.twfw': '@strict' }, 'tw.fw');
    expect(t.summary('twfw')).toMatchObject({ source: '@strict' });
    await expect(startTask(host, { 'io.taskwire.twfw': JSON.stringify({ rules: [{ direction: 'egress', action: 'drop' }, { name: 'bad', direction: 'egress', action: 'drop', proto: 'tcp', ports: [70000] }] }) })).rejects.toThrow(/rule 1 \(bad\)/);
    await expect(startTask(host, { 'io.taskwire.twfw': '@../etc/passwd' })).rejects.toThrow(/name/);
    expect(() => fwApply(cfg, layout, t.id, JSON.stringify({ rules: [{ direction: 'egress', action: 'pass', remote: ['10.0.0.300/8'] }] }))).toThrow(/rule 0/);
  });

  test('poststop removes pins, state and links; twice is fine', async () => {
    const t = await fw({ defaults: { ingress: 'drop' } });
    expect(existsSync(statePath(layout, t.id))).toBe(true);
    await emptyCgroup(t.cgroup);
    expect((await hook('poststop', { id: t.id }, host.configPath)).code).toBe(0);
    expect((await hook('poststop', { id: t.id }, host.configPath)).code).toBe(0);
    expect(existsSync(containerPinDir(layout, t.id))).toBe(false);
    expect(existsSync(statePath(layout, t.id))).toBe(false);
    await eventually(() => cgroupPrograms(t.cgroup).length === 0, 'links detached');
  });
});
