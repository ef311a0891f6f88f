/*
 * podman end to end, the way most people meet taskwire: `taskwire install --hooks-dir DIR`
 * writes the hooks.d files, podman (4.3 here) runs containers with runc on a busybox --rootfs,
 * and the hooks do the rest. Everything podman keeps is private to this run: --root/--runroot,
 * containers.conf (cgroupfs: no systemd here; file events logger; vfs storage) through
 * CONTAINERS_CONF / CONTAINERS_STORAGE_CONF, and the host config uses a private bpffs.
 *
 * hooks_dir is ALSO set in that containers.conf: podman 4.3 restarts a `--restart` container
 * from `podman container cleanup`, which does not inherit --hooks-dir, so a restarted container
 * would run without hooks (measured here: 1 createRuntime for 4 starts). docs/KUBERNETES.md and
 * cli/README.md tell users to install into a directory podman always reads.
 */
import { CLI_BIN } from '../helpers/cli';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import { busyboxRootfs } from '../../scripts/oci-bundle';
import { validate } from '../../lib/schema';
import { ipamEntries } from '../../lib/state/ipam';
import { recordPath } from '../../lib/state/paths';
import { readRecord } from '../../lib/state/record';
import { describePrivileged } from '../helpers/privileged';
import { deviceAddresses, eventually, NODE, onCleanup, runCleanups, tempDir, testHost, TestHost } from '../helpers/kernel';
import { once } from '../helpers/net';

const ULIMITS = ['--ulimit', 'nofile=1024:20000', '--ulimit', 'nproc=1024:1024'];

describePrivileged(
  'podman with taskwire installed in hooks.d',
  () => {
    let host: TestHost;
    let hooksDir: string;
    let rootfs: string;
    let env: NodeJS.ProcessEnv;
    let globals: string[];

    const podman = (args: string[], timeout = 60000) => {
      const r = spawnSync('podman', [...globals, ...args], { env, encoding: 'utf8', timeout });
      return { code: r.status ?? -1, out: r.stdout.trim(), err: r.stderr.trim() };
    };
    /** podman run [opts] --rootfs R cmd...: everything after --rootfs is the command. */
    const run = (opts: string[], cmd: string[], annotations: Record<string, string> = {}) =>
      podman(['run', ...opts, ...Object.entries(annotations).flatMap(([k, v]) => ['--annotation', `${k}=${v}`]), '--network', 'host', ...ULIMITS, '--rootfs', rootfs, ...cmd]);
    const layout = () => host.layout;
    const logLines = (id: string, msg: string) =>
      existsSync(host.logFile) ? readFileSync(host.logFile, 'utf8').split('\n').filter((l) => l.includes(id) && l.includes(`"msg":"${msg}"`)).length : 0;
    const pinDirs = () => (existsSync(join(host.bpffs, 'taskwire')) ? readdirSync(join(host.bpffs, 'taskwire')).filter((n) => !n.startsWith('_')) : []);
    const poolAddresses = () => deviceAddresses('lo').filter((a) => a.startsWith(host.pool6.split('::')[0]) || a.startsWith(host.pool4.split('.').slice(0, 3).join('.') + '.'));
    async function nothingLeft(id: string): Promise<void> {
      await eventually(() => !existsSync(recordPath(layout(), id)) && pinDirs().length === 0, `record and pins of ${id} gone`);
      expect(Object.values(ipamEntries(layout())).filter((e) => e.owner === id)).toEqual([]);
      expect(poolAddresses()).toEqual([]);
    }

    beforeAll(() => {
      host = testHost((cfg) => {
        for (const [name, section] of Object.entries(cfg.plugins as Record<string, { enabled: boolean }>)) section.enabled = name === 'ip-per-task';
      });
      hooksDir = tempDir('tw-hooks-');
      const pod = tempDir('tw-podman-');
      rootfs = busyboxRootfs(join(pod, 'rootfs'));
      writeFileSync(
        join(pod, 'containers.conf'),
        `[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nevents_logfile_path = "${pod}/events.log"\ntmp_dir = "${pod}/tmp"\nhooks_dir = ["${hooksDir}"]\n[containers]\nlog_driver = "k8s-file"\n`,
      );
      writeFileSync(join(pod, 'storage.conf'), `[storage]\ndriver = "vfs"\ngraphroot = "${pod}/root"\nrunroot = "${pod}/runroot"\n`);
      env = { ...process.env, CONTAINERS_CONF: join(pod, 'containers.conf'), CONTAINERS_STORAGE_CONF: join(pod, 'storage.conf') };
      globals = ['--root', join(pod, 'root'), '--runroot', join(pod, 'runroot'), '--runtime', '/usr/sbin/runc', '--hooks-dir', hooksDir];
      // Registered after the temp dirs: runs before they are removed.
      onCleanup(() => void podman(['rm', '--all', '--force', '--time', '0']));
      const inst = spawnSync(NODE, [CLI_BIN, '--config', host.configPath, 'install', '--hooks-dir', hooksDir], { encoding: 'utf8' });
      if (inst.status !== 0) throw new Error(`taskwire install failed: ${inst.stderr}`);
      onCleanup(() => void spawnSync(NODE, [CLI_BIN, 'uninstall', '--hooks-dir', hooksDir]));
    });
    afterAll(runCleanups);

    test('install wrote valid oci-hooks files naming this host config', () => {
      const files = readdirSync(hooksDir).sort();
      expect(files).toEqual(['taskwire-createruntime.json', 'taskwire-poststop.json']);
      for (const f of files) {
        const j = validate<any>('taskwire:oci-hooks', JSON.parse(readFileSync(join(hooksDir, f), 'utf8')), f);
        expect(j.hook.args.slice(-2)).toEqual(['--config', host.configPath]);
        expect(existsSync(j.hook.path)).toBe(true);
      }
    });

    test('with the annotation: ip-per-task takes effect; podman rm leaves nothing', async () => {
      const port = randomInt(20000, 40000);
      const r = run(['-d'], ['/bin/nc', '-ll', '-p', String(port), '-e', '/bin/cat'], { 'io.taskwire.ip-per-task': 'auto' });
      expect(r).toMatchObject({ code: 0, err: '' });
      const id = r.out.split('\n').pop()!;
      const rec = readRecord(layout(), id)!;
      expect(rec.complete).toBe(true);
      expect(rec.cgroup).toMatch(/\/libpod_parent\/libpod-[0-9a-f]{64}$/);
      expect(rec.pidStart).toMatch(/^[0-9]+$/); // names the container's process for poststop's reused-id rule
      const { ip6 } = rec.plugins[0].summary as { ip6: string };
      // The server inside asked for the wildcard address and got the task's own.
      const [c] = await once(null, { op: 'tcp-connect', host: ip6, port });
      expect(c.event).toBe('connected');
      const ls = JSON.parse(spawnSync(NODE, [CLI_BIN, '--config', host.configPath, 'ls', '--json'], { encoding: 'utf8' }).stdout);
      expect(ls.find((x: any) => x.id === id)).toMatchObject({ alive: true, devices: [{ device: 'lo', kind: 'loopback' }] });

      expect(podman(['rm', '--force', '--time', '0', id]).code).toBe(0);
      expect(logLines(id, 'poststop done')).toBe(1);
      await nothingLeft(id);
    });

    test('without annotations no hook touches the container', async () => {
      const r = run(['-d'], ['/bin/sleep', '60']);
      expect(r.code).toBe(0);
      const id = r.out.split('\n').pop()!;
      expect(existsSync(recordPath(layout(), id))).toBe(false);
      expect(pinDirs()).toEqual([]);
      expect(podman(['rm', '--force', '--time', '0', id]).code).toBe(0);
      // The hooks.d "when" never matched: no stage ran, not even poststop's quick exit.
      expect(readFileSync(host.logFile, 'utf8').includes(id)).toBe(false);
    });

    test('podman run --rm leaves nothing behind', async () => {
      const r = run(['--rm'], ['/bin/sh', '-c', 'echo ran'], { 'io.taskwire.ip-per-task': 'auto' });
      expect(r).toMatchObject({ code: 0, out: 'ran' });
      await eventually(() => pinDirs().length === 0 && !readdirSync(join(host.runDir, 'containers')).some((n) => n.endsWith('.json')), 'records gone');
      expect(poolAddresses()).toEqual([]);
    });

    test('a bad annotation refuses the container with our one line, and nothing is left', async () => {
      const r = run(['--name', `tw-bad-${process.pid}`], ['/bin/true'], { 'io.taskwire.ip-per-task': 'fd99::1' });
      expect(r.code).not.toBe(0);
      expect(r.err).toMatch(/taskwire: [0-9a-f]{64}: annotation io\.taskwire\.ip-per-task: .*outside the host's allowed prefixes/);
      const id = podman(['inspect', '--format', '{{.Id}}', `tw-bad-${process.pid}`]).out;
      await nothingLeft(id);
      podman(['rm', '--force', id]);
    });

    test('--restart: every restart runs createRuntime and poststop again; nothing is left', async () => {
      const r = run(['-d', '--restart', 'on-failure:3'], ['/bin/sh', '-c', 'sleep 0.2; exit 1'], { 'io.taskwire.ip-per-task': 'auto' });
      expect(r.code).toBe(0);
      const id = r.out.split('\n').pop()!;
      await eventually(() => podman(['inspect', '--format', '{{.State.Status}} {{.RestartCount}}', id]).out === 'exited 3', 'three restarts', 30000);
      await eventually(() => logLines(id, 'poststop done') === 4, 'four poststops', 10000);
      expect(logLines(id, 'container ready')).toBe(4);
      await nothingLeft(id);
      expect(podman(['rm', id]).code).toBe(0);
    });
  },
  ['podman', 'runc'],
);
