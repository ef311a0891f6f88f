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

/*
 * Both parsers walk the text once, by character code, without regular expressions, arrays or
 * closures: a hook parses a dozen addresses and prefixes once each, cold, and the regex and
 * array version cost it about 20 µs a parse (0.25 ms a createRuntime).
 */

/** Dotted-quad decimal in text[start, end): four parts of 0-255 without leading zeros. */
function ip4Bytes(text: string, start = 0, end = text.length): Uint8Array | null {
  const out = new Uint8Array(4);
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = start; i <= end; i++) {
    const c = i < end ? text.charCodeAt(i) : 0x2e; // the end closes the last part as a '.' would
    if (c >= 0x30 && c <= 0x39) {
      if (digits === 1 && value === 0) return null; // a leading zero: 0177 is octal elsewhere
      value = value * 10 + (c - 0x30);
      if (++digits > 3 || value > 255) return null;
    } else if (c === 0x2e) {
      if (digits === 0 || part > 3) return null;
      out[part++] = value;
      value = 0;
      digits = 0;
    } else return null;
  }
  return part === 4 ? out : null;
}

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/** IPv6 text: groups of 1-4 hex digits, at most one '::', optionally a dotted-quad last. */
function ip6Bytes(text: string): Uint8Array | null {
  const n = text.length;
  const words: number[] = [];
  let gap = -1; // where '::' stands, in words
  let i = 0;
  if (text.startsWith('::')) {
    gap = 0;
    i = 2;
  }
  while (i < n) {
    let j = i;
    let v = 0;
    for (let d; j < n && j - i < 4 && (d = hexDigit(text.charCodeAt(j))) >= 0; j++) v = v * 16 + d;
    if (j < n && text.charCodeAt(j) === 0x2e) {
      const v4 = ip4Bytes(text, i, n); // a dotted quad ends the address
      if (!v4) return null;
      words.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      break;
    }
    if (j === i) return null;
    words.push(v);
    if (j === n) break;
    if (text.charCodeAt(j) !== 0x3a) return null;
    if (text.charCodeAt(j + 1) === 0x3a) {
      if (gap >= 0) return null;
      gap = words.length;
      i = j + 2;
    } else {
      if (j + 1 === n) return null; // a trailing single ':'
      i = j + 1;
    }
  }
  if (gap < 0 ? words.length !== 8 : words.length > 7) return null;
  const out = new Uint8Array(16);
  const zeros = 8 - words.length;
  for (let k = 0, w = 0; k < 8; k++) {
    const word = gap >= 0 && k >= gap && k < gap + zeros ? 0 : words[w++];
    out[2 * k] = word >> 8;
    out[2 * k + 1] = word & 0xff;
  }
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
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  // The longest run of two or more zero groups becomes '::', the first of equal runs (RFC 5952 4.2).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && b[2 * j] === 0 && b[2 * j + 1] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === best) {
      out += '::';
      i += bestLen - 1;
      continue;
    }
    if (out !== '' && !out.endsWith(':')) out += ':';
    out += ((b[2 * i] << 8) | b[2 * i + 1]).toString(16);
  }
  return out;
}

export function parseIp(text: string, what: string, family?: Family): { family: Family; address: string } {
  const b = bytesOf(text);
  const got: Family | undefined = b ? (b.length === 4 ? 4 : 6) : undefined;
  if (!b || !got || (family && family !== got))
    throw new ConfigError(`${what}: ${JSON.stringify(text)} is not an ${family ? `IPv${family}` : 'IP'} address`);
  return { family: got, address: ipFromBytes(b) };
}

export function parseCidr(text: string, what: string): Cidr {
  const slash = typeof text === 'string' ? text.indexOf('/') : -1;
  const len = slash > 0 ? text.slice(slash + 1) : '';
  let digitsOnly = len.length >= 1 && len.length <= 3;
  for (let i = 0; digitsOnly && i < len.length; i++) digitsOnly = len.charCodeAt(i) >= 0x30 && len.charCodeAt(i) <= 0x39;
  if (!digitsOnly) throw new ConfigError(`${what}: ${JSON.stringify(text)} is not a prefix (address/length)`);
  const { family, address } = parseIp(text.slice(0, slash), what);
  const prefixLen = Number(len);
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
