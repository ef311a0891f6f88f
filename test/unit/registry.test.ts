/* The plugin registry as a whole: order respects requires, every plugin is complete (host
 * schema compiled, README, annotation key), and every plugin folder is registered. */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { registry } from '../../plugins/index';
import { validator } from '../../lib/generated/validators';

const pluginsDir = join(__dirname, '..', '..', 'plugins');

describe('plugin registry', () => {
  const defs = registry.map((e) => ({ entry: e, def: e.load() }));

  test('every plugin folder is registered, once, under its folder name', () => {
    const folders = readdirSync(pluginsDir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
    expect(registry.map((e) => e.name).sort()).toEqual(folders);
    expect(new Set(registry.map((e) => e.name)).size).toBe(registry.length);
  });

  test.each(registry.map((e) => e.name))('%s: declaration matches its entry and is complete', (name) => {
    const { def } = defs.find((d) => d.entry.name === name)!;
    expect(def.name).toBe(name);
    expect(def.annotation).toBe(`io.taskwire.${name}`);
    expect(validator(def.hostSchema)).toBeDefined();
    expect(existsSync(join(pluginsDir, name, 'README.md'))).toBe(true);
  });

  test('a plugin comes after every plugin it requires', () => {
    defs.forEach(({ def }, i) => {
      for (const r of def.requires ?? []) {
        const j = defs.findIndex((d) => d.def.name === r);
        expect(j).toBeGreaterThanOrEqual(0);
        expect(j).toBeLessThan(i);
      }
    });
  });
});
