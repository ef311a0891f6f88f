/* The sysctl policy compiler, names, plan and annotation parsing: no kernel needed. */
import fc from 'fast-check';
import { matches, parseName, toDots, toSlashes } from '../../plugins/sysctl/names';
import { bundleRules, bundleSysctls, compilePolicy, evaluate, PolicySpec, writtenInteger } from '../../plugins/sysctl/policy';
import { makePlan } from '../../plugins/sysctl/plan';
import { MAX_PATTERNS, PAT, SLOT_BUNDLE, sysctlPattern, VAL, WRITE } from '../../plugins/sysctl/codec';
import plugin from '../../plugins/sysctl';
import type { HostConfig } from '../../lib/host/config';

const host = { policyDir: '/nonexistent' } as HostConfig;
const parse = (value: string, section: Record<string, unknown> = {}) => plugin.parse(value, { host, section: { enabled: true, ...section }, id: 'c1' });
const slot = (p: PolicySpec) => compilePolicy(p, 'policy');
const can = (p: PolicySpec | ReturnType<typeof slot>[], name: string, write = false, value = '') =>
  evaluate(Array.isArray(p) ? p : [slot(p)], new Map(), { name: toSlashes(name), write, value }).allowed;

describe('names', () => {
  test('dots and slashes are one spelling; a name with a slash keeps its dots', () => {
    expect(toSlashes('net.ipv4.tcp_mem')).toBe('net/ipv4/tcp_mem');
    expect(toSlashes('net/ipv4/conf/eth0.100/forwarding')).toBe('net/ipv4/conf/eth0.100/forwarding');
    expect(toDots('net/ipv4/conf/eth0.100/forwarding')).toBe('net/ipv4/conf/eth0.100/forwarding');
    expect(toDots('net/ipv4/tcp_mem')).toBe('net.ipv4.tcp_mem');
  });

  test('* stays inside one component, ** crosses components', () => {
    const star = parseName('net.ipv4.conf.*.forwarding', 'r');
    expect(star).toEqual({ kind: 'star', prefix: 'net/ipv4/conf/', suffix: '/forwarding', seps: 4 });
    expect(matches(star, 'net/ipv4/conf/lo/forwarding')).toBe(true);
    expect(matches(star, 'net/ipv4/conf/a/b/forwarding')).toBe(false);
    const tcp = parseName('net.ipv4.tcp_*', 'r');
    expect(matches(tcp, 'net/ipv4/tcp_mem')).toBe(true);
    expect(matches(tcp, 'net/ipv4/tcp_x/y')).toBe(false);
    const tree = parseName('net/ipv4/**', 'r');
    expect(matches(tree, 'net/ipv4/conf/lo/forwarding')).toBe(true);
    expect(matches(tree, 'net/ipv6/conf/lo/forwarding')).toBe(false);
  });

  test.each([
    ['', /is empty/],
    ['net.ipv4.', /ends with a separator; write "net.ipv4.\*\*"/],
    ['/proc/sys/net', /starts with a separator/],
    ['net.*.conf.*', /more than one wildcard/],
    ['net.***', /\*\*\*/],
    ['net..x', /empty/],
    ['a b', /whitespace/],
    ['x'.repeat(128), /longer than 127 bytes/],
    [`${'x'.repeat(64)}*`, /more than 63 bytes before its wildcard/],
  ])('name %j is refused', (name, msg) => {
    expect(() => parseName(name, 'rule 1')).toThrow(msg);
  });

  test('a star pattern matches exactly the names with its literals and no extra separator (property)', () => {
    const comp = fc.stringMatching(/^[a-z_]{1,6}$/);
    fc.assert(
      fc.property(fc.array(comp, { minLength: 1, maxLength: 5 }), fc.nat(4), (parts, k) => {
        const i = k % parts.length;
        const pattern = parts.map((p, j) => (j === i ? '*' : p)).join('/');
        const m = parseName(pattern, 'p');
        expect(matches(m, parts.join('/'))).toBe(true);
        expect(matches(m, [...parts.slice(0, i), 'x/y', ...parts.slice(i + 1)].join('/'))).toBe(false);
      }),
    );
  });
});

describe('policy precedence and values', () => {
  const p: PolicySpec = {
    default: 'read-only',
    rules: [
      { name: 'net.**', access: 'deny' },
      { name: 'net.ipv4.tcp_*', access: 'allow' },
      { name: 'net.ipv4.tcp_mem', access: 'read-only' },
      { name: 'net.ipv4.conf.*.rp_filter', access: 'allow', values: [0, 2] },
    ],
  };
  test('exact beats the longest pattern, which beats shorter ones, which beat the default', () => {
    expect(can(p, 'net.ipv4.tcp_mem')).toBe(true);
    expect(can(p, 'net.ipv4.tcp_mem', true, '1 2 3')).toBe(false);
    expect(can(p, 'net.ipv4.tcp_rmem', true, '1 2 3')).toBe(true);
    expect(can(p, 'net.core.somaxconn')).toBe(false);
    expect(can(p, 'kernel.ostype')).toBe(true);
    expect(can(p, 'kernel.ostype', true, 'x')).toBe(false);
    expect(can(p, 'net.ipv4.conf.lo.rp_filter', true, '2\n')).toBe(true);
    expect(can(p, 'net.ipv4.conf.lo.rp_filter', true, '1')).toBe(false);
  });

  test('patterns are ordered most specific first, * before ** on a tie, then as written', () => {
    const s = slot({ default: 'allow', rules: [{ name: 'a.**', access: 'deny' }, { name: 'a.*', access: 'read-only' }, { name: 'a.b*c', access: 'allow' }] });
    expect(s.patterns.map((x) => x.rule.source)).toEqual(['rule 3', 'rule 2', 'rule 1']);
  });

  test('the kernel reading of integers: base 0, one integer, trailing whitespace', () => {
    expect([' 12', '-3', '0x1f', '010', '0'].map(writtenInteger)).toEqual([12n, -3n, 31n, 8n, 0n]);
    expect(['08', '1 2', '+5', 'abc', '', '99999999999999999999'].map(writtenInteger)).toEqual([undefined, undefined, undefined, undefined, undefined, undefined]);
    const r = slot({ default: 'deny', rules: [{ name: 'x', access: 'write-only', values: [{ min: 10, max: 20 }, 'on'] }] });
    expect(['15', '0xa', '  20\n', 'on\n', 'on ', '21', 'on2', '9'].map((v) => can([r], 'x', true, v))).toEqual([true, true, true, true, true, false, false, false]);
    expect(can([r], 'x')).toBe(false);
  });

  test('two slots (tighten): an access passes only when both allow', () => {
    const hostSlot = slot({ default: 'allow', rules: [{ name: 'a', access: 'read-only' }] });
    const own = slot({ default: 'allow', rules: [{ name: 'b', access: 'deny' }, { name: 'a', access: 'allow' }] });
    expect(can([hostSlot, own], 'a', true, '1')).toBe(false);
    expect(can([hostSlot, own], 'b')).toBe(false);
    expect(can([hostSlot, own], 'c', true, '1')).toBe(true);
  });

  test('bundle sysctls pass exactly their value, writes only', () => {
    const s = [slot({ default: 'deny' })];
    const b = bundleRules(bundleSysctls({ 'net.ipv4.ip_unprivileged_port_start': '1000', 'net/ipv4/ping_group_range': '0 10\n' }));
    const at = (name: string, write: boolean, value = '') => evaluate(s, b, { name, write, value }).allowed;
    expect(at('net/ipv4/ip_unprivileged_port_start', true, '1000')).toBe(true);
    expect(at('net/ipv4/ip_unprivileged_port_start', true, '999')).toBe(false);
    expect(at('net/ipv4/ip_unprivileged_port_start', false)).toBe(false);
    expect(at('net/ipv4/ping_group_range', true, '0 10')).toBe(true);
    expect(() => bundleSysctls({ 'net.*': '1' })).toThrow(/not a sysctl name/);
    expect(() => bundleSysctls({ 'a.b': 1 })).toThrow(/is not a string/);
  });

  test.each([
    [{ default: 'allow', rules: [{ name: 'a', access: 'read-only', values: [1] }] }, /rule 1: values are only meaningful when writes are allowed/],
    [{ default: 'allow', rules: [{ name: 'a', access: 'allow' }, { name: ['b', 'a'], access: 'deny' }] }, /rule 2: a is already named by rule 1/],
    [{ default: 'allow', rules: [{ name: 'a', access: 'allow', values: [{ min: 5, max: 1 }] }] }, /rule 1: range min 5 is above max 1/],
    [{ default: 'allow', rules: [{ name: 'a', access: 'allow', values: ['x'.repeat(64)] }] }, /rule 1: value .* longer than 63 bytes/],
    [{ default: 'allow', rules: Array.from({ length: 33 }, (_, i) => ({ name: `p${i}.*`, access: 'deny' })) }, /33 wildcard names, at most 32/],
  ])('bad policy %#: one clear line naming the rule', (p, msg) => {
    expect(() => slot(p as PolicySpec)).toThrow(msg);
  });
});

describe('plan', () => {
  test('maps hold exact names per slot, patterns at slot * 32 + i, values shared', () => {
    const a = slot({ default: 'read-only', rules: [{ name: 'kernel.ostype', access: 'deny' }, { name: 'net.*', access: 'allow', values: [1, 'x'] }] });
    const b = slot({ default: 'allow', rules: [{ name: 'vm.**', access: 'deny' }] });
    const plan = makePlan([a, b], bundleRules(new Map([['k/x', '5']])), true);
    expect(plan.config).toEqual({
      defaults: [{ read: 1, write: WRITE.deny, nvalues: 0, pad: 0, first_value: 0, pad2: 0 }, { read: 1, write: WRITE.any, nvalues: 0, pad: 0, first_value: 0, pad2: 0 }],
      nslots: 2,
      flags: 3,
    });
    expect(plan.exact.map((e) => [e.slot, e.name])).toEqual([[0, 'kernel/ostype'], [SLOT_BUNDLE, 'k/x']]);
    expect(plan.patterns.map((p) => [p.index, p.pattern.kind, p.pattern.prefix, p.pattern.rule.write])).toEqual([
      [0, PAT.star, 'net/', WRITE.values],
      [MAX_PATTERNS, PAT.globstar, 'vm/', WRITE.deny],
    ]);
    expect(plan.values.map((v) => [v.kind, v.lo, v.str])).toEqual([[VAL.range, 1n, ''], [VAL.string, 0n, 'x'], [VAL.string, 0n, '5']]);
    expect(sysctlPattern.decode(sysctlPattern.encode(plan.patterns[0].pattern))).toEqual(plan.patterns[0].pattern);
  });
});

describe('annotation io.taskwire.sysctl', () => {
  test('"default" is the host policy; without one the host default is read-only', () => {
    expect(parse('default')).toMatchObject({ sources: ['host'], defaults: ['read-only'] });
    expect(parse('default', { policy: { default: 'deny' } })).toMatchObject({ defaults: ['deny'] });
  });
  test('tighten (the default) stacks the annotation on the host policy; replace swaps it', () => {
    expect(parse('allow')).toMatchObject({ sources: ['host', 'annotation'], defaults: ['read-only', 'allow'] });
    expect(parse('{"default":"deny","events":true}', { annotations: 'replace' })).toMatchObject({ sources: ['annotation'], defaults: ['deny'], events: true });
  });
  test.each([
    ['allow', { annotations: 'forbid' }, /accepts only "default" here/],
    ['permissive', {}, /must be "default", "allow", "read-only", "deny", a JSON policy or @NAME/],
    ['{"default":"allow"', {}, /is not valid JSON/],
    ['{"default":"allow","rules":[{"name":"a","access":"maybe"}]}', {}, /policy at \/rules\/0\/access must be equal to one of the allowed values/],
    ['{"default":"allow","rulez":[]}', {}, /policy has unknown field "rulez"/],
    ['{"default":"allow","rules":[{"name":"a.*.b.*","access":"deny"}]}', {}, /policy rule 1: name "a\.\*\.b\.\*" has more than one wildcard/],
    ['@../etc/passwd', {}, /the name may have letters, digits/],
    ['@missing', {}, /\/nonexistent\/missing.json does not exist/],
  ])('%s is refused with a clear message', (value, section, msg) => {
    expect(() => parse(value, section)).toThrow(msg);
  });
});
