/*
 * lib/ffi.ts fills `union bpf_attr` itself for the bpf(2) commands of a hook's common path
 * (bpfSys). Its offsets must be the kernel's: each layout in BPF_ATTR is checked against one
 * member of the union in the running kernel's BTF (/sys/kernel/btf/vmlinux, world-readable).
 */
import { existsSync } from 'node:fs';
import { BTF_KIND, records, typeById } from '../../lib/bpf/btf';
import { BPF_ATTR, libbpf, readCString } from '../../lib/ffi';

const VMLINUX = '/sys/kernel/btf/vmlinux';

/** Every field of a struct/union member of bpf_attr, anonymous members flattened, named ones as "member.field". */
function flatten(btf: unknown, typeId: number, base: number, prefix: string, out: Map<string, number>): void {
  const t = typeById(btf, typeId);
  for (const [nameOff, type, offset] of records(t)) {
    const name = readCString(libbpf.btfNameByOffset(btf, nameOff));
    const at = base + (t.kflag ? offset & 0xffffff : offset) / 8;
    const inner = typeById(btf, type).kind;
    if (!name && (inner === BTF_KIND.STRUCT || inner === BTF_KIND.UNION)) flatten(btf, type, at, prefix, out);
    else out.set(prefix + name, at);
  }
}

describe('union bpf_attr layouts of lib/ffi.ts bpfSys', () => {
  let btf: unknown;
  let members: Map<string, number>[];

  beforeAll(() => {
    if (!existsSync(VMLINUX)) throw new Error(`${VMLINUX} missing: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF)`);
    btf = libbpf.btfParse(VMLINUX, null);
    const id = libbpf.btfFindByNameKind(btf, 'bpf_attr', BTF_KIND.UNION) as number;
    expect(id).toBeGreaterThan(0);
    // One map per member of the union: an anonymous struct's fields, or a named struct's as "name.field".
    members = records(typeById(btf, id)).map(([nameOff, type, offset]) => {
      const name = readCString(libbpf.btfNameByOffset(btf, nameOff));
      const fields = new Map<string, number>();
      flatten(btf, type, offset / 8, name ? `${name}.` : '', fields);
      return fields;
    });
  });

  afterAll(() => {
    if (btf) libbpf.btfFree(btf);
  });

  test.each(Object.entries(BPF_ATTR))('%s', (_name, layout) => {
    const fields = Object.entries(layout.fields);
    const member = members.find((m) => fields.every(([f]) => m.has(f)));
    expect(member).toBeDefined();
    for (const [f, offset] of fields) expect([f, member!.get(f)]).toEqual([f, offset]);
    // The size passed ends with the last field used (each field of ours is 4 or 8 bytes).
    const last = Math.max(...fields.map(([, o]) => o));
    expect(layout.size === last + 4 || layout.size === last + 8).toBe(true);
  });
});
