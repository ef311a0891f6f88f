/*
 * OCI bundles for end-to-end tests with the real runc: a busybox rootfs and a config.json made
 * by `runc spec` and patched so the container runs our hook the way a host configures it (the
 * patch itself is scripts/oci-bundle.js, shared with the demo; its header says why each field).
 *
 * Every container is force-deleted at cleanup (runCleanups), so a failing test never leaves one
 * running; `runc delete` runs our poststop hook. Ids are unique (uniq) and flat cgroup names.
 *
 *   const b = makeBundle({ args: ['sleep', '60'], annotations, hostConfig: host.configPath });
 *   runcRun(b, { detach: true });   // createRuntime ran; b.cgroup is the container's v2 cgroup
 *   ...                             // assert from the host
 *   runcDelete(b);                  // poststop ran
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cgroup2Mount } from '../../lib/host/discovery';
import { NODE, onCleanup, tempDir, uniq } from './kernel';
import { HOOK_BIN } from './hook';
import { busyboxRootfs, RUNC, writeSpec } from '../../scripts/oci-bundle';

export { RUNC };

export type HookStage = 'createRuntime' | 'prestart' | 'poststop';

export interface BundleOptions {
  /** The container's process (busybox applets are on PATH: sh, nc, httpd, wget, sleep...). */
  args: string[];
  annotations?: Record<string, string>;
  /** Host config file for our hook; without it the bundle has no hooks at all. */
  hostConfig?: string;
  /** Stages that run our hook (default createRuntime and poststop, as hooks.d installs it). */
  stages?: HookStage[];
  /** A private network namespace (runc brings its lo up); default: the host's. */
  netns?: boolean;
  /** linux.sysctl, written by runc into the container (net.* needs `netns: true`). */
  sysctl?: Record<string, string>;
  /** Extra files in the rootfs, path (relative to /) → content; e.g. a page for httpd. */
  files?: Record<string, string>;
  /** Container id prefix; the id is made unique with uniq(). */
  idPrefix?: string;
  /** Last word on the spec (capabilities, mounts...), applied after everything above. */
  patch?: (spec: Record<string, any>) => void;
}

export interface Bundle {
  /** Bundle directory (config.json, rootfs/, and the container's stdout/stderr files). */
  dir: string;
  id: string;
  /** The v2 cgroup runc puts the container in (absolute directory under the cgroup2 mount). */
  cgroup: string;
  /** The spec as written, for assertions. */
  spec: Record<string, any>;
}

export interface RuncResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs runc (sync: it returns quickly except `run` in the foreground, which has a timeout). */
export function runc(args: string[], timeoutMs = 30000): RuncResult {
  const r = spawnSync(RUNC, args, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) throw new Error(`runc ${args.join(' ')}: ${r.error.message}`);
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function makeBundle(o: BundleOptions): Bundle {
  const dir = tempDir('tw-bundle-');
  const id = uniq(o.idPrefix ?? 'tw.e2e');
  busyboxRootfs(join(dir, 'rootfs'), o.files);
  const hooks = o.hostConfig ? { node: NODE, hookJs: HOOK_BIN, hostConfig: o.hostConfig, stages: o.stages } : undefined;
  const spec = writeSpec(dir, { id, args: o.args, annotations: o.annotations, hooks, netns: o.netns, sysctl: o.sysctl }, o.patch);
  const bundle: Bundle = { dir, id, cgroup: join(cgroup2Mount(), id), spec };
  // Registered after tempDir, so it runs before the bundle directory is removed.
  onCleanup(() => runcDelete(bundle));
  return bundle;
}

/**
 * runc with its stdio on <dir>/stdout and <dir>/stderr: with `-d` and `create` the container
 * inherits runc's stdio, and files keep it from holding a pipe of ours open. runc's own error
 * lands in <dir>/stderr too, and is returned.
 */
function runcToFiles(b: Bundle, args: string[], timeoutMs: number): RuncResult {
  const r = spawnSync('sh', ['-c', 'd=$1; shift; exec "$0" "$@" >"$d/stdout" 2>"$d/stderr"', RUNC, b.dir, ...args], { encoding: 'utf8', timeout: timeoutMs });
  if (r.error) throw new Error(`runc ${args.join(' ')}: ${r.error.message}`);
  return { code: r.status ?? -1, stdout: '', stderr: readFileSync(join(b.dir, 'stderr'), 'utf8') };
}

/**
 * `runc run`. Foreground (default): waits for the process to exit (runc then deletes the
 * container and runs poststop) and returns its output. Detached: returns once the process runs;
 * its output goes on to <dir>/stdout and <dir>/stderr (see containerOutput).
 */
export function runcRun(b: Bundle, o: { detach?: boolean; timeoutMs?: number } = {}): RuncResult {
  const timeoutMs = o.timeoutMs ?? 30000;
  if (!o.detach) return runc(['run', '--bundle', b.dir, b.id], timeoutMs);
  return runcToFiles(b, ['run', '-d', '--bundle', b.dir, b.id], timeoutMs);
}

/** `runc create` (runs createRuntime) then, unless `start: false`, `runc start`. */
export function runcCreateStart(b: Bundle, o: { start?: boolean } = {}): RuncResult {
  const created = runcToFiles(b, ['create', '--bundle', b.dir, b.id], 30000);
  if (created.code !== 0 || o.start === false) return created;
  return runc(['start', b.id]);
}

/** What a detached (or created) container wrote to stdout so far. */
export function containerOutput(b: Bundle): string {
  const p = join(b.dir, 'stdout');
  return existsSync(p) ? readFileSync(p, 'utf8') : '';
}

export function runcExec(b: Bundle, args: string[], timeoutMs = 30000): RuncResult {
  return runc(['exec', b.id, ...args], timeoutMs);
}

export interface RuncState {
  id: string;
  pid: number;
  status: string;
  bundle: string;
  annotations?: Record<string, string>;
}

/** `runc state`, or undefined when runc does not know the container. */
export function runcState(b: Bundle | string): RuncState | undefined {
  const r = runc(['state', typeof b === 'string' ? b : b.id]);
  return r.code === 0 ? (JSON.parse(r.stdout) as RuncState) : undefined;
}

/** Force-deletes the container (kills it; runs poststop). Succeeds when it is already gone. */
export function runcDelete(b: Bundle): RuncResult {
  if (!runcState(b)) return { code: 0, stdout: '', stderr: '' };
  return runc(['delete', '--force', b.id]);
}

/** The container's v2 cgroup, read from /proc/PID/cgroup as the hook does (its "0::" line). */
export function containerCgroupV2(pid: number): string {
  const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'));
  if (!line) throw new Error(`process ${pid} has no cgroup v2 membership`);
  return join(cgroup2Mount(), line.slice(3));
}
