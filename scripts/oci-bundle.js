// OCI bundles for a busybox container that runs taskwire's hooks, the way a host configures
// them: shared by the runc end-to-end tests (test/helpers/bundle.ts) and the demo's runc path
// (scripts/demo.js). Plain JS so the demo runs it without a TypeScript step.
//
// Decisions, each forced by the hosts we run on:
// - Hooks are named by absolute node path with NO env: runc then gives the hook its own
//   environment, and everything the hook needs travels in args (the bundle, --config).
// - The host network namespace unless `netns: true`: ip-per-task's task IP lives on a host
//   device, so a server inside is reachable from the host only there.
// - rlimits are dropped: a host without CAP_SYS_RESOURCE cannot raise a limit, and runc fails
//   the container when the spec asks for more than the current hard limit.
// - cgroupsPath is a flat "/<id>": runc 1.1 on a hybrid host (v1 controllers plus cgroup2 at
//   /sys/fs/cgroup/unified) creates that path in every v1 hierarchy AND in the unified one, so
//   /proc/PID/cgroup has "0::/<id>" and our BPF attaches there. A nested path ("/a/<id>") would
//   leave its parents behind in every hierarchy at delete.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const RUNC = '/usr/sbin/runc';
const BUSYBOX = '/bin/busybox';

/**
 * A busybox rootfs: the static binary and a relative symlink per applet (no host path inside),
 * plus extra files given as {relative path: content}.
 * @param {string} dir
 * @param {Record<string, string>} [files]
 * @returns {string} dir
 */
function busyboxRootfs(dir, files = {}) {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  fs.copyFileSync(BUSYBOX, path.join(bin, 'busybox'));
  const applets = spawnSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  for (const a of applets) if (a !== 'busybox') fs.symlinkSync('busybox', path.join(bin, a));
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'etc']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(dir, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
  }
  return dir;
}

/**
 * One OCI hook entry running taskwire-hook: absolute node, args only, no env.
 * @param {{node: string, hookJs: string, hostConfig: string}} h
 * @param {string} stage
 */
function hookEntry(h, stage) {
  return { path: h.node, args: [h.node, h.hookJs, stage, '--config', h.hostConfig], timeout: 30 };
}

/**
 * @typedef {object} SpecOptions
 * @property {string} id            container id (also the cgroup name and hostname)
 * @property {string[]} args        the container's process
 * @property {Record<string, string>} [annotations]
 * @property {{node: string, hookJs: string, hostConfig: string, stages?: string[]}} [hooks]
 *           our hook at these stages (default createRuntime and poststop); none without it
 * @property {boolean} [netns]      a private network namespace (default: the host's)
 * @property {Record<string, string>} [sysctl]
 */

/**
 * Writes <bundle>/config.json: `runc spec` patched for taskwire (see the top of this file).
 * The rootfs is <bundle>/rootfs. Returns the spec written.
 * @param {string} bundle
 * @param {SpecOptions} o
 * @param {(spec: Record<string, any>) => void} [patch] last word on the spec
 * @returns {Record<string, any>}
 */
function writeSpec(bundle, o, patch) {
  const specPath = path.join(bundle, 'config.json');
  fs.mkdirSync(bundle, { recursive: true });
  fs.rmSync(specPath, { force: true });
  const gen = spawnSync(RUNC, ['spec', '--bundle', bundle], { encoding: 'utf8' });
  if (gen.status !== 0) throw new Error(`runc spec: ${(gen.stderr || String(gen.error)).trim()}`);
  const spec = JSON.parse(fs.readFileSync(specPath, 'utf8'));
  spec.process.args = o.args;
  spec.process.terminal = false;
  delete spec.process.rlimits;
  spec.hostname = o.id.slice(0, 63);
  spec.annotations = { ...(o.annotations || {}) };
  if (o.hooks) {
    /** @type {Record<string, unknown[]>} */
    const hooks = {};
    for (const stage of o.hooks.stages || ['createRuntime', 'poststop']) hooks[stage] = [hookEntry(o.hooks, stage)];
    spec.hooks = hooks;
  }
  if (!o.netns) spec.linux.namespaces = spec.linux.namespaces.filter((/** @type {{type: string}} */ n) => n.type !== 'network');
  if (o.sysctl) spec.linux.sysctl = o.sysctl;
  spec.linux.cgroupsPath = `/${o.id}`;
  if (patch) patch(spec);
  fs.writeFileSync(specPath, JSON.stringify(spec, null, 1));
  return spec;
}

module.exports = { RUNC, BUSYBOX, busyboxRootfs, hookEntry, writeSpec };
