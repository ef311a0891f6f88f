/*
 * Strict address parsing. ipaddr.js alone accepts legacy IPv4 forms (0177.0.0.1, 127.1) that
 * an annotation must not be able to smuggle past a prefix check, so only dotted-quad decimal
 * IPv4 and standard IPv6 text are accepted here.
 */
import ipaddr from 'ipaddr.js';
import { ConfigError } from '../errors';

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  address: string;
  prefixLen: number;
}

const FOUR_PARTS = /^(0|[1-9]\d*)(\.(0|[1-9]\d*)){3}$/;

export function parseIp(text: string, what: string, family?: Family): { family: Family; address: string } {
  if (typeof text === 'string') {
    // FOUR_PARTS is the last test isValidFourPartDecimal makes: checked first, it spares an IPv6
    // text ipaddr's IPv4 regexes (compiled at first use: a fraction of a hook's millisecond budget).
    if ((family ?? 4) === 4 && FOUR_PARTS.test(text) && ipaddr.IPv4.isValidFourPartDecimal(text)) return { family: 4, address: ipaddr.IPv4.parse(text).toString() };
    if ((family ?? 6) === 6 && !text.includes('%') && ipaddr.IPv6.isValid(text) && text.includes(':')) {
      const a = ipaddr.IPv6.parse(text);
      return { family: 6, address: a.toString() };
    }
  }
  throw new ConfigError(`${what}: ${JSON.stringify(text)} is not an ${family ? `IPv${family}` : 'IP'} address`);
}

export function parseCidr(text: string, what: string): Cidr {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
  if (!m) throw new ConfigError(`${what}: ${JSON.stringify(text)} is not a prefix (address/length)`);
  const { family, address } = parseIp(m[1], what);
  const prefixLen = Number(m[2]);
  if (prefixLen > (family === 4 ? 32 : 128)) throw new ConfigError(`${what}: ${JSON.stringify(text)} has a prefix length over ${family === 4 ? 32 : 128}`);
  return { family, address, prefixLen };
}

export function cidrContains(c: Cidr, address: string): boolean {
  const a = ipaddr.parse(address);
  if ((a.kind() === 'ipv4' ? 4 : 6) !== c.family) return false;
  return a.match(ipaddr.parse(c.address), c.prefixLen);
}

export function cidrToString(c: Cidr): string {
  return `${c.address}/${c.prefixLen}`;
}

/** The n-th address of a prefix (n counted from the network address). */
export function nthAddress(c: Cidr, n: bigint): string {
  const bytes = ipaddr.parse(c.address).toByteArray();
  let v = bytes.reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
  const bits = BigInt(bytes.length * 8);
  const hostBits = bits - BigInt(c.prefixLen);
  v = (v >> hostBits) << hostBits;
  v += n;
  const out: number[] = [];
  for (let i = bytes.length - 1; i >= 0; i--) out[i] = Number((v >> BigInt((bytes.length - 1 - i) * 8)) & 0xffn);
  return ipaddr.fromByteArray(out).toString();
}

export function prefixSize(c: Cidr): bigint {
  return 1n << BigInt((c.family === 4 ? 32 : 128) - c.prefixLen);
}

/** Four 32-bit words as the BPF side reads them (network byte order, little-endian host). */
export function ip6Words(address: string): number[] {
  const b = Buffer.from(ipaddr.parse(address).toByteArray());
  return [0, 4, 8, 12].map((o) => b.readUInt32LE(o));
}

export function ip4Word(address: string): number {
  return Buffer.from(ipaddr.parse(address).toByteArray()).readUInt32LE(0);
}
