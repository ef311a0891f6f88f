/*
 * sysctl names in user space. The kernel names a sysctl by its path below /proc/sys with
 * slashes ("net/ipv4/tcp_mem"); people write dots ("net.ipv4.tcp_mem"). sysctl(8)'s rule
 * decides between them: a name containing a slash is already in the slash spelling and its dots
 * are part of component names (an interface "eth0.100"); otherwise every dot is a separator.
 *
 * A pattern has at most one wildcard, so the kernel side never backtracks:
 *   *   any run of characters inside one component (no '/')
 *   **  any run of characters, across components (a whole subtree)
 */
import { ConfigError } from '../../lib/errors';

export const NAME_MAX = 127; // bytes, without NUL (TW_SC_NAME_MAX - 1)
export const AFFIX_MAX = 63; // bytes of a pattern's prefix or suffix (TW_SC_AFFIX_MAX - 1)

export type Matcher =
  | { kind: 'exact'; name: string }
  | { kind: 'star' | 'globstar'; prefix: string; suffix: string; seps: number };

const slashes = (s: string) => s.split('/').length - 1;

/** The kernel's spelling of a name written either way. */
export function toSlashes(name: string): string {
  return name.includes('/') ? name : name.replaceAll('.', '/');
}

/** The usual dotted spelling, for messages (exact only when no component contains a dot). */
export function toDots(name: string): string {
  return name.split('/').some((c) => c.includes('.')) ? name : name.replaceAll('/', '.');
}

/** Parses a rule name (exact or with one wildcard); `what` names it in errors. */
export function parseName(raw: string, what: string): Matcher {
  const name = toSlashes(raw.trim());
  const bad = (why: string) => new ConfigError(`${what}: name ${JSON.stringify(raw)} ${why}`);
  if (name === '') throw bad('is empty');
  if (/[\s\0]/.test(name)) throw bad('contains whitespace');
  if (name.startsWith('/')) throw bad('starts with a separator (write it relative to /proc/sys, e.g. net.ipv4.tcp_mem)');
  if (name.endsWith('/')) throw bad(`ends with a separator; write ${JSON.stringify(raw.trim().replace(/[./]$/, '') + (raw.includes('/') ? '/**' : '.**'))} for everything below`);
  if (name.split('/').some((c) => c === '' || c === '.' || c === '..')) throw bad('has an empty, "." or ".." component');
  const stars = name.match(/\*+/g) ?? [];
  if (stars.length === 0) {
    if (Buffer.byteLength(name) > NAME_MAX) throw bad(`is longer than ${NAME_MAX} bytes`);
    return { kind: 'exact', name };
  }
  if (stars.length > 1) throw bad('has more than one wildcard (at most one * or ** per name)');
  const star = stars[0]!;
  if (star.length > 2) throw bad('has *** (use * for part of one component, ** for any depth)');
  const at = name.indexOf(star);
  const prefix = name.slice(0, at);
  const suffix = name.slice(at + star.length);
  for (const [part, text] of [['before', prefix], ['after', suffix]] as const)
    if (Buffer.byteLength(text) > AFFIX_MAX) throw bad(`has more than ${AFFIX_MAX} bytes ${part} its wildcard`);
  const kind = star.length === 2 ? 'globstar' : 'star';
  return { kind, prefix, suffix, seps: slashes(prefix) + slashes(suffix) };
}

/** Whether a slash-spelled name matches, exactly as bpf/sysctl.bpf.c pattern_matches decides. */
export function matches(m: Matcher, name: string): boolean {
  if (m.kind === 'exact') return m.name === name;
  const lit = Buffer.byteLength(m.prefix) + Buffer.byteLength(m.suffix);
  if (lit > Buffer.byteLength(name) || !name.startsWith(m.prefix) || !name.endsWith(m.suffix)) return false;
  return m.kind === 'globstar' || slashes(name) === m.seps;
}

/** Literal bytes of a matcher: the more, the more specific. */
export function literalLength(m: Matcher): number {
  return m.kind === 'exact' ? Infinity : Buffer.byteLength(m.prefix) + Buffer.byteLength(m.suffix);
}

export function matcherText(m: Matcher): string {
  return m.kind === 'exact' ? m.name : `${m.prefix}${m.kind === 'star' ? '*' : '**'}${m.suffix}`;
}
