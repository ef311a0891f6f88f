/*
 * iproute2 as a subprocess, by absolute path (hooks may run with an empty environment), with
 * typed errors. Work inside another network namespace goes through `nsenter --net=<path>` in
 * that short-lived child: a netns belongs to a thread, and switching one of Node's threads
 * would move every libuv worker's view of the network with it. We never call setns here.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { TaskwireError } from '../errors';

/** The first of `paths` that exists: external programs are run by absolute path (hooks get no PATH). */
export function firstExisting(what: string, paths: string[]): string {
  const p = paths.find((x) => existsSync(x));
  if (!p) throw new TaskwireError('SYSTEM', `${what} not found (looked at ${paths.join(', ')})`);
  return p;
}

let ipBin: string | undefined;
let nsenterBin: string | undefined;
let tcBin: string | undefined;
export const ipPath = () => (ipBin ??= firstExisting('iproute2 (ip)', ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip']));
export const tcPath = () => (tcBin ??= firstExisting('iproute2 (tc), needed for clsact on kernels before 6.6', ['/usr/sbin/tc', '/sbin/tc', '/usr/bin/tc', '/bin/tc']));
export const nsenterPath = () => (nsenterBin ??= firstExisting('nsenter', ['/usr/bin/nsenter', '/bin/nsenter', '/usr/sbin/nsenter']));

/** iproute2's message mapped to an errno name, so callers can branch like on a SyscallError. */
export class IprouteError extends TaskwireError {
  constructor(
    readonly command: string,
    readonly stderr: string,
    readonly errnoName: string,
  ) {
    super('NETLINK', `${command}: ${stderr.trim().split('\n').slice(-2).join(' | ') || 'failed'}`);
  }
}

const MESSAGES: [RegExp, string][] = [
  [/File exists/i, 'EEXIST'],
  [/Cannot find device|No such device/i, 'ENODEV'],
  [/No such process/i, 'ESRCH'],
  [/Operation not supported|not supported/i, 'EOPNOTSUPP'],
  [/Cannot assign requested address/i, 'EADDRNOTAVAIL'],
  [/No such file or directory|can't open/i, 'ENOENT'],
  [/Invalid argument/i, 'EINVAL'],
  [/Operation not permitted|Permission denied/i, 'EPERM'],
];

export function errnoFromMessage(text: string): string {
  return MESSAGES.find(([re]) => re.test(text))?.[1] ?? 'EIO';
}

export interface IpOptions {
  /** Run inside this network namespace (a path like /proc/PID/ns/net). */
  netns?: string;
  /** Standard input (for -batch -). */
  input?: string;
  timeoutMs?: number;
}

function run(args: string[], o: IpOptions): string {
  const [file, argv] = o.netns ? [nsenterPath(), [`--net=${o.netns}`, '--', ipPath(), ...args]] : [ipPath(), args];
  const shown = `ip ${args.join(' ')}${o.netns ? ` (in ${o.netns})` : ''}`;
  const r = spawnSync(file, argv, { input: o.input, env: {}, encoding: 'utf8', timeout: o.timeoutMs ?? 5000 });
  if (r.error) throw new TaskwireError('SYSTEM', `${shown}: ${r.error.message}`);
  if (r.status !== 0) {
    // nsenter's own failure (the netns is gone) reads "nsenter: reassociate ... No such file".
    throw new IprouteError(shown, r.stderr || `exit ${r.status ?? r.signal}`, errnoFromMessage(r.stderr ?? ''));
  }
  return r.stdout;
}

export function ip(args: string[], o: IpOptions = {}): string {
  return run(args, o);
}

export function ipJson<T = any>(args: string[], o: IpOptions = {}): T {
  const out = run(['-j', ...args], o).trim();
  return (out ? JSON.parse(out) : []) as T;
}

/** Several commands in one process (`ip -batch -`); stops at the first failure. */
export function ipBatch(lines: string[], o: IpOptions = {}): void {
  if (lines.length) run(['-batch', '-'], { ...o, input: lines.join('\n') + '\n' });
}
