/*
 * The CLI without privilege: hooks.d templates against the oci-hooks schema, the install plan
 * and its order and idempotence on a fake checkout, formatting, per-CPU sums, exit codes.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyInstall, planInstall, PREFIX_MARKER, renderTemplate, runtimeTimeoutSec, TEMPLATE_DIR, templateNames, uninstall } from '../../lib/install';
import { validate } from '../../lib/schema';
import { sumDecoded } from '../../lib/map-decode';
import { bytes, flat, nanos } from '../../cli/format';
import { programStats } from '../../cli/commands/stats';
import { main } from '../../cli/taskwire';

const ROOT = join(__dirname, '..', '..');
const vars = { node: '/usr/bin/node', hook: '/opt/taskwire/dist/taskwire-hook.js', config: '/etc/taskwire/config.json' };

describe('hooks.d templates', () => {
  const names = templateNames(ROOT);

  test('one file per stage: createRuntime and poststop', () => {
    expect(names).toEqual(['taskwire-createruntime.json', 'taskwire-poststop.json']);
  });

  test.each(names)('%s, rendered, is a valid oci-hooks 1.0.0 file with an anchored regex and --config', (name) => {
    const raw = JSON.parse(readFileSync(join(TEMPLATE_DIR(ROOT), name), 'utf8'));
    const j = validate<any>('taskwire:oci-hooks', renderTemplate(raw, vars, 10), name);
    expect(j.hook.path).toBe('/usr/bin/node');
    expect(j.hook.args).toEqual(['node', vars.hook, j.stages[0], '--config', vars.config]);
    const [[keyRe, valueRe]] = Object.entries(j.when.annotations) as [string, string][];
    expect(keyRe).toBe('^io\\.taskwire\\..*$');
    const re = new RegExp(keyRe);
    expect(re.test('io.taskwire.ip-per-task')).toBe(true);
    expect(re.test('xio.taskwire.x')).toBe(false);
    expect(re.test('io_taskwire_x')).toBe(false);
    expect(new RegExp(valueRe).test('')).toBe(true);
    expect(j.hook.env).toEqual(['PATH=/usr/sbin:/usr/bin:/sbin:/bin']);
  });

  test('an unknown placeholder is refused by name', () => {
    expect(() => renderTemplate({ hook: { path: '{{nodee}}' } }, vars, 10)).toThrow('hooks.d template: unknown placeholder {{nodee}}');
  });

  test('the runtime timeout comes after the hook deadline', () => {
    expect(runtimeTimeoutSec(8000)).toBe(10);
    expect(runtimeTimeoutSec(8001)).toBe(11);
  });
});

describe('the oci-hooks schema refuses what podman refuses', () => {
  const good = () => renderTemplate(JSON.parse(readFileSync(join(TEMPLATE_DIR(ROOT), 'taskwire-poststop.json'), 'utf8')), vars, 10) as any;
  test.each([
    ['version 1.0.1', (j: any) => (j.version = '1.0.1'), /version must be equal to constant/],
    ['a relative path', (j: any) => (j.hook.path = 'node'), /\/hook\/path must match pattern/],
    ['an empty when (never matches)', (j: any) => (j.when = {}), /\/when must NOT have fewer than 1 properties/],
    ['an unknown stage', (j: any) => (j.stages = ['poststart', 'stop']), /\/stages\/1 must be equal to one of the allowed values/],
    ['timeout 0', (j: any) => (j.hook.timeout = 0), /\/hook\/timeout must be >= 1/],
    ['an unknown field', (j: any) => (j.hook.cwd = '/'), /has unknown field "cwd"/],
  ])('%s', (_n, patch, msg) => {
    const j = good();
    patch(j);
    expect(() => validate('taskwire:oci-hooks', j, 'hooks.d file')).toThrow(msg);
  });
});

describe('install and uninstall on a fake checkout', () => {
  let dir: string;
  let source: string;
  let node: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tw-unit-install-'));
    source = join(dir, 'src');
    const files: Record<string, string> = {
      'package.json': '{}',
      'dist/taskwire-hook.js': '//hook',
      'dist/taskwire-hook-main.js': '//main',
      'dist/taskwire.js': '//cli',
      'dist/.cache/x': 'cache',
      'build/bpf/a.bpf.o': 'elf',
      'node_modules/koffi/package.json': '{}',
      'node_modules/koffi/index.js': '',
      'node_modules/koffi/src/big.cc': '',
      [`node_modules/koffi/build/koffi/linux_${process.arch}/koffi.node`]: 'so',
      'node_modules/koffi/build/koffi/win32_x64/koffi.node': 'dll',
      'node_modules/koffi/build/koffi/darwin_arm64/koffi.node': 'dylib',
    };
    for (const name of templateNames(ROOT)) files[`oci-config/hooks.d/${name}`] = readFileSync(join(TEMPLATE_DIR(ROOT), name), 'utf8');
    for (const [rel, content] of Object.entries(files)) {
      mkdirSync(join(source, rel, '..'), { recursive: true });
      writeFileSync(join(source, rel), content);
    }
    node = join(dir, 'node');
    writeFileSync(node, 'ELF node');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const opts = (o: object = {}) => ({ hooksDir: join(dir, 'hooks.d'), source, node, configPath: '/etc/taskwire/config.json', hookTimeoutMs: 8000, ...o });

  test('without --prefix the hooks name the checkout and nothing is copied', () => {
    const plan = planInstall(opts());
    expect(plan.copies).toEqual([]);
    expect(plan.hook).toBe(join(source, 'dist', 'taskwire-hook.js'));
    expect(plan.hooks.map((h) => (h.json as any).hook.path)).toEqual([node, node]);
  });

  test('with --prefix: node first, then what the hook needs; only this platform of koffi; no compile cache', () => {
    const prefix = join(dir, 'opt');
    const plan = planInstall(opts({ prefix }));
    const rels = plan.copies.map((c) => c.to.slice(prefix.length + 1));
    expect(rels[0]).toBe('bin/node');
    expect(rels).toEqual(expect.arrayContaining(['package.json', 'dist/taskwire-hook.js', 'dist/taskwire-hook-main.js', 'build/bpf/a.bpf.o', `node_modules/koffi/build/koffi/linux_${process.arch}/koffi.node`]));
    expect(rels.filter((r) => /win32|darwin|\.cache|src\//.test(r))).toEqual([]);
    expect((plan.hooks[0].json as any).hook.path).toBe(join(prefix, 'bin', 'node'));
  });

  test('install twice changes nothing the second time; uninstall removes JSON, then the prefix', () => {
    const prefix = join(dir, 'opt');
    const first = applyInstall(planInstall(opts({ prefix })));
    expect(first.copied).toBeGreaterThan(5);
    const jsonMtime = statSync(first.hooks[0]).mtimeMs;
    const second = applyInstall(planInstall(opts({ prefix })));
    expect(second).toMatchObject({ copied: 0, unchanged: first.copied });
    expect(JSON.parse(readFileSync(first.hooks[0], 'utf8'))).toEqual(JSON.parse(readFileSync(second.hooks[0], 'utf8')));
    expect(statSync(first.hooks[0]).mtimeMs).toBeGreaterThanOrEqual(jsonMtime);
    expect(readdirSync(join(dir, 'hooks.d')).sort()).toEqual(['taskwire-createruntime.json', 'taskwire-poststop.json']);

    const u = uninstall(join(dir, 'hooks.d'), source, prefix);
    expect(u.removedHooks).toHaveLength(2);
    expect(u.removedPrefix).toBe(prefix);
    expect(existsSync(prefix)).toBe(false);
    expect(uninstall(join(dir, 'hooks.d'), source, prefix)).toEqual({ removedHooks: [], removedPrefix: null });
  });

  test('uninstall never removes a prefix it did not make, and leaves the hooks removed first', () => {
    const other = join(dir, 'precious');
    mkdirSync(other);
    applyInstall(planInstall(opts()));
    expect(() => uninstall(join(dir, 'hooks.d'), source, other)).toThrow(`--prefix ${other} was not made by taskwire install (no ${PREFIX_MARKER}); not removing it`);
    expect(existsSync(other)).toBe(true);
    expect(readdirSync(join(dir, 'hooks.d'))).toEqual([]);
  });

  test('bad paths are one-line errors naming the option', () => {
    expect(() => planInstall(opts({ hooksDir: 'hooks.d' }))).toThrow('--hooks-dir must be an absolute path, got "hooks.d"');
    expect(() => planInstall(opts({ prefix: 'opt' }))).toThrow('--prefix must be an absolute path, got "opt"');
    rmSync(join(source, 'dist'), { recursive: true });
    expect(() => planInstall(opts())).toThrow(/hook bundle .*taskwire-hook\.js does not exist \(run make all in the checkout\)/);
  });
});

describe('formatting and sums', () => {
  test('flat values', () => {
    expect(flat({ addr: 'fd00::1', port: 80, inner: { a: 1 }, list: [1, 2] })).toBe('addr=fd00::1 port=80 inner={a=1} list=[1,2]');
    expect(flat(null)).toBe('-');
  });
  test('sizes and durations', () => {
    expect([bytes(512), bytes(1536), bytes(3 * 1024 * 1024)]).toEqual(['512 B', '1.5 KiB', '3.0 MiB']);
    expect([nanos(999), nanos(1500), nanos(2_500_000), nanos(3e9)]).toEqual(['999 ns', '1.5 µs', '2.5 ms', '3.00 s']);
  });
  test('per-CPU values are summed field by field; text keeps the first', () => {
    expect(sumDecoded([{ pkts: 1, bytes: 10, addr: 'fd00::1' }, { pkts: 2, bytes: 20, addr: 'fd00::1' }])).toEqual({ pkts: 3, bytes: 30, addr: 'fd00::1' });
    expect(sumDecoded([[1, 2], [3, 4]])).toEqual([4, 6]);
    expect(sumDecoded([2n ** 62n, 2n ** 62n])).toBe(2n ** 63n);
  });
  test('stats over a window are differences per program id', () => {
    const prog = (runCnt: bigint, runTimeNs: bigint) => ({ id: 7, name: 'p', type: 'cgroup_skb', tag: '', jitedBytes: 100, xlatedBytes: 0, runCnt, runTimeNs, verifiedInsns: 0, mapIds: [], memlock: 4096 });
    const cost = (runs: bigint, ns: bigint) => [{ id: 'c', programs: [{ plugin: 'x', program: 'tw_x_prog', pin: 'x/link_tw_x_prog', attached: true, target: 'cgroup:1', prog: prog(runs, ns) }], maps: [], programBytes: 0, mapBytes: 0 }];
    expect(programStats(cost(15n, 1500n), cost(5n, 500n))[0]).toMatchObject({ program: 'tw_x_prog', runs: 10, runTimeNs: 1000, avgNs: 100 });
    expect(programStats(cost(0n, 0n))[0].avgNs).toBeNull();
  });
});

describe('exit codes', () => {
  const quiet = async (argv: string[]) => {
    const so = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const se = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      return await main(argv);
    } finally {
      so.mockRestore();
      se.mockRestore();
    }
  };
  test('0 for help, 2 for usage errors', async () => {
    expect(await quiet(['--help'])).toBe(0);
    expect(await quiet(['inspect', '--help'])).toBe(0);
    expect(await quiet(['no-such-command'])).toBe(2);
    expect(await quiet(['inspect'])).toBe(2);
    expect(await quiet(['stats', '--sample', 'soon'])).toBe(2);
    expect(await quiet(['inspect', 'x', '--limit', '0'])).toBe(2);
  });
  test('1 for a failure, with one line', async () => {
    let err = '';
    const se = jest.spyOn(process.stderr, 'write').mockImplementation((s: any) => ((err += String(s)), true));
    try {
      expect(await main(['--config', '/nonexistent/config.json', 'ls'])).toBe(1);
    } finally {
      se.mockRestore();
    }
    expect(err).toBe('taskwire: host config /nonexistent/config.json: not found\n');
  });
});
