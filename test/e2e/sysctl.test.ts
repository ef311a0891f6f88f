/*
 * sysctl control through the real runc: runc writes the bundle's linux.sysctl from inside the
 * container's cgroup after createRuntime, so the policy our hook attached must let exactly that
 * write through, while the container's own writes are refused. runc mounts /proc/sys read-only
 * by default; the bundle takes it out of readonlyPaths so that a refusal can only be ours (EPERM,
 * not EROFS).
 */
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { describePrivileged } from '../helpers/privileged';
import { cgroupPrograms, eventually, runCleanups, testHost, TestHost } from '../helpers/kernel';
import { makeBundle, runcRun, runcState } from '../helpers/bundle';
import { containerPinDir, Layout } from '../../lib/state/paths';
import { readRecord } from '../../lib/state/record';

const SCRIPT = [
  'cat /proc/sys/net/ipv4/ip_unprivileged_port_start',
  '(echo "0 0" > /proc/sys/net/ipv4/ping_group_range) 2>&1 && echo write-ok',
  'cat /proc/sys/net/ipv4/ping_group_range',
  '(echo 1001 > /proc/sys/net/ipv4/ip_unprivileged_port_start) 2>&1 && echo write-ok',
  'cat /proc/sys/kernel/ostype',
].join('; ');

describePrivileged(
  'sysctl end to end with runc',
  () => {
    let host: TestHost;
    let layout: Layout;
    beforeAll(() => {
      host = testHost();
      layout = host.layout;
    });
    afterAll(runCleanups);

    function bundle(annotations: Record<string, string>) {
      return makeBundle({
        args: ['sh', '-c', SCRIPT],
        annotations,
        hostConfig: host.configPath,
        netns: true,
        sysctl: { 'net.ipv4.ip_unprivileged_port_start': '1000' },
        idPrefix: 'tw.e2e.sc',
        patch: (spec) => {
          spec.linux.readonlyPaths = (spec.linux.readonlyPaths ?? []).filter((p: string) => p !== '/proc/sys');
        },
      });
    }

    test("a read-only container starts with its linux.sysctl value; its own writes are refused; runc delete leaves nothing", async () => {
      const b = bundle({ 'io.taskwire.sysctl': 'read-only' });
      const r = runcRun(b);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const lines = r.stdout.trim().split('\n').map((l) => l.trim());
      expect(lines[0]).toBe('1000');
      expect(lines[1]).toMatch(/Operation not permitted/);
      expect(lines[2]).not.toBe('0\t0');
      expect(lines[3]).toMatch(/Operation not permitted/);
      expect(lines[4]).toBe('Linux');
      expect(lines).not.toContain('write-ok');
      // `runc run` deleted the container at exit, which ran poststop.
      expect(runcState(b)).toBeUndefined();
      expect(existsSync(containerPinDir(layout, b.id))).toBe(false);
      expect(readRecord(layout, b.id)).toBeUndefined();
      expect(existsSync(b.cgroup)).toBe(false);
      expect(execFileSync('runc', ['list', '-q'], { encoding: 'utf8' }).split('\n')).not.toContain(b.id);
    });

    test('the same container without the annotation may write (the refusal above was the policy)', async () => {
      const b = bundle({});
      const r = runcRun(b);
      expect(r.code).toBe(0);
      const lines = r.stdout.trim().split('\n').map((l) => l.trim());
      expect(lines.slice(0, 3)).toEqual(['1000', 'write-ok', '0\t0']);
      expect(lines[3]).toBe('write-ok');
      await eventually(() => !existsSync(b.cgroup) || cgroupPrograms(b.cgroup).length === 0, 'cgroup gone');
    });
  },
  ['runc', 'busybox'],
);
