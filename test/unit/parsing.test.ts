import fc from 'fast-check';
import koffi from 'koffi';
import { decodeId, encodeId, validateContainerId } from '../../lib/state/paths';
import { SocketAddress, isIPv6 } from 'node:net';
import { parseCidr, parseIp, cidrContains, ipBytes, ipFromBytes, nthAddress } from '../../lib/net/addr';
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
  test.each(['1:2:3:4:5:6:7:8:9', '1::2::3', '01234::', ':1::', '1:', '1:2:3:4:5:6:7:1.2.3.4', '1::2:3:4:5:6:7:8', '1.2.3.4::', '::1.2.3', '00.1.2.3', '1.2.3.04'])('refuses %j (by hand: lib/net/addr.ts)', (a) => {
    expect(() => parseIp(a, 'x')).toThrow(/is not an IP address/);
  });
  test('RFC 5952 text: lowercase, longest zero run, the first of equal ones, no lone "::0"', () => {
    for (const [text, out] of [
      ['2001:DB8:0:0:8:800:200C:417A', '2001:db8::8:800:200c:417a'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:0db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['0:0:0:0:0:0:0:0', '::'],
      ['1:0:0:0:0:0:0:0', '1::'],
      ['::ffff:10.1.2.3', '::ffff:a01:203'],
      ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ])
      expect(parseIp(text, 'x').address).toBe(out);
  });
  test('bytes round-trip, and agree with the C library (inet_pton/inet_ntop through node:net)', () => {
    const words = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 });
    fc.assert(
      fc.property(words, (w) => {
        const b = new Uint8Array(w.flatMap((x) => [x >> 8, x & 0xff]));
        const text = ipFromBytes(b);
        expect(Buffer.from(ipBytes(text)).equals(Buffer.from(b))).toBe(true);
        expect(isIPv6(text)).toBe(true);
        // inet_ntop prints a dotted tail for ::a.b.c.d and ::ffff:a.b.c.d; elsewhere the texts match.
        const v4Tail = w.slice(0, 5).every((x) => x === 0) && (w[5] === 0xffff || (w[5] === 0 && w[6] !== 0));
        if (!v4Tail) expect(new SocketAddress({ address: text, family: 'ipv6' }).address).toBe(text);
        // Uppercase, zero-padded, uncompressed spellings mean the same address.
        const full = w.map((x) => x.toString(16).toUpperCase().padStart(4, '0')).join(':');
        expect(parseIp(full, 'x').address).toBe(text);
      }),
      { numRuns: 2000 },
    );
  });
  test('accepts exactly what glibc inet_pton accepts, with the same bytes, on text built to be close to valid', () => {
    const inetPton = koffi.load('libc.so.6').func('int inet_pton(int af, const char *src, _Out_ uint8_t *dst)');
    const byLibc = (text: string): Buffer | null => {
      for (const af of [2 /* AF_INET */, 10 /* AF_INET6 */]) {
        const dst = Buffer.alloc(af === 2 ? 4 : 16);
        if (inetPton(af, text, dst) === 1) return dst;
      }
      return null;
    };
    const byUs = (text: string): Buffer | null => {
      try {
        return Buffer.from(ipBytes(text));
      } catch {
        return null;
      }
    };
    const group = fc.oneof(
      fc.stringMatching(/^[0-9a-fA-F]{0,5}$/),
      fc.constantFrom('', '0', '00', '255', '256', '01', '1.2.3.4', '1.2.3', '10.0.0.01', '1.2.3.4.5', '1%eth0', ' 1', 'g'),
    );
    const text = fc.oneof(
      fc.array(group, { maxLength: 10 }).map((g) => g.join(':')),
      fc.tuple(fc.array(group, { maxLength: 5 }), fc.array(group, { maxLength: 5 })).map(([a, b]) => `${a.join(':')}::${b.join(':')}`),
      fc.stringMatching(/^[0-9a-f:.% ]{0,16}$/),
      fc.array(fc.constantFrom('0', '1', '25', '255', '256', '01', '300', ''), { maxLength: 6 }).map((p) => p.join('.')),
    );
    fc.assert(
      fc.property(text, (t) => {
        const [ours, theirs] = [byUs(t), byLibc(t)];
        return ours === null ? theirs === null : theirs !== null && ours.equals(theirs);
      }),
      { numRuns: 20000 },
    );
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
