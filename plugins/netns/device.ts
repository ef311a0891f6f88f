/*
 * The pair between the host and a container's netns, built in an order that never lets the
 * container send before the programs are in place:
 *   1. the pair, host end down, peer created inside the netns as eth0 (netkit: peer policy drop)
 *   2. the programs (caller), then the host-side sysctls, host end up, /32 and /128 routes
 *   3. inside the netns, in one `ip -batch` through nsenter: lo and eth0 up, addresses, a
 *      permanent neighbour entry for the link-local gateway (veth), default routes through it
 * The gateway (169.254.1.1, fe80::1) exists nowhere: the container resolves it to the host end's
 * MAC by a static entry (veth) or needs no resolution at all (netkit L3 is NOARP). So the host
 * gets no address per container and nothing answers ARP/NDP for other addresses.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { NotSupportedError, SyscallError } from '../../lib/errors';
import { ip, ipBatch, ipJson } from '../../lib/net/iproute';
import { createPair, PairKind } from '../../lib/net/rtnetlink-link';
import { linkIndex } from '../../lib/net/netlink';

export const GATEWAY4 = '169.254.1.1';
export const GATEWAY6 = 'fe80::1';
export const PEER_NAME = 'eth0';

export interface Pair {
  kind: PairKind;
  hostName: string;
  ifindex: number;
}

/** tw + 8 hex: the netdev release (lib/resources.ts) deletes a name-only device only if it matches. */
export function randomName(): string {
  return `tw${randomBytes(4).toString('hex')}`;
}

/**
 * Creates the pair with a fresh random name (retried on EEXIST). `want` auto tries netkit
 * first and takes veth when the kernel says EOPNOTSUPP; netkit asked for explicitly fails then.
 * `journal(name, create)` records each name before `create` makes the pair under it, so a hook
 * killed between creation and anything later still leaves a record poststop and gc can undo.
 */
export function createDevicePair(want: 'auto' | PairKind, netnsPid: number, mtu: number, allowed: PairKind[], journal: (hostName: string, create: () => void) => void): Pair {
  const kinds: PairKind[] = want === 'auto' ? (['netkit', 'veth'] as PairKind[]).filter((k) => allowed.includes(k)) : [want];
  for (const kind of kinds) {
    for (let attempt = 0; ; attempt++) {
      const hostName = randomName();
      try {
        journal(hostName, () => createPair({ kind, hostName, peerName: PEER_NAME, peerNetnsPid: netnsPid, mtu }));
        return { kind, hostName, ifindex: linkIndex(hostName) };
      } catch (err) {
        if (err instanceof SyscallError && err.errnoName === 'EEXIST' && attempt < 8) continue;
        if (err instanceof SyscallError && err.errnoName === 'EOPNOTSUPP' && kind === 'netkit') {
          if (want === 'netkit') throw new NotSupportedError(`device netkit: this kernel has no netkit (needs 6.7+ with CONFIG_NETKIT); ask for "auto" or "veth"`);
          break;
        }
        throw err;
      }
    }
  }
  throw new NotSupportedError(`no device kind left to try (host allows ${allowed.join(', ')})`);
}

function sysctl(path: string, value: string): void {
  writeFileSync(`/proc/sys/net/${path}`, value);
}

/** Host-side only: the container's netns keeps its own defaults. */
export function configureHostSide(p: Pair): void {
  const h = p.hostName;
  sysctl(`ipv6/conf/${h}/accept_ra`, '0');
  sysctl(`ipv6/conf/${h}/keep_addr_on_down`, '1');
  // Per-device forwarding: what bpf_fib_lookup() checks on the ingress device, and what the
  // stack needs to route the container's packets onward (global forwarding is left alone).
  sysctl(`ipv4/conf/${h}/forwarding`, '1');
  sysctl(`ipv6/conf/${h}/forwarding`, '1');
  // Packets redirected into the host end come from addresses routed elsewhere (Cilium does
  // the same for its netkit/veth host ends).
  sysctl(`ipv4/conf/${h}/rp_filter`, '0');
}

/** From rtnetlink, not /sys/class/net: sysfs shows the netns that mounted it, not ours. */
export function hostSideMac(p: Pair): string {
  return ipJson<{ address: string }[]>(['link', 'show', 'dev', p.hostName])[0].address;
}

export function bringUpWithRoutes(p: Pair, addrs: { ip6: string | null; ip4: string | null }): void {
  const lines = [`link set ${p.hostName} up`];
  if (addrs.ip4) lines.push(`route replace ${addrs.ip4}/32 dev ${p.hostName} scope link`);
  if (addrs.ip6) lines.push(`route replace ${addrs.ip6}/128 dev ${p.hostName}`);
  ipBatch(lines);
}

export function configureContainerSide(p: Pair, netns: string, addrs: { ip6: string | null; ip4: string | null }, hostMac: string | null): void {
  const lines = ['link set lo up'];
  if (addrs.ip4) lines.push(`addr add ${addrs.ip4}/32 dev ${PEER_NAME}`);
  if (addrs.ip6) lines.push(`addr add ${addrs.ip6}/128 dev ${PEER_NAME} nodad`);
  if (hostMac) {
    if (addrs.ip4) lines.push(`neigh replace ${GATEWAY4} lladdr ${hostMac} dev ${PEER_NAME} nud permanent`);
    if (addrs.ip6) lines.push(`neigh replace ${GATEWAY6} lladdr ${hostMac} dev ${PEER_NAME} nud permanent`);
  }
  lines.push(`link set ${PEER_NAME} up`);
  if (addrs.ip4) lines.push(`route replace default via ${GATEWAY4} dev ${PEER_NAME} onlink`);
  if (addrs.ip6) lines.push(`route replace default via ${GATEWAY6} dev ${PEER_NAME} onlink`);
  ipBatch(lines, { netns });
}

/** What the container sees (for tests and `inspect`). */
export function containerLinks(netns: string): unknown {
  return JSON.parse(ip(['-j', 'addr', 'show'], { netns }));
}
