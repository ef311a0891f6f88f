/* The shared policy-annotation loader (lib/host/annotation-json.ts) and the one policy-name rule. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../lib/errors';
import { loadPolicyAnnotation, parseAnnotationJson, PolicyAccess } from '../../lib/host/annotation-json';
import { NAME_RE } from '../../lib/host/policy-file';
import { validate } from '../../lib/schema';
import type { HostConfig } from '../../lib/host/config';

const dir = mkdtempSync(join(tmpdir(), 'tw-policy-annotation-'));
const host = { policyDir: join(dir, 'policies') } as HostConfig;
require('node:fs').mkdirSync(host.policyDir);
writeFileSync(join(host.policyDir, 'strict.json'), JSON.stringify({ default: 'deny' }));
writeFileSync(join(host.policyDir, 'fw.json'), JSON.stringify({ defaults: { ingress: 'drop' } }));
writeFileSync(join(host.policyDir, 'broken.json'), '{"default":');
writeFileSync(join(host.policyDir, 'wrong.json'), JSON.stringify({ default: 'maybe' }));
writeFileSync(join(dir, 'outside.json'), JSON.stringify({ default: 'allow' }));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const load = (value: string, section: PolicyAccess = {}) =>
  loadPolicyAnnotation(value, { host, section, schemaId: 'taskwire:sysctl-policy', what: 'policy' });

describe('parseAnnotationJson', () => {
  test('parses, or refuses with one line', () => {
    expect(parseAnnotationJson('{"a":1}')).toEqual({ a: 1 });
    expect(() => parseAnnotationJson('{')).toThrow(ConfigError);
    expect(() => parseAnnotationJson('{')).toThrow(/^is not valid JSON \(/);
  });
});

describe('loadPolicyAnnotation', () => {
  test('inline JSON and @NAME load and validate', () => {
    expect(load(' {"default":"allow"} ')).toEqual({ default: 'allow' });
    expect(load('@strict')).toEqual({ default: 'deny' });
    expect(load('@strict', { inline: false, policies: ['strict'] })).toEqual({ default: 'deny' });
  });
  test.each([
    ['{"default":"allow"}', { inline: false }, /^inline policy is not allowed on this host \(its "inline" is false\); name one with @NAME$/],
    ['@strict', { policies: ['other'] }, /^policy @strict is not among the host's allowed policies \(other\)$/],
    ['@strict', { policies: [] }, /allowed policies \(none\)/],
    ['@../outside', {}, /the name may have letters, digits/],
    ['@..', {}, /the name may have letters, digits/],
    ['@a/../../outside', {}, /the name may have letters, digits/],
    ['@/etc/passwd', {}, /the name may have letters, digits/],
    ['@.hidden', {}, /the name may have letters, digits/],
    ['@../outside', { policies: ['strict'] }, /not among the host's allowed policies/],
    ['@missing', {}, /missing\.json does not exist/],
    ['{"default":"allow"', {}, /^policy is not valid JSON \(/],
    ['@broken', {}, /^policy @broken: .*broken\.json is not valid JSON/],
    ['@wrong', {}, /^policy @wrong at \/default must be equal to one of the allowed values/],
    ['{"default":"allow","x":1}', {}, /^policy has unknown field "x"$/],
    ['allow', {}, /^is neither an inline JSON policy nor @NAME$/],
  ])('%s with %j is refused', (value, section, msg) => {
    expect(() => load(value, section as PolicyAccess)).toThrow(msg);
    expect(() => load(value, section as PolicyAccess)).toThrow(ConfigError);
  });
  test('a check function replaces schema validation', () => {
    const v = loadPolicyAnnotation('{"n":1}', { host, section: {}, schemaId: 'unused', what: 'thing', check: (raw, what) => ({ raw, what }) });
    expect(v).toEqual({ raw: { n: 1 }, what: 'thing' });
  });
});

describe('policy names: host schemas and NAME_RE agree', () => {
  const schemas = ['twfw', 'sysctl'].map((p) => ({
    id: `taskwire:${p}/host`,
    pattern: JSON.parse(readFileSync(join(__dirname, `../../plugins/${p}/host.schema.json`), 'utf8')).properties.policies.items.pattern as string,
  }));
  const samples = ['strict', 'a', 'A9', 'web-1', 'web_1', 'v1.2', 'a.b.c', 'x'.repeat(100), 'x'.repeat(101),
    '', '.', '..', '.hidden', '-x', '_x', 'a..b', '../x', 'a/b', 'a b', 'é', 'a\n', 'a$', '@a', 'x'.repeat(64), 'a.'];
  test.each(schemas)('$id uses the same pattern text', ({ pattern }) => expect(pattern).toBe(NAME_RE.source));
  test.each(schemas)('$id accepts and refuses the same sample names', ({ id }) => {
    for (const name of samples) {
      let schemaOk = true;
      try {
        validate(id, { enabled: true, policies: [name] }, 'host');
      } catch {
        schemaOk = false;
      }
      expect([name, schemaOk]).toEqual([name, NAME_RE.test(name)]);
    }
  });
});

describe('twfw and sysctl offer the same host controls', () => {
  const sysctl = require('../../plugins/sysctl').default;
  const { loadPolicy } = require('../../plugins/twfw/policy');
  test('inline: false and policies apply to both', () => {
    const sysctlParse = (v: string, s: PolicyAccess) => sysctl.parse(v, { host, section: { enabled: true, ...s }, id: 'c1' });
    for (const run of [(v: string, s: PolicyAccess) => sysctlParse(v, s), (v: string, s: PolicyAccess) => loadPolicy(v, host, s)]) {
      expect(() => run('{"default":"allow"}', { inline: false })).toThrow(/inline policy is not allowed/);
      expect(() => run('@strict', { policies: ['other'] })).toThrow(/not among the host's allowed policies/);
    }
    expect(sysctlParse('deny', { inline: false })).toMatchObject({ defaults: ['read-only', 'deny'] });
    expect(loadPolicy('@fw', host, { policies: ['fw'] }).source).toBe('@fw');
  });
});
