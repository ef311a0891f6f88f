/*
 * Adding and removing host addresses over rtnetlink, through libc socket calls. Written by hand
 * because Node cannot open netlink sockets, the npm netlink packages are unmaintained native
 * addons, and spawning `ip` would cost the hook a few milliseconds of its start-up budget per
 * address. Anything more involved (links, routes, netns) goes through iproute2 instead.
 */
import { SyscallError } from '../errors';
import { errno, libc } from '../ffi';
import { ipBytes } from './addr';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_ROUTE = 0;
const RTM_NEWADDR = 20;
const RTM_DELADDR = 21;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const NLMSG_ERROR = 2;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_FLAGS = 8;
const IFA_F_NODAD = 0x02;
const IFA_F_NOPREFIXROUTE = 0x200;
const RT_SCOPE_UNIVERSE = 0;

/** One netlink attribute, padded to 4 bytes (shared with rtnetlink-link.ts). */
export function rtattr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  payload.copy(b, 4);
  return b;
}

/** ifindex of a device in this netns, or 0 when there is none. */
export function linkIndex(name: string): number {
  return libc.ifNameToIndex(name) as number;
}

export function ifIndex(ifname: string): number {
  const idx = linkIndex(ifname);
  if (!idx) throw new SyscallError('NETLINK', `network device ${ifname}`, errno() || 19);
  return idx;
}

/**
 * The process's rtnetlink socket, opened at the first request and kept (close-on-exec): a hook
 * that adds or removes a container's IPv6 and IPv4 address pays for one socket, not two. A
 * socket that failed is dropped, so the next request starts clean.
 */
let rtnl: { fd: number; seq: number } | undefined;

const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
// An ack the kernel never sends must not hold a hook past its runtime's timeout.
const ACK_TIMEOUT_S = 5;

function rtnlSocket(): { fd: number; seq: number } {
  if (!rtnl) {
    const fd = libc.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE) as number;
    if (fd < 0) throw new SyscallError('NETLINK', 'open rtnetlink socket', errno());
    const tv = Buffer.alloc(16); // struct timeval
    tv.writeBigInt64LE(BigInt(ACK_TIMEOUT_S), 0);
    if ((libc.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, tv.length) as number) < 0) {
      const e = errno();
      libc.close(fd);
      throw new SyscallError('NETLINK', 'set the rtnetlink socket timeout', e);
    }
    rtnl = { fd, seq: 0 };
  }
  return rtnl;
}

function dropSocket(): void {
  if (rtnl) libc.close(rtnl.fd);
  rtnl = undefined;
}

/** One rtnetlink request, waiting for its ack (matched by sequence number); throws SyscallError on a nack. */
export function request(type: number, flags: number, body: Buffer, what: string): void {
  const sock = rtnlSocket();
  const seq = ++sock.seq;
  const hdr = Buffer.alloc(16);
  hdr.writeUInt32LE(16 + body.length, 0);
  hdr.writeUInt16LE(type, 4);
  hdr.writeUInt16LE(flags | NLM_F_REQUEST | NLM_F_ACK, 6);
  hdr.writeUInt32LE(seq, 8);
  const msg = Buffer.concat([hdr, body]);
  const kernel = Buffer.alloc(12);
  kernel.writeUInt16LE(AF_NETLINK, 0);
  if (Number(libc.sendto(sock.fd, msg, msg.length, 0, kernel, 12)) < 0) {
    const e = errno();
    dropSocket();
    throw new SyscallError('NETLINK', what, e);
  }
  const ack = Buffer.alloc(8192);
  const from = Buffer.alloc(12); // sockaddr_nl
  for (;;) {
    const fromLen = [from.length];
    const n = Number(libc.recvfrom(sock.fd, ack, ack.length, 0, from, fromLen));
    if (n < 0) {
      const e = errno();
      dropSocket();
      throw new SyscallError('NETLINK', what, e); // EAGAIN: no ack within ACK_TIMEOUT_S
    }
    if (from.readUInt32LE(4) !== 0) continue; // nl_pid: only the kernel's messages count
    for (let off = 0; off + 16 <= n; ) {
      const len = ack.readUInt32LE(off);
      if (len < 16) break;
      if (ack.readUInt32LE(off + 8) === seq && ack.readUInt16LE(off + 4) === NLMSG_ERROR) {
        const err = len >= 20 ? ack.readInt32LE(off + 16) : 0;
        if (err < 0) throw new SyscallError('NETLINK', what, -err);
        return;
      }
      off += (len + 3) & ~3;
    }
  }
}

function addrMessage(ifname: string, address: string, prefixLen: number, flags: number): Buffer {
  const raw = Buffer.from(ipBytes(address));
  const family = raw.length === 16 ? 10 : 2;
  const ifa = Buffer.alloc(8);
  ifa.writeUInt8(family, 0);
  ifa.writeUInt8(prefixLen, 1);
  ifa.writeUInt8(0, 2);
  ifa.writeUInt8(RT_SCOPE_UNIVERSE, 3); // global even on lo: the task IP is a source for remote peers
  ifa.writeUInt32LE(ifIndex(ifname), 4);
  const fl = Buffer.alloc(4);
  fl.writeUInt32LE(flags, 0);
  return Buffer.concat([ifa, rtattr(IFA_LOCAL, raw), rtattr(IFA_ADDRESS, raw), rtattr(IFA_FLAGS, fl)]);
}

/**
 * Adds address/prefixLen to a device without duplicate address detection, so binds to it work
 * at once. Refuses (EEXIST) when the host already has it: it is somebody else's then.
 */
export function addAddress(ifname: string, address: string, prefixLen: number): void {
  request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, addrMessage(ifname, address, prefixLen, IFA_F_NODAD | IFA_F_NOPREFIXROUTE), `add address ${address}/${prefixLen} to ${ifname}`);
}

/** Removes an address; absent address or device counts as done. */
export function removeAddress(ifname: string, address: string, prefixLen: number): void {
  let body: Buffer;
  try {
    body = addrMessage(ifname, address, prefixLen, 0);
  } catch (err) {
    if (err instanceof SyscallError && err.errnoName === 'ENODEV') return;
    throw err;
  }
  try {
    request(RTM_DELADDR, 0, body, `remove address ${address}/${prefixLen} from ${ifname}`);
  } catch (err) {
    if (err instanceof SyscallError && ['EADDRNOTAVAIL', 'ENOENT', 'ENODEV'].includes(err.errnoName)) return;
    throw err;
  }
}
