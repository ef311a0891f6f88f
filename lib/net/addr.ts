/*
 * Strict address parsing and formatting, by hand. ipaddr.js did this before; it builds and
 * compiles its regular expressions at first use, which cost about 1.5 ms of every hook (a tenth
 * of its whole budget, bench/results/README.md), and it accepts legacy IPv4 forms (0177.0.0.1,
 * 127.1) that an annotation must not smuggle past a prefix check. Accepted here: dotted-quad
 * decimal IPv4, and IPv6 text (RFC 4291 2.2, with an optional dotted-quad tail, no zone).
 * Output is RFC 5952 (lowercase, longest zero run as ::, the first of equal runs).
 */
import { ConfigError } from '../errors';

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  address: string;
  prefixLen: number;
}

const FOUR_PARTS = /^(0|[1-9]\d{0,2})(\.(0|[1-9]\d{0,2})){3}$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

function ip4Bytes(text: string): Uint8Array | null {
  if (!FOUR_PARTS.test(text)) return null;
  const parts = text.split('.').map(Number);
  return parts.every((p) => p <= 255) ? Uint8Array.from(parts) : null;
}

function ip6Bytes(text: string): Uint8Array | null {
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groups = (h: string): string[] | null => (h === '' ? [] : h.split(':'));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return null;
  const words: number[][] = [head, tail].map(() => []);
  for (const [i, list] of [head, tail].entries())
    for (const [j, g] of list.entries()) {
      const last = (i === 1 || halves.length === 1) && j === list.length - 1;
      const v4 = last && g.includes('.') ? ip4Bytes(g) : null;
      if (v4) words[i].push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      else if (HEX_GROUP.test(g)) words[i].push(parseInt(g, 16));
      else return null;
    }
  const n = words[0].length + words[1].length;
  if (halves.length === 1 ? n !== 8 : n > 7) return null;
  const all = [...words[0], ...Array(8 - n).fill(0), ...words[1]];
  const out = new Uint8Array(16);
  all.forEach((w, i) => ((out[2 * i] = w >> 8), (out[2 * i + 1] = w & 0xff)));
  return out;
}

const bytesOf = (text: unknown): Uint8Array | null => (typeof text !== 'string' ? null : text.includes(':') ? ip6Bytes(text) : ip4Bytes(text));

/** The address in network byte order (4 or 16 bytes); throws ConfigError naming `what`. */
export function ipBytes(text: string, what = 'address'): Uint8Array {
  const b = bytesOf(text);
  if (!b) throw new ConfigError(`${what}: ${JSON.stringify(text)} is not an IP address`);
  return b;
}

/** The prefix length of a single host: /128 or /32. */
export const hostPrefixLen = (address: string): number => (address.includes(':') ? 128 : 32);

export function ipFromBytes(b: Uint8Array): string {
  if (b.length === 4) return b.join('.');
  const w = Array.from({ length: 8 }, (_, i) => (b[2 * i] << 8) | b[2 * i + 1]);
  let best = -1;
  let bestLen = 1; // a single zero group stays "0" (RFC 5952 4.2.2)
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (ws: number[]) => ws.map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(w) : `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

export function parseIp(text: string, what: string, family?: Family): { family: Family; address: string } {
  const b = bytesOf(text);
  const got: Family | undefined = b ? (b.length === 4 ? 4 : 6) : undefined;
  if (!b || !got || (family && family !== got))
    throw new ConfigError(`${what}: ${JSON.stringify(text)} is not an ${family ? `IPv${family}` : 'IP'} address`);
  return { family: got, address: ipFromBytes(b) };
}

export function parseCidr(text: string, what: string): Cidr {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
  if (!m) throw new ConfigError(`${what}: ${JSON.stringify(text)} is not a prefix (address/length)`);
  const { family, address } = parseIp(m[1], what);
  const prefixLen = Number(m[2]);
  if (prefixLen > (family === 4 ? 32 : 128)) throw new ConfigError(`${what}: ${JSON.stringify(text)} has a prefix length over ${family === 4 ? 32 : 128}`);
  return { family, address, prefixLen };
}

const toBig = (b: Uint8Array) => b.reduce((acc, x) => (acc << 8n) | BigInt(x), 0n);
function fromBig(v: bigint, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = len - 1; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

export function cidrContains(c: Cidr, address: string): boolean {
  const a = ipBytes(address);
  if ((a.length === 4 ? 4 : 6) !== c.family) return false;
  const hostBits = BigInt(a.length * 8 - c.prefixLen);
  return toBig(a) >> hostBits === toBig(ipBytes(c.address)) >> hostBits;
}

export function cidrToString(c: Cidr): string {
  return `${c.address}/${c.prefixLen}`;
}

/** The n-th address of a prefix (n counted from the network address). */
export function nthAddress(c: Cidr, n: bigint): string {
  const bytes = ipBytes(c.address);
  const hostBits = BigInt(bytes.length * 8 - c.prefixLen);
  return ipFromBytes(fromBig(((toBig(bytes) >> hostBits) << hostBits) + n, bytes.length));
}

export function prefixSize(c: Cidr): bigint {
  return 1n << BigInt((c.family === 4 ? 32 : 128) - c.prefixLen);
}

/** Four 32-bit words as the BPF side reads them (network byte order, little-endian host). */
export function ip6Words(address: string): number[] {
  const b = Buffer.from(ipBytes(address));
  return [0, 4, 8, 12].map((o) => b.readUInt32LE(o));
}

export function ip4Word(address: string): number {
  return Buffer.from(ipBytes(address)).readUInt32LE(0);
}
