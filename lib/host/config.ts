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

export function loadHostConfig(path: string): HostConfig {
  let raw: unknown = {};
  let found: string | null = path;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && path === DEFAULT_CONFIG_PATH) found = null;
    else if (code) throw new ConfigError(`host config ${path}: ${code === 'ENOENT' ? 'not found' : code}`);
    else throw new ConfigError(`host config ${path}: not valid JSON (${(err as Error).message})`);
  }
  const cfg = validate<Omit<HostConfig, 'path'>>('taskwire:host-config', raw, `host config ${path}`);
  const out: HostConfig = {
    path: found,
    bpffs: cfg.bpffs ?? '/sys/fs/bpf',
    runDir: cfg.runDir ?? '/run/taskwire',
    logFile: cfg.logFile ?? '/var/log/taskwire/taskwire.log',
    logLevel: cfg.logLevel ?? 'info',
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
