/*
 * A map by file descriptor, borrowed from a loaded object or opened from a pin, with typed
 * lookup/update/delete/iterate through codecs. Per-CPU values are returned per CPU; callers sum.
 */
import { readFileSync } from 'node:fs';
import { SyscallError } from '../errors';
import { bpfSys, libbpf, libc } from '../ffi';
import { checkInt } from './libbpf';
import type { FieldCodec } from './codec';

export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;

const ENOENT = 2;

let possibleCpus: number | undefined;
/** Per-CPU map values are sized by possible CPUs, not online ones. */
export function numPossibleCpus(): number {
  if (possibleCpus === undefined) {
    try {
      const spec = readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim();
      possibleCpus = spec.split(',').reduce((n, part) => {
        const [a, b] = part.split('-').map(Number);
        return n + (b === undefined ? 1 : b - a + 1);
      }, 0);
    } catch {
      possibleCpus = (require('node:os') as typeof import('node:os')).cpus().length; // lazily: see lib/errors.ts
    }
  }
  return possibleCpus;
}

export class BpfMap {
  private constructor(
    readonly fd: number,
    readonly name: string,
    private readonly owned: boolean,
  ) {}

  static borrow(fd: number, name: string): BpfMap {
    return new BpfMap(fd, name, false);
  }

  /** A new map owned by no object (host-wide state); pin it to keep it. */
  static create(type: number, name: string, keySize: number, valueSize: number, maxEntries: number): BpfMap {
    return new BpfMap(checkInt(libbpf.mapCreate(type, name, keySize, valueSize, maxEntries, null), `create map ${name}`), name, true);
  }

  static openPinned(path: string): BpfMap {
    return new BpfMap(checkInt(bpfSys.objGet(path), `open pinned map ${path}`), path, true);
  }

  update<K, V>(kc: FieldCodec<K>, key: K, vc: FieldCodec<V>, value: V, flags = BPF_ANY): void {
    const k = Buffer.alloc(kc.size);
    kc.write(k, 0, key);
    const v = Buffer.alloc(vc.size);
    vc.write(v, 0, value);
    this.updateRaw(k, v, flags);
  }

  updateRaw(key: Buffer, value: Buffer, flags = BPF_ANY): void {
    checkInt(bpfSys.mapUpdate(this.fd, key, value, flags), `update map ${this.name}`);
  }

  /**
   * `count` packed keys and values in one bpf(BPF_MAP_UPDATE_BATCH) where the map type has it
   * (hash, array); element by element otherwise (LPM tries on kernels before batch support).
   */
  updateBatch(keys: Buffer, values: Buffer, count: number, flags = BPF_ANY): void {
    if (count === 0) return;
    const ks = keys.length / count;
    const vs = values.length / count;
    const n = [count];
    const rc = libbpf.mapUpdateBatch(this.fd, keys, values, n, flags === BPF_ANY ? null : batchOpts(flags)) as number;
    if (rc === 0) return;
    // ENOTSUPP/EOPNOTSUPP: the map type has no batch op and nothing was written.
    if (rc !== -95 && rc !== -524) throw new SyscallError('BPF', `batch update of map ${this.name}`, -rc);
    for (let i = 0; i < count; i++) this.updateRaw(keys.subarray(i * ks, (i + 1) * ks), values.subarray(i * vs, (i + 1) * vs), flags);
  }

  lookup<K, V>(kc: FieldCodec<K>, key: K, vc: FieldCodec<V>): V | undefined {
    const k = Buffer.alloc(kc.size);
    kc.write(k, 0, key);
    const v = this.lookupRaw(k, vc.size);
    return v && vc.read(v, 0);
  }

  lookupRaw(key: Buffer, valueSize: number): Buffer | undefined {
    const v = Buffer.alloc(valueSize);
    const rc = libbpf.mapLookup(this.fd, key, v) as number;
    if (rc === -ENOENT) return undefined;
    checkInt(rc, `lookup in map ${this.name}`);
    return v;
  }

  /** Per-CPU lookup: one value per possible CPU. */
  lookupPerCpu<K, V>(kc: FieldCodec<K>, key: K, vc: FieldCodec<V>): V[] | undefined {
    const k = Buffer.alloc(kc.size);
    kc.write(k, 0, key);
    const stride = Math.ceil(vc.size / 8) * 8;
    const v = this.lookupRaw(k, stride * numPossibleCpus());
    if (!v) return undefined;
    return Array.from({ length: numPossibleCpus() }, (_, i) => vc.read(v, i * stride));
  }

  delete<K>(kc: FieldCodec<K>, key: K): boolean {
    const k = Buffer.alloc(kc.size);
    kc.write(k, 0, key);
    return this.deleteRaw(k);
  }

  deleteRaw(key: Buffer): boolean {
    const rc = libbpf.mapDelete(this.fd, key) as number;
    if (rc === -ENOENT) return false;
    checkInt(rc, `delete from map ${this.name}`);
    return true;
  }

  *keysRaw(keySize: number): Generator<Buffer> {
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(keySize);
      const rc = libbpf.mapNextKey(this.fd, prev, next) as number;
      if (rc === -ENOENT) return;
      if (rc < 0) throw new SyscallError('BPF', `iterate map ${this.name}`, -rc);
      yield next;
      prev = next;
    }
  }

  *entries<K, V>(kc: FieldCodec<K>, vc: FieldCodec<V>): Generator<[K, V]> {
    for (const k of this.keysRaw(kc.size)) {
      const v = this.lookupRaw(k, vc.size);
      if (v) yield [kc.read(k, 0), vc.read(v, 0)];
    }
  }

  pin(path: string): void {
    checkInt(bpfSys.objPin(this.fd, path), `pin map ${this.name} at ${path}`);
  }

  close(): void {
    if (this.owned) libc.close(this.fd);
  }
}

/** struct bpf_map_batch_opts { size_t sz; __u64 elem_flags; __u64 flags; } */
function batchOpts(elemFlags: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(24n, 0);
  b.writeBigUInt64LE(BigInt(elemFlags), 8);
  return b;
}
