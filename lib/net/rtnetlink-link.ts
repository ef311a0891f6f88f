/*
 * Creating and deleting veth and netkit pairs over rtnetlink (RTM_NEWLINK / RTM_DELLINK).
 *
 * Why not iproute2: Debian bookworm's iproute2 (6.1) does not know netkit (added in 6.7), and
 * requiring a newer iproute2 would make every host install a backport before taskwire works.
 * One RTM_NEWLINK builds either pair, so veth goes the same way, with one more benefit: the
 * peer is created directly inside the container's netns (IFLA_NET_NS_PID) under its final
 * name, so "eth0" never exists in the host netns, where it would collide with the host's own.
 * Everything else (addresses, routes inside the netns) goes through lib/net/iproute.ts.
 */
import { SyscallError } from '../errors';
import { linkIndex, request, rtattr } from './netlink';

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const NLA_F_NESTED = 0x8000;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINKINFO = 18;
const IFLA_NET_NS_PID = 19;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const PEER_INFO = 1; // VETH_INFO_PEER and IFLA_NETKIT_PEER_INFO are both 1
const IFLA_NETKIT_POLICY = 3;
const IFLA_NETKIT_PEER_POLICY = 4;
const IFLA_NETKIT_MODE = 5;

export const NETKIT_L3 = 1;
export const NETKIT_PASS = 0;
export const NETKIT_DROP = 2;

export type PairKind = 'veth' | 'netkit';

export interface PairSpec {
  kind: PairKind;
  /** Name of the end that stays in the host netns. */
  hostName: string;
  /** Name of the end created in the container's netns. */
  peerName: string;
  /** A process in the container's netns. */
  peerNetnsPid: number;
  mtu?: number;
}

function ifinfomsg(index = 0): Buffer {
  const b = Buffer.alloc(16); // family, pad, type, index, flags, change: all zero but index
  b.writeInt32LE(index, 4);
  return b;
}

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return b;
};
const str = (s: string) => Buffer.from(`${s}\0`);
const nest = (type: number, ...parts: Buffer[]) => rtattr(type | NLA_F_NESTED, Buffer.concat(parts));

/** The RTM_NEWLINK body for a pair (exported for unit tests of the wire format). */
export function newPairMessage(spec: PairSpec): Buffer {
  const mtu = spec.mtu ? [rtattr(IFLA_MTU, u32(spec.mtu))] : [];
  const peer = rtattr(PEER_INFO | NLA_F_NESTED, Buffer.concat([ifinfomsg(), rtattr(IFLA_IFNAME, str(spec.peerName)), rtattr(IFLA_NET_NS_PID, u32(spec.peerNetnsPid)), ...mtu]));
  // netkit in L3 mode (no ARP on either end); the primary forwards by default and the peer
  // drops until a program is attached, so the container cannot send before we are ready.
  const data =
    spec.kind === 'netkit'
      ? [peer, rtattr(IFLA_NETKIT_MODE, u32(NETKIT_L3)), rtattr(IFLA_NETKIT_POLICY, u32(NETKIT_PASS)), rtattr(IFLA_NETKIT_PEER_POLICY, u32(NETKIT_DROP))]
      : [peer];
  return Buffer.concat([ifinfomsg(), rtattr(IFLA_IFNAME, str(spec.hostName)), ...mtu, nest(IFLA_LINKINFO, rtattr(IFLA_INFO_KIND, str(spec.kind)), nest(IFLA_INFO_DATA, ...data))]);
}

/**
 * Creates the pair. EEXIST when hostName is taken (callers retry with another name),
 * EOPNOTSUPP when the kernel lacks the kind (netkit before 6.7 or without CONFIG_NETKIT).
 */
export function createPair(spec: PairSpec): void {
  request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, newPairMessage(spec), `create ${spec.kind} pair ${spec.hostName}/${spec.peerName}`);
}

/**
 * Deletes a host device (which takes its peer along) if `name` still has `ifindex`: a name we
 * used may have been given to somebody else's device since. Gone counts as done.
 */
export function deleteLink(name: string, ifindex: number): boolean {
  if (linkIndex(name) !== ifindex) return false;
  try {
    request(RTM_DELLINK, 0, ifinfomsg(ifindex), `delete link ${name}`);
    return true;
  } catch (err) {
    if (err instanceof SyscallError && ['ENODEV', 'ENOENT'].includes(err.errnoName)) return false;
    throw err;
  }
}
