/*
 * Typed codecs for map keys and values. Each struct shared with BPF C is declared once here
 * (next to its plugin) mirroring bpf/include/*.h; a test checks every codec against the BTF of
 * the built object, so the two sides cannot drift. Layout follows C's natural alignment.
 */
import { ipBytes, ipFromBytes } from '../net/addr';

export interface FieldCodec<T> {
  readonly size: number;
  readonly align: number;
  read(buf: Buffer, off: number): T;
  write(buf: Buffer, off: number, v: T): void;
}

const num = (size: 1 | 2 | 4, be = false): FieldCodec<number> => ({
  size,
  align: size,
  read: (b, o) => (size === 1 ? b.readUInt8(o) : size === 2 ? (be ? b.readUInt16BE(o) : b.readUInt16LE(o)) : be ? b.readUInt32BE(o) : b.readUInt32LE(o)),
  write: (b, o, v) => {
    if (size === 1) b.writeUInt8(v, o);
    else if (size === 2) be ? b.writeUInt16BE(v, o) : b.writeUInt16LE(v, o);
    else be ? b.writeUInt32BE(v >>> 0, o) : b.writeUInt32LE(v >>> 0, o);
  },
});

export const u8 = num(1);
export const u16 = num(2);
export const u32 = num(4);
export const be16 = num(2, true);
export const be32 = num(4, true);
export const u64: FieldCodec<bigint> = {
  size: 8,
  align: 8,
  read: (b, o) => b.readBigUInt64LE(o),
  write: (b, o, v) => b.writeBigUInt64LE(BigInt(v), o),
};
export const s64: FieldCodec<bigint> = {
  size: 8,
  align: 8,
  read: (b, o) => b.readBigInt64LE(o),
  write: (b, o, v) => b.writeBigInt64LE(BigInt(v), o),
};

/** 16 bytes in network order; IPv4 addresses are stored v4-mapped (::ffff:a.b.c.d). */
export const ip6Addr: FieldCodec<string> = {
  size: 16,
  align: 4,
  read: (b, o) => {
    const a = b.subarray(o, o + 16);
    const mapped = a.subarray(0, 10).every((x) => x === 0) && a[10] === 0xff && a[11] === 0xff;
    return ipFromBytes(mapped ? a.subarray(12) : a);
  },
  write: (b, o, v) => {
    const a = ipBytes(v);
    if (a.length === 16) Buffer.from(a).copy(b, o);
    else {
      b.fill(0, o, o + 10);
      b.writeUInt16BE(0xffff, o + 10);
      Buffer.from(a).copy(b, o + 12);
    }
  },
};

export const ip4Addr: FieldCodec<string> = {
  size: 4,
  align: 4,
  read: (b, o) => ipFromBytes(b.subarray(o, o + 4)),
  write: (b, o, v) => {
    const a = ipBytes(v);
    if (a.length !== 4) throw new RangeError(`${v} is not an IPv4 address`);
    Buffer.from(a).copy(b, o);
  },
};

export function bytes(size: number, align = 1): FieldCodec<Buffer> {
  return {
    size,
    align,
    read: (b, o) => Buffer.from(b.subarray(o, o + size)),
    write: (b, o, v) => {
      b.fill(0, o, o + size);
      v.copy(b, o, 0, Math.min(size, v.length));
    },
  };
}

export function cstring(size: number): FieldCodec<string> {
  return {
    size,
    align: 1,
    read: (b, o) => {
      const s = b.subarray(o, o + size);
      const end = s.indexOf(0);
      return s.subarray(0, end < 0 ? size : end).toString('utf8');
    },
    write: (b, o, v) => {
      b.fill(0, o, o + size);
      b.write(v, o, size - 1, 'utf8');
    },
  };
}

export function array<T>(elem: FieldCodec<T>, n: number): FieldCodec<T[]> {
  return {
    size: elem.size * n,
    align: elem.align,
    read: (b, o) => Array.from({ length: n }, (_, i) => elem.read(b, o + i * elem.size)),
    write: (b, o, v) => v.forEach((x, i) => elem.write(b, o + i * elem.size, x)),
  };
}

type Fields = Record<string, FieldCodec<any>>;
export type Decoded<F extends Fields> = { [K in keyof F]: F[K] extends FieldCodec<infer T> ? T : never };

export interface StructCodec<F extends Fields = Fields> extends FieldCodec<Decoded<F>> {
  /** The C struct name in bpf/include, for the BTF check. */
  readonly cName: string;
  readonly layout: ReadonlyArray<{ name: string; offset: number; size: number }>;
  encode(v: Partial<Decoded<F>>): Buffer;
  decode(buf: Buffer): Decoded<F>;
}

export function struct<F extends Fields>(cName: string, fields: F): StructCodec<F> {
  let off = 0;
  let align = 1;
  const layout: { name: string; offset: number; size: number; codec: FieldCodec<any> }[] = [];
  for (const [name, codec] of Object.entries(fields)) {
    off = Math.ceil(off / codec.align) * codec.align;
    layout.push({ name, offset: off, size: codec.size, codec });
    off += codec.size;
    align = Math.max(align, codec.align);
  }
  const size = Math.ceil(off / align) * align;
  const write = (b: Buffer, o: number, v: Partial<Decoded<F>>) => {
    for (const f of layout) {
      const x = (v as Record<string, unknown>)[f.name];
      if (x !== undefined) f.codec.write(b, o + f.offset, x);
    }
  };
  const read = (b: Buffer, o: number) => {
    const out: Record<string, unknown> = {};
    for (const f of layout) out[f.name] = f.codec.read(b, o + f.offset);
    return out as Decoded<F>;
  };
  return {
    cName,
    size,
    align,
    layout: layout.map(({ name, offset, size: s }) => ({ name, offset, size: s })),
    read,
    write,
    encode: (v) => {
      const b = Buffer.alloc(size);
      write(b, 0, v);
      return b;
    },
    decode: (b) => read(b, 0),
  };
}
