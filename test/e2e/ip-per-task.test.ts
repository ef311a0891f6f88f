/*
 * ip-per-task through the real runc: the bundle names our hook (absolute node, no env), runc
 * runs createRuntime and poststop, and we look at the result from the host the way a user would
 * (ss, a TCP client, a listener on a host address, bpftool).
 */
import { cliOk } from '../helpers/cli';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { describePrivileged } from '../helpers/privileged';
import { cgroupPrograms, deviceAddresses, eventually, onCleanup, runCleanups, testHost, TestHost } from '../helpers/kernel';
import { hookBinary } from '../helpers/hook';
import { actor, once } from '../helpers/net';
import { Bundle, containerCgroupV2, containerOutput, makeBundle, runcCreateStart, runcDelete, runcExec, runcRun, runcState } from '../helpers/bundle';
import { ipamEntries } from '../../lib/state/ipam';
import { containerPinDir, Layout } from '../../lib/state/paths';
import { readRecord } from '../../lib/state/record';

const ANN = 'io.taskwire.ip-per-task';

/**
 * A global address of this host that is not a task IP, for "a peer outside the container". Uses
 * a real interface's address when there is one; otherwise adds a documentation/benchmark
 * address to lo for the run (not loopback, so the connect hooks do rewrite the source).
 */
function hostPeerAddress(family: 'inet' | 'inet6'): string {
  const links = JSON.parse(execFileSync('ip', ['-j', '-f', family, 'addr', 'show', 'scope', 'global'], { encoding: 'utf8' }));
  for (const l of links) if (l.ifname !== 'lo' && l.addr_info.length) return l.addr_info[0].local;
  const addr = family === 'inet6' ? `2001:db8:7a5c::${randomInt(1, 0xffff).toString(16)}` : `198.18.${randomInt(1, 254)}.${randomInt(1, 254)}`;
  const cidr = `${addr}/${family === 'inet6' ? 128 : 32}`;
  execFileSync('ip', ['addr', 'add', cidr, 'dev', 'lo', ...(family === 'inet6' ? ['nodad'] : [])]);
  onCleanup(() => execFileSync('ip', ['addr', 'del', cidr, 'dev', 'lo']));
  return addr;
}

const freePort = () => randomInt(20000, 40000);

/** Listening sockets on port P as `ss` shows them from the host: "[addr]:P" / "addr:P". */
function listeners(port: number): string[] {
  const out = execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' });
  return out.split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/)[3]);
}

/** BPF links the kernel still has on a cgroup (by id): bpftool link list, the reference view. */
function linksOnCgroup(cgroupId: string): number {
  const links = JSON.parse(execFileSync('bpftool', ['-j', 'link', 'show'], { encoding: 'utf8' }) || '[]');
  return links.filter((l: any) => l.type === 'cgroup' && String(l.cgroup_id) === cgroupId).length;
}

describePrivileged(
  'ip-per-task end to end with runc',
  () => {
    let host: TestHost;
    let layout: Layout;
    beforeAll(() => {
      host = testHost();
      layout = host.layout;
    });
    afterAll(runCleanups);

    function taskIps(b: Bundle): { ip6: string; ip4: string | null } {
      const rec = readRecord(layout, b.id);
      if (!rec) throw new Error(`no record for ${b.id}`);
      return rec.plugins.find((p) => p.name === 'ip-per-task')!.summary as { ip6: string; ip4: string | null };
    }

    /** Nothing of the container is left: runc, cgroup, pins, record, allocation, address. */
    function expectNothingLeft(b: Bundle, addrs: (string | null)[] = []): void {
      expect(runcState(b)).toBeUndefined();
      expect(existsSync(b.cgroup)).toBe(false);
      expect(existsSync(containerPinDir(layout, b.id))).toBe(false);
      expect(readRecord(layout, b.id)).toBeUndefined();
      expect(Object.values(ipamEntries(layout)).filter((e) => e.owner === b.id)).toEqual([]);
      const onLo = deviceAddresses();
      for (const a of addrs) if (a) expect(onLo).not.toContain(a);
    }

    test('runc puts the container in a v2 cgroup, the hook attaches there, taskwire ls shows it; runc delete leaves nothing', async () => {
      const b = makeBundle({ args: ['sleep', '60'], annotations: { [ANN]: 'auto' }, hostConfig: host.configPath });
      const r = runcRun(b, { detach: true });
      expect(r).toMatchObject({ code: 0 });
      const { pid, status } = runcState(b)!;
      expect(status).toBe('running');
      // runc 1.1 on this hybrid host: v1 hierarchies and the unified one get the same path.
      expect(containerCgroupV2(pid)).toBe(b.cgroup);
      // A process runc execs later joins the same cgroup, so the programs cover it too.
      expect(runcExec(b, ['cat', '/proc/self/cgroup']).stdout).toMatch(new RegExp(`^0::/${b.id.replace(/\./g, '\\.')}$`, 'm'));
      const rec = readRecord(layout, b.id)!;
      expect(rec).toMatchObject({ complete: true, cgroup: b.cgroup, pid });
      const programs = cgroupPrograms(b.cgroup);
      expect(programs).toHaveLength(9);
      expect(programs.every((p) => p.startsWith('tw_'))).toBe(true);
      const { ip6, ip4 } = taskIps(b);
      expect(deviceAddresses()).toEqual(expect.arrayContaining([ip6, ip4]));
      // The CLI as a user runs it (its text layout is the CLI tests' business; the data is ours).
      const ls = JSON.parse(cliOk(host.configPath, 'ls', '--json'));
      const mine = ls.find((c: { id: string }) => c.id === b.id);
      expect(mine).toMatchObject({ alive: true, state: 'running', complete: true, cgroup: b.cgroup });
      expect(rec.pidStart).toMatch(/^[0-9]+$/); // names the container's process for poststop's reused-id rule
      expect(mine.plugins.map((p: { name: string }) => p.name)).toEqual(['ip-per-task']);
      expect(mine.plugins[0].summary).toMatchObject({ ip6, ip4 });

      expect(runcDelete(b)).toMatchObject({ code: 0, stderr: '' });
      expectNothingLeft(b, [ip6, ip4]);
      await eventually(() => linksOnCgroup(rec.cgroupId) === 0, 'the kernel dropped the cgroup links');
    });

    test('a server inside listens on the task IP as seen from the host', async () => {
      const port = freePort();
      const b = makeBundle({
        args: ['httpd', '-f', '-p', String(port), '-h', '/www'],
        files: { 'www/index.html': 'hello from the task\n' },
        annotations: { [ANN]: JSON.stringify({ ip6: 'auto' }) },
        hostConfig: host.configPath,
      });
      expect(runcRun(b, { detach: true })).toMatchObject({ code: 0 });
      const { ip6 } = taskIps(b);
      await eventually(() => listeners(port).length > 0, `httpd listening on ${port}`);
      expect(listeners(port)).toEqual([`[${ip6}]:${port}`]);
      const events = await once(null, { op: 'tcp-connect', host: ip6, port, data: 'GET / HTTP/1.0\r\n\r\n' });
      expect(events.map((e) => e.event)).toEqual(['connected', 'reply']);
      expect(events[1].data).toMatch(/^HTTP\/1\.[01] 200/);
      expect(runcDelete(b).code).toBe(0);
      expectNothingLeft(b, [ip6]);
      expect(listeners(port)).toEqual([]);
    });

    test("the container's outbound connections arrive from its task IPs (IPv6 and IPv4)", async () => {
      const peer6 = hostPeerAddress('inet6');
      const peer4 = hostPeerAddress('inet');
      const l6 = actor(null, { op: 'tcp-listen', host: peer6, port: 0, timeoutMs: 20000 });
      const l4 = actor(null, { op: 'tcp-listen', host: peer4, port: 0, timeoutMs: 20000 });
      const p6 = (await l6.next('listening')).port;
      const p4 = (await l4.next('listening')).port;
      // nc half-closes after stdin's line; the echo server then closes, so each nc ends by itself.
      const script = `echo six | nc ${peer6} ${p6}; echo; echo four | nc ${peer4} ${p4}; echo; sleep 60`;
      const b = makeBundle({ args: ['sh', '-c', script], annotations: { [ANN]: 'auto' }, hostConfig: host.configPath });
      expect(runcRun(b, { detach: true })).toMatchObject({ code: 0 });
      const { ip6, ip4 } = taskIps(b);
      expect((await l6.next('accepted')).remote).toBe(ip6);
      expect((await l4.next('accepted')).remote).toBe(ip4);
      await eventually(() => containerOutput(b).endsWith('echo:four\n\n'), 'both replies reached the container');
      expect(containerOutput(b)).toBe('echo:six\n\necho:four\n\n');
      l6.kill();
      l4.kill();
      expect(runcDelete(b).code).toBe(0);
      expectNothingLeft(b, [ip6, ip4]);
    });

    test('a foreground runc run: poststop runs when the process exits; a second poststop is a no-op', () => {
      const b = makeBundle({ args: ['true'], annotations: { [ANN]: 'auto' }, hostConfig: host.configPath });
      const r = runcRun(b);
      expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
      expectNothingLeft(b);
      const again = hookBinary('poststop', { id: b.id, bundle: b.dir, status: 'stopped', annotations: { [ANN]: 'auto' } }, host.configPath);
      expect(again).toEqual({ code: 0, stderr: '' });
      expectNothingLeft(b);
    });

    test.each([
      ['runc run', (b: Bundle) => runcRun(b)],
      ['runc create', (b: Bundle) => runcCreateStart(b, { start: false })],
    ])('an invalid annotation makes %s fail with our one-line message and leaves nothing', (_, start) => {
      const before = deviceAddresses();
      const b = makeBundle({ args: ['sleep', '60'], annotations: { [ANN]: '2001:db8::1' }, hostConfig: host.configPath });
      const r = start(b);
      expect(r.code).not.toBe(0);
      const ours = r.stderr.split('\n').filter((l) => l.includes('taskwire:'));
      expect(ours).toHaveLength(1);
      expect(ours[0]).toMatch(`taskwire: ${b.id}: annotation ${ANN}: `);
      expect(ours[0]).toMatch(/outside the host's allowed prefixes/);
      expectNothingLeft(b);
      expect(deviceAddresses()).toEqual(before);
    });
  },
  ['runc', 'ss', 'bpftool', 'ip'],
);
