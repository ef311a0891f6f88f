/*
 * The CLI against real pinned state: a task made by the real createRuntime hook with
 * ip-per-task, a listener inside it (so the binds map has an entry and programs have run), then
 * ls / inspect / stats / doctor in text and JSON, in-process through cli/taskwire.ts main().
 * inspect is checked against bpftool's typed dump of the same pinned map.
 */
import { execFileSync } from 'node:child_process';
import { basename } from 'node:path';
import { main } from '../../cli/taskwire';
import { actor, once } from '../helpers/net';
import { describePrivileged } from '../helpers/privileged';
import { runCleanups, testHost, TestHost } from '../helpers/kernel';
import { startTask, Task } from '../helpers/task';
import { BINDS_MAP, TASK_MAP } from '../../plugins/ip-per-task/codec';
import { sharedMapPath } from '../../lib/bpf/shared';

interface Run {
  code: number;
  out: string;
  err: string;
}

async function cli(...argv: string[]): Promise<Run> {
  let out = '';
  let err = '';
  const so = jest.spyOn(process.stdout, 'write').mockImplementation((s: any) => ((out += String(s)), true));
  const se = jest.spyOn(process.stderr, 'write').mockImplementation((s: any) => ((err += String(s)), true));
  process.exitCode = undefined;
  try {
    const code = await main(argv);
    return { code, out, err };
  } finally {
    so.mockRestore();
    se.mockRestore();
    process.exitCode = undefined;
  }
}

describePrivileged(
  'taskwire CLI on real pinned state',
  () => {
    let host: TestHost;
    let t: Task;
    let ip6: string;
    let port: number;
    let binds: string;
    let sharedRel: string;

    beforeAll(async () => {
      host = testHost();
      t = await startTask(host, { 'io.taskwire.ip-per-task': 'auto' }, 'tw.cli');
      ip6 = t.summary<{ ip6: string }>('ip-per-task').ip6;
      const srv = actor(t.cgroup, { op: 'tcp-listen', host: '::', port: 0, ipv6Only: true });
      port = (await srv.next('listening')).port;
      const set = t.record.resources.find((r) => r.kind === 'shared-object')!.path as string;
      sharedRel = `_shared/objects/${basename(set)}`;
      binds = sharedMapPath(set, BINDS_MAP);
    });
    afterAll(runCleanups);

    test('ls: the container, its address, its device kind and 6/6 programs attached (text, --json)', async () => {
      const text = await cli('--config', host.configPath, 'ls');
      expect(text.code).toBe(0);
      const row = text.out.split('\n').find((l) => l.startsWith(t.id))!;
      expect(row).toMatch(/running\s+ip-per-task\s+/);
      expect(row).toContain(ip6);
      expect(row).toContain('lo(loopback)');
      const n = t.summary<{ programs: string[] }>('ip-per-task').programs.length;
      expect(row).toMatch(new RegExp(`${n}/${n}$`));

      const json = JSON.parse((await cli('--config', host.configPath, 'ls', '--json')).out);
      const c = json.find((x: any) => x.id === t.id);
      expect(c.devices).toEqual([{ device: 'lo', kind: 'loopback' }]);
      expect(c.programs.map((p: any) => p.name).sort()).toEqual([...t.summary<{ programs: string[] }>('ip-per-task').programs].sort());
      for (const p of c.programs) {
        expect(p.attached).toBe(true);
        expect(p.type).toBe(p.name.includes('post_bind') || p.name.includes('release') ? 'cgroup_sock' : 'cgroup_sock_addr');
        expect(p.target).toBe(`cgroup:${t.record.cgroupId}`);
      }
    });

    test('inspect: the binds map decoded (address as text, port as number), same data as bpftool', async () => {
      const json = JSON.parse((await cli('--config', host.configPath, 'inspect', t.id, '--json')).out);
      // The host-wide map of the loaded object, shown with this container's entries only.
      const d = json.find((x: any) => x.rel === `${sharedRel}/map_${BINDS_MAP}`);
      expect(d.valueType).toBe('struct tw_ipt_bind');
      expect(d.entries.every((e: any) => String(e.value.cgroup_id) === t.record.cgroupId)).toBe(true);
      const mine = d.entries.filter((e: any) => e.value.port === port);
      expect(mine).toEqual([{ key: expect.any(Number), value: { cgroup_id: expect.anything(), addr: ip6, port, protocol: 6, family: 10 } }]);
      // Its cgroup storage: this container's addresses.
      const task = json.find((x: any) => x.rel === `${sharedRel}/map_${TASK_MAP}`);
      expect(task.entries).toHaveLength(1);
      expect(String(task.entries[0].value.cgroup_id)).toBe(t.record.cgroupId);

      // bpftool shows the same entries typed through the map's BTF.
      const bt = JSON.parse(execFileSync('bpftool', ['-j', 'map', 'dump', 'pinned', binds], { encoding: 'utf8' }));
      const fromBpftool = bt.map((e: any) => ({ key: Number(e.formatted.key), port: e.formatted.value.port, protocol: e.formatted.value.protocol }));
      expect(fromBpftool).toContainEqual({ key: mine[0].key, port, protocol: 6 });
      expect(bt.length).toBeGreaterThanOrEqual(d.entries.length);

      const text = await cli('--config', host.configPath, 'inspect', t.id, BINDS_MAP);
      expect(text.code).toBe(0);
      expect(text.out).toContain(`${sharedRel}/map_${BINDS_MAP}: hash map`);
      expect(text.out).toContain(`addr=${ip6} port=${port} protocol=6 family=10`);

      // By pin path: the whole map, unfiltered.
      const byPath = JSON.parse((await cli('inspect', binds, '--json')).out);
      expect(byPath[0].entries).toEqual(expect.arrayContaining(d.entries));
    });

    test('inspect: unknown container and unknown map are one-line errors with exit 1', async () => {
      const r1 = await cli('--config', host.configPath, 'inspect', 'no-such-container');
      expect(r1.code).toBe(1);
      expect(r1.err.trim().split('\n')).toHaveLength(1);
      expect(r1.err).toMatch(/no container "no-such-container"/);
      const r2 = await cli('--config', host.configPath, 'inspect', t.id, 'nope');
      expect(r2.code).toBe(1);
      expect(r2.err).toMatch(/has no pinned map "nope" \(pinned: _shared\/objects\/ip_per_task-[0-9a-f]+\/map_tw_ipt_binds, _shared\/objects\/ip_per_task-[0-9a-f]+\/map_tw_ipt_task\)/);
    });

    test('stats: a sample counts the runs of connects made meanwhile; JIT size and map memory', async () => {
      const sampling = cli('--config', host.configPath, 'stats', t.id, '--sample', '1.5', '--json');
      await new Promise((r) => setTimeout(r, 300));
      for (let i = 0; i < 3; i++) await once(t.cgroup, { op: 'tcp-connect', host: ip6, port });
      const s = JSON.parse((await sampling).out);
      expect(s.window).toEqual({ seconds: 1.5 });
      const connect6 = s.programs.find((p: any) => /connect6/.test(p.program));
      expect(connect6.runs).toBeGreaterThanOrEqual(3);
      expect(connect6.runTimeNs).toBeGreaterThan(0);
      expect(connect6.avgNs).toBe(Math.round(connect6.runTimeNs / connect6.runs));
      for (const p of s.programs) expect(p.jitedBytes).toBeGreaterThan(0);
      const c = s.containers[0];
      expect(c.maps.map((m: any) => m.name)).toEqual(expect.arrayContaining([BINDS_MAP]));
      expect(c.mapBytes).toBeGreaterThan(0);
      expect(c.programBytes).toBeGreaterThan(0);

      const text = await cli('--config', host.configPath, 'stats', t.id, '--sample', '0');
      expect(text.code).toBe(0);
      expect(text.out).toMatch(/^runs since load/);
      expect(text.out).toMatch(new RegExp(`${t.id.replace(/[.]/g, '\\.')}\\s+ip-per-task\\s+tw_ipt_\\w+\\s+cgroup_sock`));
      expect(text.out).toMatch(/PROGRAM MEMORY\s+MAPS\s+MAP MEMORY/);
    });

    test('doctor: host facts, every plugin object probed, exit code follows "missing"', async () => {
      const r = await cli('--config', host.configPath, 'doctor', '--json');
      const d = JSON.parse(r.out);
      const get = (area: string, name: string) => d.checks.find((c: any) => c.area === area && c.name === name);
      expect(get('host', 'cgroup v2').status).toBe('ok');
      expect(get('host', 'bpffs')).toMatchObject({ status: 'ok', detail: host.bpffs });
      expect(get('host', 'libbpf').detail).toMatch(/^libbpf\.so\.1 1\.\d+/);
      expect(get('plugin ip-per-task', 'ip_per_task')).toMatchObject({ status: 'ok' });
      expect(get('plugin ip-per-task', 'ip_per_task').detail).toMatch(/cgroup_sock_addr/);
      expect(get('runtimes', 'runc').detail).toMatch(/runc version/);
      expect(r.code).toBe(d.ok ? 0 : 1);
      for (const c of d.checks.filter((x: any) => x.status === 'missing')) expect(c.fix ?? c.detail).toBeTruthy();

      const text = await cli('--config', host.configPath, 'doctor');
      expect(text.out).toMatch(/^host\n {2}ok {7}kernel: \d+\./);
      expect(text.out).toMatch(/plugin ip-per-task\n/);
    });
  },
  ['bpftool'],
);
