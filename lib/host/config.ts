/*
 * The host config: the operator's word on what annotations may ask for. Found at --config,
 * then $TASKWIRE_CONFIG, then /etc/taskwire/config.json. Without a file, defaults apply and no
 * plugin is enabled, so annotations alone can never turn anything on.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors';
import { validate } from '../schema';
import { parseCidr, Cidr } from '../net/addr';

export const DEFAULT_CONFIG_PATH = '/etc/taskwire/config.json';

export interface PoolConfig {
  ip6?: string;
  ip4?: string;
}

export interface HostConfig {
  path: string | null;
  bpffs: string;
  runDir: string;
  logFile: string;
  logLevel: string;
  hookTimeoutMs: number;
  policyDir: string;
  pools: Record<string, PoolConfig>;
  plugins: Record<string, { enabled: boolean; applyToAll?: string; [k: string]: unknown }>;
}

export function configPath(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  return explicit || env.TASKWIRE_CONFIG || DEFAULT_CONFIG_PATH;
}

/** The file's JSON, and its path (null: the default path, absent, so defaults apply). */
function readHostConfig(path: string): { raw: unknown; found: string | null } {
  try {
    return { raw: JSON.parse(readFileSync(path, 'utf8')), found: path };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && path === DEFAULT_CONFIG_PATH) return { raw: {}, found: null };
    if (code) throw new ConfigError(`host config ${path}: ${code === 'ENOENT' ? 'not found' : code}`);
    throw new ConfigError(`host config ${path}: not valid JSON (${(err as Error).message})`);
  }
}

export type HostPaths = Pick<HostConfig, 'path' | 'bpffs' | 'runDir' | 'logFile' | 'logLevel'>;

/** The state and log locations, with their defaults. */
function pathsOf(cfg: Partial<HostPaths>, found: string | null): HostPaths {
  return {
    path: found,
    bpffs: cfg.bpffs ?? '/sys/fs/bpf',
    runDir: cfg.runDir ?? '/run/taskwire',
    logFile: cfg.logFile ?? '/var/log/taskwire/taskwire.log',
    logLevel: cfg.logLevel ?? 'info',
  };
}

/**
 * Only where the state and the log are, validated by the host configuration's own definitions
 * (lib/schemas/host-paths.schema.json): what poststop needs. It undoes a container even after an
 * unrelated part of the file was broken, and does not load the whole schema's validator.
 */
export function loadHostPaths(path: string): HostPaths {
  const { raw, found } = readHostConfig(path);
  return pathsOf(validate<Partial<HostPaths>>('taskwire:host-paths', raw, `host config ${path}`), found);
}

export function loadHostConfig(path: string): HostConfig {
  const { raw, found } = readHostConfig(path);
  const cfg = validate<Omit<HostConfig, 'path'>>('taskwire:host-config', raw, `host config ${path}`);
  const out: HostConfig = {
    ...pathsOf(cfg, found),
    hookTimeoutMs: cfg.hookTimeoutMs ?? 8000,
    policyDir: cfg.policyDir ?? '/etc/taskwire/policies',
    pools: cfg.pools ?? {},
    plugins: cfg.plugins ?? {},
  };
  for (const [name, pool] of Object.entries(out.pools)) {
    if (pool.ip6 && parseCidr(pool.ip6, `host config pools.${name}.ip6`).family !== 6) throw new ConfigError(`host config pools.${name}.ip6 must be an IPv6 prefix`);
    if (pool.ip4 && parseCidr(pool.ip4, `host config pools.${name}.ip4`).family !== 4) throw new ConfigError(`host config pools.${name}.ip4 must be an IPv4 prefix`);
  }
  return out;
}

/**
 * appliesToAll from the raw file, without validating it: the hook's cheap look for containers
 * that asked for nothing. No file or an unreadable one says no, as loading it would refuse too.
 */
export function peekAppliesToAll(path: string): boolean {
  try {
    const raw = JSON.parse(readFileSync(path, 'utf8')) as { plugins?: Record<string, { enabled?: unknown; applyToAll?: unknown }> };
    return Object.values(raw.plugins ?? {}).some((p) => p?.enabled === true && typeof p.applyToAll === 'string');
  } catch {
    return false;
  }
}

/** Whether some plugin applies to containers without annotations (the hook must then look at all). */
export function appliesToAll(host: HostConfig): boolean {
  return Object.values(host.plugins).some((p) => p.enabled && p.applyToAll !== undefined);
}

export function poolPrefix(host: HostConfig, pool: string, family: 4 | 6): Cidr {
  const p = host.pools[pool]?.[family === 6 ? 'ip6' : 'ip4'];
  if (!p) throw new ConfigError(`host config has no IPv${family} prefix in pool ${JSON.stringify(pool)} for auto addresses`);
  return parseCidr(p, `host config pools.${pool}`);
}
