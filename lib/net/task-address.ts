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
 * Claims each requested family's address for the container in the host's allocation file (one
 * transaction for all families), places each, and journals them with the record's next write:
 * until then the allocation file names the container as their owner, which is how an undo finds
 * them (lib/pipeline.ts, releaseUnjournaled) should the hook die in between. An `auto` address
 * the host already carries (put there by hand, or by a stranger) is skipped for the next one
 * rather than failing the container; an explicit one is refused with a clear message.
 */
export function claimAddresses(ctx: PluginContext<unknown>, req: AddressRequest, pool: string, label: string, place?: AddressPlacement): { ip6: string | null; ip4: string | null } {
  const { claimAddressesFor, releaseAddress, releaseAddresses } = require('../state/ipam') as typeof import('../state/ipam');
  const owner = ctx.container.id;
  const out: { ip6: string | null; ip4: string | null } = { ip6: null, ip4: null };
  let wanted = ([6, 4] as const)
    .map((family) => ({ family, key: family === 6 ? ('ip6' as const) : ('ip4' as const) }))
    .filter((w) => req[w.key])
    .map((w) => ({ ...w, want: req[w.key]!, skipped: new Set<string>() }));
  while (wanted.length) {
    const addresses = claimAddressesFor(
      ctx.layout,
      wanted.map((w) => (w.want === 'auto' ? { prefix: poolPrefix(ctx.host, pool, w.family), isTaken: (a: string) => w.skipped.has(a) } : { address: w.want })),
      owner,
      label,
    );
    const retry: typeof wanted = [];
    for (const [i, w] of wanted.entries()) {
      const address = addresses[i];
      const ipam: Resource = { kind: 'ipam', address, owner };
      try {
        if (place) ctx.acquire([ipam, place.resource(address, w.family)], () => place.create(address, w.family), 'later');
        else ctx.acquire(ipam, () => undefined, 'later');
        out[w.key] = address;
      } catch (err) {
        const onHost = isErrno(err, 'EEXIST');
        if (onHost || !place) {
          // On the host already: somebody else's, which no undo may touch; the allocation goes now.
          releaseAddress(ctx.layout, address, owner);
        } else {
          // Not there before (no EEXIST), and maybe added all the same (an ack lost to EINTR):
          // journaled, so that the undo removes it if it is there.
          ctx.acquire([ipam, place.resource(address, w.family)], () => undefined, 'later');
        }
        const fail = (e: unknown): never => {
          // This batch's claims not placed yet go too: an undo finding them by owner
          // (releaseUnjournaled) would remove them from the device, where they may be somebody else's.
          releaseAddresses(ctx.layout, addresses.slice(i + 1).map((a) => ({ address: a, owner })));
          throw e;
        };
        if (!onHost) fail(err);
        if (w.want !== 'auto') fail(new TaskwireError('IPAM', `address ${address} is already configured on this host (not by taskwire)`));
        w.skipped.add(address);
        if (w.skipped.size >= MAX_AUTO_RETRIES) fail(new TaskwireError('IPAM', `${MAX_AUTO_RETRIES} pool addresses in a row are already configured on this host (${[...w.skipped].join(', ')})`));
        ctx.log.warn({ address }, 'pool address already configured on the host; taking the next');
        retry.push(w);
      }
    }
    wanted = retry;
    ctx.checkDeadline();
  }
  return out;
}
