/*
 * What a container may ask for as its own address: an explicit address inside the host's
 * allowedPrefixes, or "auto" from a host pool. Shared by every plugin that gives a container
 * addresses (ip-per-task, netns), so the rule is written once.
 */
import { ConfigError, isErrno, TaskwireError } from '../errors';
import type { PluginContext } from '../plugin';
import type { Resource } from '../state/record';
import { poolPrefix, HostConfig } from '../host/config';
import { cidrContains, Family, parseCidr, parseIp } from './addr';

export interface AddressRequest {
  ip6?: string;
  ip4?: string;
}

export function checkAllowedAddress(text: string, family: Family, allowedPrefixes: string[] | undefined): string {
  const { address } = parseIp(text, `ip${family}`, family);
  const allowed = (allowedPrefixes ?? []).map((p) => parseCidr(p, 'host config allowedPrefixes'));
  if (!allowed.some((c) => cidrContains(c, address)))
    throw new ConfigError(`address ${address} is outside the host's allowed prefixes (${allowed.map((c) => `${c.address}/${c.prefixLen}`).join(', ') || 'none: only auto is allowed'})`);
  return address;
}

/**
 * Validates each family's request. `bareAuto` (the annotation was just "auto") takes whichever
 * families the pool offers; an explicit {"ip4": "auto"} needs the pool to have that family.
 */
export function resolveAddressRequest(req: AddressRequest, bareAuto: boolean, host: HostConfig, pool: string, allowedPrefixes: string[] | undefined): AddressRequest {
  const out: AddressRequest = {};
  for (const family of [6, 4] as const) {
    const key = family === 6 ? 'ip6' : 'ip4';
    const v = req[key];
    if (v === undefined) continue;
    if (v === 'auto') {
      if (host.pools[pool]?.[key] || !bareAuto) {
        poolPrefix(host, pool, family);
        out[key] = 'auto';
      }
    } else out[key] = checkAllowedAddress(v, family, allowedPrefixes);
  }
  if (!out.ip6 && !out.ip4) throw new ConfigError(`host pool ${JSON.stringify(pool)} has no prefix for auto addresses`);
  return out;
}

/** Puts a claimed address somewhere (a host device, say) as a journaled resource of its own. */
export interface AddressPlacement {
  resource(address: string, family: Family): Resource;
  create(address: string, family: Family): void;
}

const MAX_AUTO_RETRIES = 16;

/**
 * Claims each requested family's address for the container in the host's allocation file and
 * journals it, then places it. An `auto` address the host already carries (put there by hand,
 * or by a stranger) is skipped for the next one rather than failing the container; an explicit
 * one is refused with a clear message.
 */
export function claimAddresses(ctx: PluginContext<unknown>, req: AddressRequest, pool: string, label: string, place?: AddressPlacement): { ip6: string | null; ip4: string | null } {
  const { allocateAddress, releaseAddress, reserveAddress } = require('../state/ipam') as typeof import('../state/ipam');
  const owner = ctx.container.id;
  const out: { ip6: string | null; ip4: string | null } = { ip6: null, ip4: null };
  for (const family of [6, 4] as const) {
    const key = family === 6 ? 'ip6' : 'ip4';
    const want = req[key];
    if (!want) continue;
    const skipped = new Set<string>();
    for (;;) {
      const address =
        want === 'auto'
          ? allocateAddress(ctx.layout, poolPrefix(ctx.host, pool, family), owner, label, (a) => skipped.has(a))
          : (reserveAddress(ctx.layout, want, owner, label), want);
      // Allocation and placement journaled in one write, once both happened: an allocation the
      // hook was killed before journaling is found by its owner when the container is undone
      // (lib/pipeline.ts, releaseUnjournaled).
      const ipam: Resource = { kind: 'ipam', address, owner };
      try {
        if (place) ctx.acquire([ipam, place.resource(address, family)], () => place.create(address, family), false);
        else ctx.acquire(ipam, () => undefined, false);
        out[key] = address;
        break;
      } catch (err) {
        // Not placed: the allocation goes now, so that no undo ever touches an address that may
        // be somebody else's (EEXIST) or was never added.
        releaseAddress(ctx.layout, address, owner);
        if (!isErrno(err, 'EEXIST')) throw err;
        if (want !== 'auto') throw new TaskwireError('IPAM', `address ${address} is already configured on this host (not by taskwire)`);
        skipped.add(address);
        if (skipped.size >= MAX_AUTO_RETRIES) throw new TaskwireError('IPAM', `${MAX_AUTO_RETRIES} pool addresses in a row are already configured on this host (${[...skipped].join(', ')})`);
        ctx.log.warn({ address }, 'pool address already configured on the host; taking the next');
      }
    }
    ctx.checkDeadline();
  }
  return out;
}
