import fc from 'fast-check';
import { decodeId, encodeId, validateContainerId } from '../../lib/state/paths';
import { parseCidr, parseIp, cidrContains, nthAddress } from '../../lib/net/addr';
import { parseState } from '../../lib/oci';
import { selectPlugins } from '../../lib/pipeline';
import type { HostConfig } from '../../lib/host/config';
import iptPlugin from '../../plugins/ip-per-task';
import { validate } from '../../lib/schema';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const example = JSON.parse(readFileSync(join(__dirname, '../../oci-config/config.example.json'), 'utf8'));
const host: HostConfig = { path: '/etc/taskwire/config.json', logFile: '', logLevel: 'silent', hookTimeoutMs: 8000, ...example };

describe('container ids', () => {
  test.each(['abc', 'a.b.c', 'ctr_1+x-y', 'k8s:pod.1', 'A'.repeat(200)])('accepts %s and round-trips', (id) => {
    expect(decodeId(encodeId(id))).toBe(id);
    expect(encodeId(id)).not.toContain('.');
  });
  test.each(['', '.', '..', '../x', 'a/b', '.hidden', 'a b', 'a\0b', 'A'.repeat(201), '-x'])('refuses %j', (id) => {
    expect(() => validateContainerId(id)).toThrow(/not valid/);
  });
  test('encoding is injective and dot-free for every valid id', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.+:-]{0,40}$/), (id) => {
        const e = encodeId(id);
        return decodeId(e) === id && !e.includes('.') && !e.includes('/');
      }),
    );
  });
});

describe('addresses', () => {
  test.each(['0177.0.0.1', '127.1', '1.2.3', '1.2.3.4.5', '256.1.1.1', ' 1.2.3.4', 'fe80::1%eth0', '::ffff:127.1', 'zz::1', ''])('refuses %j', (a) => {
    expect(() => parseIp(a, 'x')).toThrow(/is not an IP address/);
  });
  test('accepts and normalises', () => {
    expect(parseIp('FD00:7A5C:0:0::1', 'x')).toEqual({ family: 6, address: 'fd00:7a5c::1' });
    expect(parseIp('10.123.0.1', 'x', 4)).toEqual({ family: 4, address: '10.123.0.1' });
  });
  test('prefixes', () => {
    expect(() => parseCidr('10.0.0.0/33', 'x')).toThrow(/prefix length over 32/);
    const c = parseCidr('fd00:7a5c::/48', 'x');
    expect(cidrContains(c, 'fd00:7a5c:0:1::5')).toBe(true);
    expect(cidrContains(c, 'fd00:7a5c:1::5')).toBe(false);
    expect(cidrContains(c, '10.1.1.1')).toBe(false);
    expect(nthAddress(parseCidr('10.123.1.0/24', 'x'), 5n)).toBe('10.123.1.5');
  });
});

describe('OCI state', () => {
  test('tolerates extra fields and no trailing newline; requires id and bundle', () => {
    expect(parseState('{"ociVersion":"1.0","id":"x","status":"created","bundle":"/b","root":"/r","pid":0}').id).toBe('x');
    expect(() => parseState('{"id":"x"}')).toThrow(/bundle/);
    expect(() => parseState('not json')).toThrow(/not JSON/);
    expect(() => parseState('{"id":"x","bundle":"/b","annotations":{"a":1}}')).toThrow(/annotations/);
  });
});

describe('host config schema', () => {
  test('the example validates', () => {
    expect(() => validate('taskwire:host-config', JSON.parse(JSON.stringify(example)), 'example')).not.toThrow();
  });
  test('unknown fields are named', () => {
    expect(() => validate('taskwire:host-config', { bpffs: '/x', bogus: 1 }, 'cfg')).toThrow('cfg has unknown field "bogus"');
  });
});

describe('plugin selection', () => {
  test('no taskwire annotations selects nothing', () => {
    expect(selectPlugins({ 'org.other': 'x' }, host, 'c')).toEqual([]);
  });
  test('unknown io.taskwire.* annotation is refused', () => {
    expect(() => selectPlugins({ 'io.taskwire.nope': '1' }, host, 'c')).toThrow(/io.taskwire.nope: no such taskwire plugin/);
  });
  test('a plugin the host has not enabled is refused', () => {
    const h = { ...host, plugins: { 'ip-per-task': { enabled: false } } };
    expect(() => selectPlugins({ 'io.taskwire.ip-per-task': 'auto' }, h, 'c')).toThrow(/not enabled on this host/);
  });
});

describe('ip-per-task annotation', () => {
  const section = example.plugins['ip-per-task'];
  const parse = (v: string) => iptPlugin.parse(v, { host, section, id: 'c' });
  test.each([
    ['auto', { ip6: 'auto', ip4: 'auto' }],
    ['fd00:7a5c::10', { ip6: 'fd00:7a5c::10' }],
    ['{"ip4":"10.123.9.9"}', { ip4: '10.123.9.9' }],
    ['{"ip6":"auto","ip4":"10.123.0.7"}', { ip6: 'auto', ip4: '10.123.0.7' }],
  ])('%s', (v, want) => expect(parse(v)).toEqual(want));
  test.each([
    ['2001:db8::1', /outside the host's allowed prefixes/],
    ['{"ip4":"192.168.1.1"}', /outside/],
    ['{"ip6":1}', /must be string/],
    ['{}', /must NOT have fewer than 1 properties/],
    ['{', /not valid JSON/],
    ['10.123.0.1', /not an IPv6 address/],
  ])('refuses %s', (v, msg) => expect(() => parse(v)).toThrow(msg));
});

describe('host applyToAll', () => {
  const withDefault = (applyToAll: string | undefined, enabled = true): HostConfig => ({ ...host, plugins: { ...host.plugins, 'ip-per-task': { ...host.plugins['ip-per-task'], enabled, applyToAll } } });
  test('a container without the annotation gets the host value', () => {
    const sel = selectPlugins({}, withDefault('auto'), 'c');
    expect(sel.map((s) => [s.def.name, s.value])).toEqual([['ip-per-task', 'auto']]);
  });
  test('the container annotation wins over the host value', () => {
    expect(selectPlugins({ 'io.taskwire.ip-per-task': 'fd00:7a5c::9' }, withDefault('auto'), 'c')[0].value).toBe('fd00:7a5c::9');
  });
  test('a disabled plugin is not applied to anyone', () => {
    expect(selectPlugins({}, withDefault('auto', false), 'c')).toEqual([]);
  });
});
