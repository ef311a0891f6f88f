/*
 * Installing taskwire as hooks.d hooks for podman and CRI-O (oci-hooks(5), version 1.0.0).
 *
 * Order is the whole design: podman refuses EVERY container while a hooks.d file names a program
 * that does not exist, so install puts the program in place first and writes the JSON last, and
 * uninstall removes the JSON first and the program last. Every file is written to a temporary
 * name and renamed, so a concurrent `podman run` sees the old file or the new one, never half.
 *
 * Without --prefix the hooks name the checkout (its node, dist/ and build/bpf) directly; with a
 * prefix, what the hook needs at run time is copied there: node, dist/, build/bpf, koffi (only
 * this platform's native module) and package.json, which is how lib/assets.ts finds the root.
 * The poststop hook gets --config in its args because podman runs poststop with an empty
 * environment; timeouts leave the runtime's SIGKILL for after the hook's own deadline.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { joinPath } from './path';
import { ConfigError } from './errors';
import { copyFileAtomic, writeFileAtomic } from './state/atomic';

export const DEFAULT_HOOKS_DIR = '/etc/containers/oci/hooks.d';
/** Marks a prefix as ours, so uninstall never removes a directory it did not create. */
export const PREFIX_MARKER = '.taskwire-install';

export interface InstallOptions {
  hooksDir: string;
  /** Copy the program here; without it the hooks reference `source`. */
  prefix?: string;
  /** The checkout (or an install) holding package.json, dist/, build/bpf, node_modules/koffi. */
  source: string;
  /** Absolute path of the node binary the hooks run. */
  node: string;
  /** Host config the hooks pass as --config. */
  configPath: string;
  /** The hook's own deadline; the runtime's timeout comes a little after it. */
  hookTimeoutMs: number;
  /** Some plugin applies to every container (host config applyToAll): run for all, not only annotated ones. */
  always?: boolean;
}

export interface FileCopy {
  from: string;
  to: string;
}

export interface InstallPlan {
  /** Files to copy (empty without a prefix), program first. */
  copies: FileCopy[];
  /** hooks.d files to write, after the copies. */
  hooks: { path: string; json: Record<string, unknown> }[];
  node: string;
  hook: string;
  prefix?: string;
}

export const TEMPLATE_DIR = (source: string) => joinPath(source, 'oci-config', 'hooks.d');

export function templateNames(source: string): string[] {
  return readdirSync(TEMPLATE_DIR(source)).filter((n) => n.endsWith('.json')).sort();
}

/** Fills {{node}}, {{hook}}, {{config}} in every string of a template; sets the timeout. */
export function renderTemplate(template: unknown, vars: Record<string, string>, timeoutSec: number): Record<string, unknown> {
  const fill = (v: unknown): unknown => {
    if (typeof v === 'string')
      return v.replace(/\{\{(\w+)\}\}/g, (_, k: string) => {
        if (!(k in vars)) throw new ConfigError(`hooks.d template: unknown placeholder {{${k}}}`);
        return vars[k];
      });
    if (Array.isArray(v)) return v.map(fill);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x)]));
    return v;
  };
  const out = fill(template) as Record<string, any>;
  out.hook.timeout = timeoutSec;
  return out;
}

export function runtimeTimeoutSec(hookTimeoutMs: number): number {
  return Math.ceil(hookTimeoutMs / 1000) + 2;
}

function filesUnder(dir: string, keep: (rel: string) => boolean = () => true): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => joinPath(d.parentPath ?? (d as any).path, d.name).slice(dir.length + 1))
    .filter(keep)
    .sort();
}

/** koffi's loader, plus only the native builds this machine can load. */
function koffiFiles(source: string): string[] {
  const dir = joinPath(source, 'node_modules', 'koffi');
  const arch = `_${process.arch}`;
  return filesUnder(dir, (rel) => {
    if (!rel.includes('/')) return rel.endsWith('.js') || rel === 'package.json' || rel.startsWith('LICENSE');
    const m = /^build\/koffi\/([^/]+)\//.exec(rel);
    return m !== null && m[1].startsWith(process.platform === 'linux' ? 'linux' : process.platform) && m[1].endsWith(arch);
  }).map((rel) => joinPath('node_modules', 'koffi', rel));
}

function requireFile(path: string, what: string): void {
  if (!existsSync(path)) throw new ConfigError(`${what} ${path} does not exist (run make all in the checkout)`);
}

/** What install would do; touches nothing. */
export function planInstall(o: InstallOptions): InstallPlan {
  for (const [p, what] of [
    [o.hooksDir, '--hooks-dir'],
    [o.configPath, '--config'],
    [o.node, 'node'],
    ...(o.prefix ? [[o.prefix, '--prefix']] : []),
  ] as [string, string][])
    if (!isAbsolute(p)) throw new ConfigError(`${what} must be an absolute path, got ${JSON.stringify(p)}`);
  const source = resolve(o.source);
  requireFile(joinPath(source, 'dist', 'taskwire-hook.js'), 'hook bundle');
  requireFile(joinPath(source, 'build', 'bpf'), 'BPF objects');
  requireFile(o.node, 'node binary');
  const copies: FileCopy[] = [];
  let root = source;
  let node = o.node;
  if (o.prefix) {
    root = resolve(o.prefix);
    if (root === source) throw new ConfigError(`--prefix ${root} is the source itself`);
    node = joinPath(root, 'bin', 'node');
    const rels = [
      'package.json',
      ...filesUnder(joinPath(source, 'dist'), (r) => !r.startsWith('.cache')).map((r) => joinPath('dist', r)),
      ...filesUnder(joinPath(source, 'build', 'bpf'), (r) => r.endsWith('.bpf.o')).map((r) => joinPath('build', 'bpf', r)),
      ...filesUnder(TEMPLATE_DIR(source)).map((r) => joinPath('oci-config', 'hooks.d', r)),
      ...koffiFiles(source),
    ];
    copies.push({ from: o.node, to: node });
    for (const rel of rels) copies.push({ from: joinPath(source, rel), to: joinPath(root, rel) });
  }
  const hook = joinPath(root, 'dist', 'taskwire-hook.js');
  const vars = { node, hook, config: o.configPath };
  const hooks = templateNames(source).map((name) => ({
    path: joinPath(o.hooksDir, name),
    json: renderTemplate(JSON.parse(readFileSync(joinPath(TEMPLATE_DIR(source), name), 'utf8')), vars, runtimeTimeoutSec(o.hookTimeoutMs)),
  }));
  if (o.always) for (const h of hooks) h.json.when = { always: true };
  return { copies, hooks, node, hook, prefix: o.prefix && root };
}

function sameContent(a: string, b: string): boolean {
  try {
    const sa = statSync(a);
    const sb = statSync(b);
    return sa.size === sb.size && readFileSync(a).equals(readFileSync(b));
  } catch {
    return false;
  }
}

export interface InstallResult {
  copied: number;
  unchanged: number;
  hooks: string[];
}

/** Program first, then the hooks.d JSON. Running it twice changes nothing the second time. */
export function applyInstall(plan: InstallPlan, progress: (line: string) => void = () => {}): InstallResult {
  let copied = 0;
  let unchanged = 0;
  if (plan.prefix) {
    mkdirSync(plan.prefix, { recursive: true });
    if (plan.copies.length > 50) progress(`copying ${plan.copies.length} files to ${plan.prefix}`);
    for (const c of plan.copies) {
      if (sameContent(c.from, c.to)) unchanged++;
      else {
        copyFileAtomic(c.from, c.to);
        copied++;
      }
    }
    writeFileSync(joinPath(plan.prefix, PREFIX_MARKER), `installed by taskwire install; removed by taskwire uninstall\n`);
  }
  mkdirSync(dirname(plan.hooks[0]?.path ?? '/'), { recursive: true });
  for (const h of plan.hooks) writeFileAtomic(h.path, `${JSON.stringify(h.json, null, 2)}\n`, 0o644);
  return { copied, unchanged, hooks: plan.hooks.map((h) => h.path) };
}

export interface UninstallResult {
  removedHooks: string[];
  removedPrefix: string | null;
}

/** The hooks.d JSON first (only our template names), then the program under a prefix we made. */
export function uninstall(hooksDir: string, source: string, prefix?: string): UninstallResult {
  if (!isAbsolute(hooksDir)) throw new ConfigError(`--hooks-dir must be an absolute path, got ${JSON.stringify(hooksDir)}`);
  const removedHooks: string[] = [];
  for (const name of templateNames(source)) {
    const p = joinPath(hooksDir, name);
    if (existsSync(p)) {
      rmSync(p, { force: true });
      removedHooks.push(p);
    }
  }
  let removedPrefix: string | null = null;
  if (prefix) {
    const root = resolve(prefix);
    if (existsSync(root)) {
      if (!existsSync(joinPath(root, PREFIX_MARKER))) throw new ConfigError(`--prefix ${root} was not made by taskwire install (no ${PREFIX_MARKER}); not removing it`);
      rmSync(root, { recursive: true, force: true });
      removedPrefix = root;
    }
  }
  return { removedHooks, removedPrefix };
}

/** hooks.d files of ours found in the given directories (for doctor). */
export function installedHooks(dirs: string[], source: string): { path: string; json: any; programOk: boolean }[] {
  const out: { path: string; json: any; programOk: boolean }[] = [];
  for (const d of dirs)
    for (const name of templateNames(source)) {
      const p = joinPath(d, name);
      if (!existsSync(p)) continue;
      let json: any = null;
      try {
        json = JSON.parse(readFileSync(p, 'utf8'));
      } catch {
        /* reported as broken */
      }
      const prog = json?.hook?.path;
      const script = json?.hook?.args?.[1];
      out.push({ path: p, json, programOk: typeof prog === 'string' && existsSync(prog) && (typeof script !== 'string' || existsSync(script)) });
    }
  return out;
}
