/*
 * twfw through the real runc: a busybox container whose egress to one port is dropped and
 * logged while another port works; `taskwire monitor` (the bundled CLI_BIN) sees the event, `fw
 * stats` counts it, and after `runc delete` nothing of ours is left.
 */
import { CLI_BIN } from '../helpers/cli';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { describePrivileged } from '../helpers/privileged';
import { NODE, onCleanup, runCleanups, testHost, TestHost } from '../helpers/kernel';
import { actor } from '../helpers/net';
import { makeBundle, runcDelete, runcExec, runcRun } from '../helpers/bundle';
import { containerPinDir } from '../../lib/state/paths';
import { readRecord } from '../../lib/state/record';
import { statePath } from '../../plugins/twfw/apply';
import { execFileSync } from 'node:child_process';


describePrivileged(
  'twfw end to end with runc',
  () => {
    let host: TestHost;
    beforeAll(() => {
      host = testHost();
    });
    afterAll(runCleanups);

    test('egress to one port is dropped and logged, another port works; runc delete leaves nothing', async () => {
      const listen = async () => {
        const a = actor(null, { op: 'tcp-listen', host: '127.0.0.1', port: 0 });
        return { a, port: (await a.next('listening')).port as number };
      };
      const [open, closed] = [await listen(), await listen()];
      const policy = { rules: [{ name: 'no-closed', direction: 'egress', action: 'drop+log', proto: 'tcp', ports: [closed.port] }] };
      const b = makeBundle({ args: ['sleep', '60'], annotations: { 'io.taskwire.twfw': JSON.stringify(policy) }, hostConfig: host.configPath, idPrefix: 'tw.fw' });
      expect(runcRun(b, { detach: true })).toMatchObject({ code: 0 });

      const monitor = spawn(NODE, [CLI_BIN, '--config', host.configPath, 'monitor', b.id, '--json', '--count', '1', '--timeout', '20'], { stdio: ['ignore', 'pipe', 'inherit'] });
      onCleanup(() => monitor.kill('SIGKILL'));
      const firstLine = new Promise<string>((res) => createInterface({ input: monitor.stdout! }).once('line', res));
      await new Promise((r) => setTimeout(r, 1500)); // the CLI_BIN is up and polling

      const nc = (port: number) => runcExec(b, ['sh', '-c', `echo hi | nc -w 2 127.0.0.1 ${port}`]);
      expect(nc(open.port).stdout).toContain('echo:hi');
      const refused = nc(closed.port);
      expect(refused.code).not.toBe(0);
      expect(refused.stdout + refused.stderr).toMatch(/refused/i);

      const event = JSON.parse(await firstLine);
      expect(event).toMatchObject({ container: b.id, direction: 'egress', verdict: 'drop', proto: 'tcp', remote: '127.0.0.1', remotePort: closed.port, rule: '0 (no-closed)' });
      const stats = JSON.parse(execFileSync(NODE, [CLI_BIN, '--config', host.configPath, 'fw', 'stats', b.id, '--json'], { encoding: 'utf8' }));
      expect(stats.rules.find((r: { rule: string }) => r.rule === '0 (no-closed)').packets).toBe('1');

      expect(runcDelete(b)).toMatchObject({ code: 0 });
      const layout = host.layout;
      expect(readRecord(layout, b.id)).toBeUndefined();
      expect(existsSync(containerPinDir(layout, b.id))).toBe(false);
      expect(existsSync(statePath(layout, b.id))).toBe(false);
      expect(existsSync(b.cgroup)).toBe(false);
      open.a.kill();
      closed.a.kill();
    });
  },
  ['runc', 'bpftool'],
);
