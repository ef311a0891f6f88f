/*
 * ip-per-task: the container's sockets use its own addresses without a netns. The address is
 * put on a host device (lo by default: this needs no dummy driver) without DAD, so binds to it
 * work the moment the container starts; the BPF side is bpf/ip_per_task.bpf.c.
 *
 * Annotation io.taskwire.ip-per-task:
 *   "fd00:7a5c::10"                        an IPv6 address
 *   "auto"                                 one address per family the host pool has
 *   {"ip6": "...|auto", "ip4": "...|auto"} either or both
 * Explicit addresses must lie in the host's allowedPrefixes; auto ones come from its pool.
 */
import { ConfigError } from '../../lib/errors';
import { definePlugin } from '../../lib/plugin';
import { validate } from '../../lib/schema';
import { cidrContains, Family, ip4Word, ip6Words, parseCidr, parseIp } from '../../lib/net/addr';
import { poolPrefix } from '../../lib/host/config';
import { BINDS_MAP, HAVE_IP4, HAVE_IP6, iptConfig } from './codec';

export interface IptHostSection {
  enabled: boolean;
  device?: string;
  pool?: string;
  allowedPrefixes?: string[];
}

/** Per family: an explicit address or 'auto'. */
export interface IptConfig {
  ip6?: string;
  ip4?: string;
}

export interface IptSummary extends Record<string, unknown> {
  ip6: string | null;
  ip4: string | null;
  device: string;
  programs: string[];
}

function parseValue(value: string): IptConfig {
  const v = value.trim();
  if (v === 'auto') return { ip6: 'auto', ip4: 'auto' };
  if (v.startsWith('{')) {
    let raw: unknown;
    try {
      raw = JSON.parse(v);
    } catch {
      throw new ConfigError('is not valid JSON');
    }
    return validate<IptConfig>('taskwire:ip-per-task/annotation', raw, 'value');
  }
  return { ip6: v };
}

function checkAddress(text: string, family: Family, section: IptHostSection): string {
  const { address } = parseIp(text, `ip${family}`, family);
  const allowed = (section.allowedPrefixes ?? []).map((p) => parseCidr(p, 'host config allowedPrefixes'));
  if (!allowed.some((c) => cidrContains(c, address)))
    throw new ConfigError(`address ${address} is outside the host's allowed prefixes (${allowed.map((c) => `${c.address}/${c.prefixLen}`).join(', ') || 'none: only auto is allowed'})`);
  return address;
}

export default definePlugin<IptConfig, IptHostSection, IptSummary>({
  name: 'ip-per-task',
  annotation: 'io.taskwire.ip-per-task',
  summary: "the container's sockets bind to, connect from and send from its own IPv6/IPv4 address",
  hostSchema: 'taskwire:ip-per-task/host',

  parse(value, { host, section }) {
    const cfg = parseValue(value);
    const pool = section.pool ?? 'default';
    const out: IptConfig = {};
    for (const family of [6, 4] as const) {
      const key = family === 6 ? 'ip6' : 'ip4';
      const v = cfg[key];
      if (v === undefined) continue;
      if (v === 'auto') {
        // Bare "auto" takes whichever families the pool offers; an explicit {"ip4":"auto"} needs one.
        if (host.pools[pool]?.[key] || value.trim() !== 'auto') {
          poolPrefix(host, pool, family);
          out[key] = 'auto';
        }
      } else out[key] = checkAddress(v, family, section);
    }
    if (!out.ip6 && !out.ip4) throw new ConfigError(`host pool ${JSON.stringify(pool)} has no prefix for auto addresses`);
    return out;
  },

  attach(ctx, cfg) {
    const { section, host, container } = ctx;
    const device = section.device ?? 'lo';
    const pool = section.pool ?? 'default';
    const { allocateAddress, reserveAddress } = require('../../lib/state/ipam') as typeof import('../../lib/state/ipam');
    const { addAddress } = require('../../lib/net/netlink') as typeof import('../../lib/net/netlink');
    const { currentNetnsCookie } = require('../../lib/host/discovery') as typeof import('../../lib/host/discovery');

    const addrs: { ip6: string | null; ip4: string | null } = { ip6: null, ip4: null };
    for (const family of [6, 4] as const) {
      const key = family === 6 ? 'ip6' : 'ip4';
      const want = cfg[key];
      if (!want) continue;
      const address =
        want === 'auto'
          ? allocateAddress(ctx.layout, poolPrefix(host, pool, family), container.id, device)
          : (reserveAddress(ctx.layout, want, container.id, device), want);
      ctx.acquire({ kind: 'ipam', address, owner: container.id }, () => undefined, false);
      const prefixLen = family === 6 ? 128 : 32;
      ctx.acquire({ kind: 'address', device, address, prefixLen }, () => addAddress(device, address, prefixLen), false);
      addrs[key] = address;
      ctx.checkDeadline();
    }

    const obj = ctx.loadIntoCgroup('ip_per_task', {
      rodata: {
        tw_ipt_cfg: {
          codec: iptConfig,
          value: {
            ip6: addrs.ip6 ? ip6Words(addrs.ip6) : [0, 0, 0, 0],
            ip4: addrs.ip4 ? ip4Word(addrs.ip4) : 0,
            flags: (addrs.ip6 ? HAVE_IP6 : 0) | (addrs.ip4 ? HAVE_IP4 : 0),
            host_netns_cookie: currentNetnsCookie(),
          },
        },
      },
      pinMaps: [BINDS_MAP],
    });
    return { ...addrs, device, programs: obj.programs().map((p) => p.name) };
  },
});
