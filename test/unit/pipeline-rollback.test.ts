/*
 * The pipeline's promise, without the kernel: whatever step fails, everything recorded before
 * it is undone newest first, the record is gone and the error is the one the plugin threw.
 * The plugins here are fakes whose resources are entries in an in-memory "host".
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContainer, destroyContainer } from '../../lib/pipeline';
import { registerResourceKind } from '../../lib/resources';
import { definePlugin, PluginContext } from '../../lib/plugin';
import { silentLog } from '../../lib/log';
import type { HostConfig } from '../../lib/host/config';
import type { Container } from '../../lib/container';
import { readRecord } from '../../lib/state/record';

const world = new Set<string>();
const released: string[] = [];
registerResourceKind('fake', (r) => {
  released.push(r.name as string);
  world.delete(r.name as string);
});
// A resource the host will not let go of (EBUSY and the like).
registerResourceKind('stuck', (r) => {
  throw new Error(`${r.name as string} is busy`);
});

/** A fake plugin whose attach is `attach`. */
function pluginWith(name: string, attach: (ctx: PluginContext<{ enabled: boolean }>) => Record<string, unknown>) {
  return definePlugin<null, { enabled: boolean }, Record<string, unknown>>({ name, annotation: `io.taskwire.${name}`, summary: 'fake', hostSchema: 'unused', parse: () => null, attach });
}

function fakePlugin(name: string, steps: number, failAt: number | null) {
  return definePlugin<null, { enabled: boolean }, Record<string, unknown>>({
    name,
    annotation: `io.taskwire.${name}`,
    summary: 'fake',
    hostSchema: 'unused',
    parse: () => null,
    attach(ctx: PluginContext<{ enabled: boolean }>) {
      for (let i = 0; i < steps; i++) {
        if (failAt === i) throw new Error(`${name} failed at step ${i}`);
        ctx.acquire({ kind: 'fake', name: `${name}#${i}` }, () => world.add(`${name}#${i}`));
      }
      return { steps };
    },
  });
}

let dir: string;
let host: HostConfig;
const container: Container = { id: 'unit.1', pid: 1, bundle: '/b', annotations: {}, cgroupDir: '/nonexistent', cgroupId: 1n, pidStart: '1', netnsPath: '/proc/1/ns/net', netnsId: 'net:[1]' };

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tw-unit-'));
  host = { path: null, bpffs: join(dir, 'bpf'), runDir: join(dir, 'run'), logFile: '', logLevel: 'silent', hookTimeoutMs: 8000, policyDir: dir, pools: {}, plugins: {} };
  world.clear();
  released.length = 0;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const layout = () => ({ bpffs: host.bpffs, runDir: host.runDir });
const run = (plugins: ReturnType<typeof fakePlugin>[]) =>
  createContainer({ container, host, log: silentLog(), stage: 'createRuntime', deadline: Date.now() + 10000, selected: plugins.map((def) => ({ def, value: '', config: null, section: { enabled: true } })) });

describe('pipeline rollback', () => {
  const cases: [string, number | null, number | null][] = [];
  for (let a = 0; a < 3; a++) cases.push([`first plugin fails at step ${a}`, a, null]);
  for (let b = 0; b < 3; b++) cases.push([`second plugin fails at step ${b}`, null, b]);

  test.each(cases)('%s: everything undone newest first, no record', (_n, failA, failB) => {
    expect(() => run([fakePlugin('a', 3, failA), fakePlugin('b', 3, failB)])).toThrow(/failed at step/);
    expect(world.size).toBe(0);
    const made = failA !== null ? failA : 3 + (failB ?? 0);
    const expected = ['a#0', 'a#1', 'a#2', 'b#0', 'b#1', 'b#2'].slice(0, made).reverse();
    expect(released).toEqual(expected);
    expect(readRecord(layout(), container.id)).toBeUndefined();
  });

  test('success records every plugin and resource; destroy undoes in reverse and twice is a no-op', () => {
    const rec = run([fakePlugin('a', 2, null), fakePlugin('b', 1, null)]);
    expect(rec.complete).toBe(true);
    expect(rec.plugins.map((p) => p.name)).toEqual(['a', 'b']);
    expect(readRecord(layout(), container.id)?.resources.map((r) => r.name)).toEqual(['a#0', 'a#1', 'b#0']);
    expect(destroyContainer(layout(), container.id, silentLog())).toEqual({ found: true, errors: [] });
    expect(released).toEqual(['b#0', 'a#1', 'a#0']);
    expect(world.size).toBe(0);
    expect(destroyContainer(layout(), container.id, silentLog())).toEqual({ found: false, errors: [] });
    expect(readdirSync(join(host.runDir, 'containers'))).toEqual([]);
  });

  test('an earlier record under the same id is undone first; if it cannot be, the create is refused and the record kept for gc', () => {
    const stuck = pluginWith('stuck', (ctx) => {
      ctx.acquire({ kind: 'stuck', name: 'stuck#0' }, () => undefined);
      return {};
    });
    const one = (def: ReturnType<typeof pluginWith>) => createContainer({ container, host, log: silentLog(), stage: 'createRuntime', deadline: Date.now() + 10000, selected: [{ def, value: '', config: null, section: { enabled: true } }] });
    one(fakePlugin('a', 1, null)); // its poststop never ran
    expect(one(fakePlugin('b', 1, null)).resources.map((r) => r.name)).toEqual(['b#0']);
    expect(released).toEqual(['a#0']);
    expect(world).toEqual(new Set(['b#0']));

    destroyContainer(layout(), container.id, silentLog());
    one(stuck);
    expect(() => one(fakePlugin('c', 1, null))).toThrow(/an earlier container with id unit\.1 left state that could not be undone \(.*stuck#0 is busy\); see taskwire gc/);
    expect(world.has('c#0')).toBe(false);
    expect(readRecord(layout(), container.id)?.resources.map((r) => r.name)).toEqual(['stuck#0']);
  });

  test('a deadline that has passed stops the pipeline before the next plugin and undoes', () => {
    const slow = pluginWith('slow', (ctx) => {
      ctx.acquire({ kind: 'fake', name: 'slow#0' }, () => world.add('slow#0'));
      ctx.checkDeadline();
      return {};
    });
    expect(() =>
      createContainer({ container, host, log: silentLog(), stage: 'createRuntime', deadline: Date.now() - 1, selected: [{ def: slow, value: '', config: null, section: { enabled: true } }] }),
    ).toThrow(/deadline/);
    expect(world.size).toBe(0);
  });

  test("'later' journals with the record's next write, and is undone like the rest", () => {
    const writes: string[][] = [];
    const later = (fail: boolean) =>
      pluginWith('later', (ctx) => {
        ctx.acquire({ kind: 'fake', name: 'later#0' }, () => world.add('later#0'), 'later');
        writes.push((readRecord(layout(), container.id)?.resources ?? []).map((r) => r.name as string));
        ctx.acquire({ kind: 'fake', name: 'later#1' }, () => world.add('later#1'));
        writes.push((readRecord(layout(), container.id)?.resources ?? []).map((r) => r.name as string));
        if (fail) throw new Error('later failed');
        return {};
      });
    const one = (def: ReturnType<typeof later>) => createContainer({ container, host, log: silentLog(), stage: 'createRuntime', deadline: Date.now() + 10000, selected: [{ def, value: '', config: null, section: { enabled: true } }] });
    expect(() => one(later(true))).toThrow(/later failed/);
    expect(writes).toEqual([[], ['later#0', 'later#1']]);
    expect(released).toEqual(['later#1', 'later#0']);
    expect(world.size).toBe(0);
    writes.length = 0;
    const rec = one(later(false));
    expect(rec.resources.map((r) => r.name)).toEqual(['later#0', 'later#1']);
    expect(readRecord(layout(), container.id)?.resources.map((r) => r.name)).toEqual(['later#0', 'later#1']);
  });
});
