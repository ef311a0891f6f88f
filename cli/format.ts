/* Text for people: sizes, durations, and decoded map values on one line. */
import type { Decoded } from '../lib/map-decode';

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function nanos(ns: number | bigint): string {
  const n = Number(ns);
  if (n < 1e3) return `${n} ns`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} µs`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} ms`;
  return `${(n / 1e9).toFixed(2)} s`;
}

/** {addr: "fd00::1", port: 80} → "addr=fd00::1 port=80"; nested structs in braces. */
export function flat(v: Decoded): string {
  if (v === null) return '-';
  if (Array.isArray(v)) return `[${v.map(flat).join(',')}]`;
  if (typeof v === 'object') return Object.entries(v).map(([k, x]) => `${k}=${typeof x === 'object' && x !== null && !Array.isArray(x) ? `{${flat(x)}}` : flat(x)}`).join(' ');
  return String(v);
}
