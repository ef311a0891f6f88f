/*
 * `taskwire doctor`: what works on this host, what falls back, what is missing, with one line
 * to fix each. What a plugin needs is read from its own BPF object rather than declared by hand:
 * the object is opened (not loaded) and every program's type, every helper it calls and every
 * map type is probed with libbpf's feature probes, so the list cannot drift from the code.
 */
import { enumName, runTimeStatsOn } from './introspect';
import { helperAvailable } from './bpf/libbpf';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { joinPath } from './path';
import { bpfObjectPath, projectRoot } from './assets';
import { isNull, libbpf, readBytes, readCString } from './ffi';
import { cgroup2Mount, isBpffs, kernelRelease, mounts } from './host/discovery';
import type { HostConfig } from './host/config';
import { DEFAULT_HOOKS_DIR, installedHooks } from './install';
import { registry } from '../plugins/index';

export type Status = 'ok' | 'fallback' | 'missing' | 'info';

export interface Check {
  area: string;
  name: string;
  status: Status;
  detail: string;
  fix?: string;
}

const BPF_CALL = 0x85;

let helperNames: Map<number, string> | undefined;
/* Helper names come from the running kernel's own BTF (enum bpf_func_id), not a table of ours. */
function helperName(id: number): string {
  if (!helperNames) {
    helperNames = new Map();
    const btf = existsSync('/sys/kernel/btf/vmlinux') ? libbpf.btfParse('/sys/kernel/btf/vmlinux', null) : null;
    if (!isNull(btf)) {
      try {
        const { typeById } = require('./bpf/btf') as typeof import('./bpf/btf');
        const eid = libbpf.btfFindByNameKind(btf, 'bpf_func_id', 6) as number;
        if (eid > 0) {
          const t = typeById(btf, eid);
          const raw = readBytes(t.ptr, 12 + t.vlen * 8);
          for (let i = 0; i < t.vlen; i++)
            helperNames.set(raw.readInt32LE(12 + i * 8 + 4), readCString(libbpf.btfNameByOffset(btf, raw.readUInt32LE(12 + i * 8))).replace(/^BPF_FUNC_/, 'bpf_'));
        }
      } finally {
        libbpf.btfFree(btf);
      }
    }
  }
  return helperNames.get(id) ?? `helper #${id}`;
}

export interface ObjectNeeds {
  progTypes: Map<number, string[]>;
  helpers: Map<number, Set<number>>;
  mapTypes: Set<number>;
}

/** Program types, helpers per program type, and map types a BPF object uses. */
export function objectNeeds(path: string): ObjectNeeds {
  const obj = libbpf.objOpenFile(path, null);
  if (isNull(obj)) throw new Error(`cannot open BPF object ${path}`);
  const needs: ObjectNeeds = { progTypes: new Map(), helpers: new Map(), mapTypes: new Set() };
  try {
    for (let p = libbpf.objNextProg(obj, null); !isNull(p); p = libbpf.objNextProg(obj, p)) {
      const type = libbpf.progType(p) as number;
      needs.progTypes.set(type, [...(needs.progTypes.get(type) ?? []), readCString(libbpf.progName(p))]);
      const n = Number(libbpf.progInsnCnt(p));
      const insns = readBytes(libbpf.progInsns(p), n * 8);
      const set = needs.helpers.get(type) ?? new Set<number>();
      for (let i = 0; i < n; i++) {
        // A helper call: BPF_JMP|BPF_CALL with src_reg 0 (1 is a BPF-to-BPF call, 2 a kfunc).
        if (insns[i * 8] === BPF_CALL && (insns[i * 8 + 1] >> 4) === 0) set.add(insns.readInt32LE(i * 8 + 4));
      }
      needs.helpers.set(type, set);
    }
    for (let m = libbpf.objNextMap(obj, null); !isNull(m); m = libbpf.objNextMap(obj, m)) {
      const name = readCString(libbpf.mapName(m));
      if (!name.startsWith('.')) needs.mapTypes.add(libbpf.mapType(m) as number);
    }
  } finally {
    libbpf.objClose(obj);
  }
  return needs;
}

const typeName = enumName;

/** Probes everything an object needs; one check per object with what is missing named. */
export function probeObject(area: string, objectName: string): Check {
  const path = bpfObjectPath(objectName);
  if (!existsSync(path)) return { area, name: objectName, status: 'missing', detail: `${path} not built`, fix: 'make -s all in the checkout (or reinstall)' };
  const needs = objectNeeds(path);
  const missing: string[] = [];
  for (const [type, progs] of needs.progTypes) {
    if ((libbpf.probeProgType(type, null) as number) !== 1) {
      missing.push(`program type ${typeName(libbpf.progTypeStr, type)} (${progs.join(', ')})`);
      continue;
    }
    for (const h of needs.helpers.get(type) ?? [])
      if (!helperAvailable(type, h)) missing.push(`${helperName(h)} in ${typeName(libbpf.progTypeStr, type)} programs`);
  }
  for (const t of needs.mapTypes) if ((libbpf.probeMapType(t, null) as number) !== 1) missing.push(`map type ${typeName(libbpf.mapTypeStr, t)}`);
  const progs = [...needs.progTypes.keys()].map((t) => typeName(libbpf.progTypeStr, t)).join(', ');
  const helpers = new Set([...needs.helpers.values()].flatMap((s) => [...s])).size;
  if (missing.length)
    return { area, name: objectName, status: 'missing', detail: `kernel lacks: ${missing.join('; ')}`, fix: 'a newer kernel (see docs), or leave this plugin disabled in the host config' };
  return { area, name: objectName, status: 'ok', detail: `${progs}; ${helpers} helpers, ${needs.mapTypes.size} map types probed` };
}

// Template-literal requires: esbuild bundles every plugins/*/<file>.ts they can match, and
// jest resolves them from source; a plugin without the file simply yields null.
function codecModule(name: string): Record<string, unknown> | null {
  try {
    return require(`../plugins/${name}/codec.ts`);
  } catch {
    return null;
  }
}

function featuresModule(name: string): Record<string, unknown> | null {
  try {
    return require(`../plugins/${name}/features.ts`);
  } catch {
    return null;
  }
}

/* The objects of a plugin, as its codec.ts declares them (BPF_OBJECT, one or several). */
function pluginObjects(name: string): string[] {
  const mod = codecModule(name);
  return ([] as string[]).concat((mod?.BPF_OBJECT as string | string[] | undefined) ?? []);
}

/*
 * A plugin may ship plugins/<name>/features.ts probing what object probes cannot see (netkit,
 * tcx links...). Any of: an array of {name, status, detail, fix?}, or a record name → value.
 */
function pluginFeatureChecks(name: string): Check[] {
  const mod = featuresModule(name);
  if (!mod) return [];
  const fn = ['features', 'probeFeatures', 'detectFeatures', 'default'].map((k) => mod[k]).find((f) => typeof f === 'function') as (() => unknown) | undefined;
  let out: unknown;
  try {
    out = fn ? fn() : mod.FEATURES;
  } catch (err) {
    return [{ area: `plugin ${name}`, name: 'features', status: 'missing', detail: `feature probe failed: ${(err as Error).message}` }];
  }
  const area = `plugin ${name}`;
  const asStatus = (v: unknown): Status => (v === true || v === 'ok' ? 'ok' : v === 'fallback' ? 'fallback' : v === false || v === 'missing' ? 'missing' : 'info');
  if (Array.isArray(out))
    return out.map((f: any) => ({ area, name: String(f.name ?? f.feature ?? '?'), status: asStatus(f.status ?? f.ok ?? f.available), detail: String(f.detail ?? f.why ?? f.reason ?? ''), fix: f.fix }));
  if (out && typeof out === 'object')
    return Object.entries(out).map(([k, v]) => ({ area, name: k, status: typeof v === 'boolean' ? asStatus(v) : 'info', detail: typeof v === 'boolean' ? (v ? 'available' : 'not available') : JSON.stringify(v) }));
  return [];
}

function versionOf(bin: string, args: string[] = ['--version']): string | null {
  try {
    return execFileSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).split('\n')[0].trim();
  } catch {
    return null;
  }
}

const BIN_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
const findBin = (name: string) => BIN_DIRS.map((d) => joinPath(d, name)).find((p) => existsSync(p)) ?? null;

export interface DoctorOptions {
  host: HostConfig;
  /** Extra hooks.d directories to look in (as given to podman --hooks-dir). */
  hooksDirs?: string[];
}

export function runDoctor(o: DoctorOptions): Check[] {
  const checks: Check[] = [];
  const add = (c: Check) => checks.push(c);

  const release = kernelRelease();
  const [maj, min] = release.split('.').map((x) => parseInt(x, 10));
  add({ area: 'host', name: 'kernel', status: maj > 5 || (maj === 5 && min >= 7) ? 'ok' : 'missing', detail: release, fix: 'taskwire needs 5.7+ (cgroup bpf_links); 5.11+ charges BPF memory to memcg' });
  add(
    existsSync('/sys/kernel/btf/vmlinux')
      ? { area: 'host', name: 'kernel BTF', status: 'ok', detail: '/sys/kernel/btf/vmlinux' }
      : { area: 'host', name: 'kernel BTF', status: 'fallback', detail: 'no /sys/kernel/btf/vmlinux: helper names shown as numbers', fix: 'a kernel built with CONFIG_DEBUG_INFO_BTF=y' },
  );
  try {
    const cg = cgroup2Mount();
    const hybrid = mounts().some((m) => m.fsType === 'cgroup');
    add({ area: 'host', name: 'cgroup v2', status: 'ok', detail: `${cg}${hybrid ? ' (hybrid: v1 controllers mounted too)' : ''}` });
  } catch (err) {
    add({ area: 'host', name: 'cgroup v2', status: 'missing', detail: (err as Error).message, fix: 'mount -t cgroup2 none /sys/fs/cgroup/unified (or boot with systemd.unified_cgroup_hierarchy=1)' });
  }
  add(
    isBpffs(o.host.bpffs)
      ? { area: 'host', name: 'bpffs', status: 'ok', detail: o.host.bpffs }
      : { area: 'host', name: 'bpffs', status: 'fallback', detail: `${o.host.bpffs} is not a bpf file system; the hook mounts it on first use`, fix: `mount -t bpf bpf ${o.host.bpffs}` },
  );
  const { libbpfVersion } = require('./bpf/libbpf') as typeof import('./bpf/libbpf');
  const lv = libbpfVersion();
  const [lmaj, lmin] = lv.split('.').map(Number);
  add({ area: 'host', name: 'libbpf', status: lmaj > 1 || (lmaj === 1 && lmin >= 1) ? 'ok' : 'missing', detail: `libbpf.so.1 ${lv}`, fix: 'install libbpf1 >= 1.1 (Debian bookworm or newer)' });
  add({ area: 'host', name: 'node', status: 'ok', detail: `${process.version} at ${process.execPath}` });
  const statsOn = runTimeStatsOn();
  add({ area: 'host', name: 'BPF run-time stats', status: 'info', detail: statsOn ? 'on (kernel.bpf_stats_enabled=1)' : 'off; taskwire stats turns them on while it samples' });

  add(
    o.host.path
      ? { area: 'config', name: 'host config', status: 'ok', detail: o.host.path }
      : { area: 'config', name: 'host config', status: 'missing', detail: 'no /etc/taskwire/config.json: every plugin is off', fix: 'cp oci-config/config.example.json /etc/taskwire/config.json and edit' },
  );

  for (const { name } of registry) {
    const enabled = o.host.plugins[name]?.enabled === true;
    const area = `plugin ${name}`;
    add({ area, name: 'enabled', status: enabled ? 'ok' : 'info', detail: enabled ? 'in the host config' : 'not enabled in the host config: its annotation is refused' });
    for (const obj of pluginObjects(name)) {
      try {
        add(probeObject(area, obj));
      } catch (err) {
        add({ area, name: obj, status: 'missing', detail: (err as Error).message });
      }
    }
    checks.push(...pluginFeatureChecks(name));
  }
  // A plugin folder may exist before it is registered (netns feature facts come first).
  for (const dir of tryReaddir(joinPath(projectRoot(), 'plugins')))
    if (!registry.some((e) => e.name === dir)) checks.push(...pluginFeatureChecks(dir));

  const runtimes: [string, string[]][] = [
    ['runc', ['--version']],
    ['crun', ['--version']],
    ['podman', ['--version']],
    ['crio', ['--version']],
    ['containerd', ['--version']],
  ];
  for (const [name, args] of runtimes) {
    const bin = findBin(name);
    const v = bin && versionOf(bin, args);
    add(bin ? { area: 'runtimes', name, status: 'ok', detail: `${bin}: ${v ?? 'version unknown'}` } : { area: 'runtimes', name, status: 'info', detail: 'not found' });
  }

  const dirs = [...new Set([...(o.hooksDirs ?? []), DEFAULT_HOOKS_DIR, '/usr/share/containers/oci/hooks.d'])];
  const found = installedHooks(dirs, projectRoot());
  if (!found.length)
    add({ area: 'hooks', name: 'hooks.d', status: 'missing', detail: `no taskwire hooks in ${dirs.join(', ')}`, fix: 'taskwire install (podman, CRI-O); with runc alone name the hook in config.json' });
  for (const h of found)
    add(
      h.programOk
        ? { area: 'hooks', name: h.path, status: 'ok', detail: `${(h.json?.stages ?? []).join(',')} → ${h.json?.hook?.args?.[1] ?? h.json?.hook?.path}` }
        : { area: 'hooks', name: h.path, status: 'missing', detail: 'names a program that does not exist: podman refuses every container', fix: 'taskwire install again, or taskwire uninstall' },
    );
  return checks;
}

function tryReaddir(d: string): string[] {
  try {
    return readdirSync(d, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    return [];
  }
}
