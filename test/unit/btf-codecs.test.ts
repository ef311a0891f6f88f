/*
 * Every TypeScript codec of a struct shared with BPF C must match the struct in the built
 * object's BTF: size, and each field's name, offset and size. A plugin's codec.ts declares its
 * object as BPF_OBJECT; every exported struct codec there is checked. Reading BTF of an object
 * file needs no privilege.
 */
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { bpfObjectPath } from '../../lib/assets';
import { structLayout } from '../../lib/bpf/btf';
import type { StructCodec } from '../../lib/bpf/codec';

const pluginsDir = join(__dirname, '..', '..', 'plugins');
const modules = readdirSync(pluginsDir).filter((d) => existsSync(join(pluginsDir, d, 'codec.ts')));

function isStruct(v: unknown): v is StructCodec {
  return typeof v === 'object' && v !== null && 'cName' in v && 'layout' in v;
}

describe.each(modules)('codecs of plugins/%s match BTF', (plugin) => {
  const mod = require(join(pluginsDir, plugin, 'codec.ts'));
  const objects: string[] = [].concat(mod.BPF_OBJECT ?? []);
  const codecs = Object.values(mod).filter(isStruct);

  test('declares its BPF object and at least one struct', () => {
    expect(objects.length).toBeGreaterThan(0);
    expect(codecs.length).toBeGreaterThan(0);
  });

  test.each(codecs.map((c) => [c.cName, c] as const))('struct %s', (_name, codec) => {
    const { libbpf } = require('../../lib/ffi');
    const found = objects.map((o) => {
      const btf = libbpf.btfParse(bpfObjectPath(o), null);
      try {
        return structLayout(btf, codec.cName);
      } finally {
        libbpf.btfFree(btf);
      }
    }).find(Boolean);
    expect(found).toBeDefined();
    expect({ size: codec.size, members: codec.layout }).toEqual({ size: found!.size, members: found!.members });
  });
});
