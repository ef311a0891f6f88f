/*
 * One error catalogue for the whole project. Library code throws these; the hook dispatcher and
 * the CLI are the only places that turn them into one line on stderr and an exit code.
 */

export type ErrorCode =
  | 'CONFIG' // host config or annotation refused
  | 'STATE' // OCI state refused
  | 'BPF' // a libbpf / bpf() call failed
  | 'VERIFIER' // the kernel refused to load a program
  | 'NOT_SUPPORTED' // the kernel lacks a feature
  | 'NETLINK' // an rtnetlink request failed
  | 'IPAM' // no address, or an address in use
  | 'SYSTEM'; // anything else the host refused

export class TaskwireError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class ConfigError extends TaskwireError {
  constructor(message: string) {
    super('CONFIG', message);
  }
}

export class NotSupportedError extends TaskwireError {
  constructor(message: string) {
    super('NOT_SUPPORTED', message);
  }
}

/** A failed system call, carrying the errno so callers can branch on ENOENT and the like. */
export class SyscallError extends TaskwireError {
  readonly errno: number;
  readonly errnoName: string;
  constructor(code: ErrorCode, what: string, errno: number) {
    const name = errnoName(errno);
    super(code, `${what}: ${name} (${describeErrno(errno)})`);
    this.errno = errno;
    this.errnoName = name;
  }
}

export class VerifierError extends SyscallError {
  constructor(what: string, errno: number, readonly log: string) {
    super('VERIFIER', what, errno);
    const tail = log.trim().split('\n').slice(-3).join(' | ');
    if (tail) this.message += `; verifier: ${tail}`;
  }
}

// node:os is loaded when an error first needs a name, not with this module: loading it cost every
// hook about 0.27 ms (bench/README.md), and a hook that succeeds names no errno.
const errnoTable = (): Record<string, number> => (require('node:os') as typeof import('node:os')).constants.errno;
let errnoNames: Map<number, string> | undefined;

export function errnoName(errno: number): string {
  if (!errnoNames) {
    errnoNames = new Map(Object.entries(errnoTable()).map(([name, value]) => [value, name]));
    // Kernel-internal errnos that leak to user space from bpf(2); Node does not know them.
    errnoNames.set(524, 'ENOTSUPP');
    errnoNames.set(512, 'ERESTARTSYS');
  }
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

function describeErrno(errno: number): string {
  const E = errnoTable();
  switch (errno) {
    case E.EPERM:
      return 'operation not permitted';
    case E.ENOENT:
      return 'no such file or directory';
    case E.EEXIST:
      return 'already exists';
    case E.EINVAL:
      return 'invalid argument';
    case E.EACCES:
      return 'permission denied';
    case E.EBUSY:
      return 'busy';
    case E.ENOMEM:
      return 'out of memory';
    case E.EOPNOTSUPP:
    case 524:
      return 'not supported by this kernel';
    case E.EADDRNOTAVAIL:
      return 'address not available';
    case E.ENOLINK:
      return 'link is defunct';
    default:
      return 'system error';
  }
}

export function isErrno(err: unknown, ...names: string[]): boolean {
  if (err instanceof SyscallError) return names.includes(err.errnoName);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && names.includes(code);
}

/** The one line a person sees. */
export function oneLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.replace(/\s*\n\s*/g, ' ');
}
