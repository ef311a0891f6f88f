/*
 * twfw's policy language and compiler without a kernel. The property test is the important one:
 * for random policies and packets, a JavaScript model of the kernel lookups over the compiled
 * maps (longest-prefix matches, candidates in order) gives the same verdict as the plain
 * definition "the first rule that matches decides, else the default".
 */
import fc from 'fast-check';
import { ConfigError } from '../../lib/errors';
import { AKEY_SIZE, CANDS_SIZE, compilePolicy, CompiledPolicy, PKEY_SIZE, portBlocks, RULE_SIZE } from '../../plugins/twfw/compile';
import { normalizePolicy, NRule, parsePrefix, PolicySpec, RuleSpec, validatePolicy, maskBits } from '../../plugins/twfw/policy';
import { faultRules } from '../../plugins/twfw/ops';
import { parseEndpoint } from '../../plugins/twfw/sets';
import { SLOT_RULE0 } from '../../plugins/twfw/codec';

const LIMITS = { maxRules: 1000, maxPrefixes: 10000, maxEntries: 100000 };

function refused(spec: unknown, limits = LIMITS): string {
  try {
    compilePolicy(normalizePolicy(validatePolicy(spec, 'policy')), limits);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('policy was accepted');
}

describe('bad policies are refused with a message naming the rule', () => {
  const r = (extra: Record<string, unknown>) => ({ rules: [{ direction: 'egress', action: 'pass' }, { name: 'x', direction: 'egress', action: 'drop', ...extra }] });
  test.each([
    ['unknown field', r({ colour: 'red' }), /rule 1 \(x\).*unknown field "colour"/],
    ['port 70000', r({ proto: 'tcp', ports: [70000] }), /rule 1 \(x\) field ports\/0/],
    ['port range over 65535', r({ proto: 'tcp', ports: ['1-70000'] }), /rule 1 \(x\): port 1-70000 is over 65535/],
    ['empty range', r({ proto: 'udp', ports: ['90-80'] }), /rule 1 \(x\): port range 90-80 is empty/],
    ['ports without tcp/udp', r({ ports: [80] }), /rule 1 \(x\): ports need proto tcp or udp/],
    ['bad prefix', r({ remote: ['10.0.0.300/8'] }), /rule 1 \(x\) remote: "10.0.0.300" is not an IP address/],
    ['legacy IPv4 form', r({ remote: ['0177.0.0.1'] }), /rule 1 \(x\) remote/],
    ['prefix length', r({ remote: ['10.0.0.0/33'] }), /rule 1 \(x\) remote: .* over 32/],
    ['host bits', r({ remote: ['10.0.0.1/8'] }), /rule 1 \(x\) remote: .*host bits set \(did you mean 10.0.0.0\/8\?\)/],
    ['empty remote list', r({ remote: [] }), /rule 1 \(x\) field remote/],
    ['flags without tcp', r({ tcpFlags: 'syn' }), /rule 1 \(x\): tcpFlags need proto tcp/],
    ['probability on pass', { rules: [{ name: 'p', direction: 'egress', action: 'pass', probability: 0.5 }] }, /rule 0 \(p\): probability is for drop rules only/],
    ['set and remote', r({ set: 'db', remote: ['::/0'] }), /rule 1 \(x\): give either remote or set/],
    ['bad direction', r({ direction: 'sideways' }), /rule 1 \(x\) field direction must be equal to one of/],
  ])('%s', (_what, spec, re) => {
    expect(refused(spec)).toMatch(re);
  });

  test('too many rules for the host names the first one over', () => {
    const rules = Array.from({ length: 11 }, (_, i) => ({ direction: 'egress', action: 'drop', remote: [`10.0.${i}.0/24`] }));
    expect(refused({ rules }, { ...LIMITS, maxRules: 10 })).toBe('rule 10: over the host\'s limit of 10 rules');
  });

  test('too many overlapping conditional rules', () => {
    const rules = Array.from({ length: 9 }, (_, i) => ({ name: `c${i}`, direction: 'egress', action: 'drop', probability: 0.1 }));
    expect(refused({ rules })).toMatch(/^rule 8 \(c8\): more than 8 rules with conditions/);
  });

  test('too many prefixes and entries', () => {
    expect(refused({ rules: [{ direction: 'egress', action: 'drop', remote: ['10.0.0.0/8', '11.0.0.0/8'] }] }, { ...LIMITS, maxPrefixes: 1 })).toMatch(/^rule 0: .*limit of 1 prefixes/);
    expect(refused({ rules: [{ direction: 'egress', action: 'drop', proto: 'tcp', ports: ['1-65535'] }] }, { ...LIMITS, maxEntries: 4 })).toMatch(/limit of 4 match entries/);
  });
});

describe('pieces', () => {
  test('port blocks cover a range exactly with aligned blocks', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }), (a, b) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        let next = lo;
        for (const [start, bits] of portBlocks(lo, hi)) {
          const size = 2 ** (16 - bits);
          expect(start).toBe(next);
          expect(start % size).toBe(0);
          next = start + size;
        }
        expect(next).toBe(hi + 1);
      }),
    );
  });

  test('endpoints and prefixes', () => {
    expect(parseEndpoint('10.0.0.5:5432', 'e')).toEqual({ address: '10.0.0.5', port: 5432 });
    expect(parseEndpoint('[fd00::5]:53', 'e')).toEqual({ address: 'fd00::5', port: 53 });
    expect(parseEndpoint('fd00::5', 'e')).toEqual({ address: 'fd00::5', port: 0 });
    expect(() => parseEndpoint('10.0.0.5:99999', 'e')).toThrow(/over 65535/);
    expect(parsePrefix('10.1.0.0/16', 'p').len).toBe(112);
    expect(parsePrefix('::/0', 'p')).toEqual({ bits: 0n, len: 0 });
  });

  test('fault rules come first and apply both ways by default', () => {
    const f = faultRules({ dropPercent: 30 }, 1);
    expect(f.map((r) => [r.name, r.direction, r.probability])).toEqual([
      ['fault#1-ingress', 'ingress', 0.3],
      ['fault#1-egress', 'egress', 0.3],
    ]);
    const p = normalizePolicy({ rules: [{ direction: 'egress', action: 'pass' }] }, f);
    expect(p.rules.map((r) => r.label)).toEqual(['fault#1-ingress', 'fault#1-egress', '0']);
    expect(() => faultRules({ dropPercent: 0 }, 1)).toThrow(/percentage/);
  });

  test('10,000 prefix rules compile in well under a second', () => {
    const rules = Array.from({ length: 10000 }, (_, i) => ({ direction: 'egress' as const, action: 'drop' as const, remote: [`10.${i >> 8}.${i & 255}.0/24`] }));
    const t = Date.now();
    const c = compilePolicy(normalizePolicy({ rules }), { ...LIMITS, maxRules: 10000, maxPrefixes: 10000 });
    expect(Date.now() - t).toBeLessThan(1000);
    expect(c.raddr.count).toBe(10000);
    expect(c.match.count).toBe(10000);
  });

  test('10,000 rules pairing a remote /24 with a different local /32 compile in well under a second', () => {
    // Every rule makes a remote and a local class of its own: walking all class pairs was 10^8 steps.
    const rules = Array.from({ length: 10000 }, (_, i) => ({
      direction: 'egress' as const,
      action: 'drop' as const,
      remote: [`10.${i >> 8}.${i & 255}.0/24`],
      local: [`172.16.${i >> 8}.${i & 255}/32`],
    }));
    const t = Date.now();
    const c = compilePolicy(normalizePolicy({ rules }), { ...LIMITS, maxRules: 10000, maxPrefixes: 20000 });
    expect(Date.now() - t).toBeLessThan(1000);
    expect(c.classes).toEqual({ remote: 10000, local: 10000 });
    expect(c.match.count).toBe(10000);
  });
});

/* ---- the model of the kernel side, over the packed maps ---- */

interface Pkt {
  dir: number;
  raddr: bigint;
  laddr: bigint;
  proto: number;
  port: number;
  flags: number;
}

function lpmAddr(p: { keys: Buffer; values: Buffer; count: number }, addr: bigint): number {
  let best = -1;
  let cls = 0;
  for (let i = 0; i < p.count; i++) {
    const len = p.keys.readUInt32LE(i * AKEY_SIZE);
    const bits = (p.keys.readBigUInt64BE(i * AKEY_SIZE + 4) << 64n) | p.keys.readBigUInt64BE(i * AKEY_SIZE + 12);
    if (len > best && maskBits(addr, len) === bits) {
      best = len;
      cls = p.values.readUInt32LE(i * 4);
    }
  }
  return cls;
}

function modelVerdict(c: CompiledPolicy, k: Pkt): number {
  const rc = lpmAddr(c.raddr, k.raddr);
  const lc = lpmAddr(c.laddr, k.laddr);
  let best = -1;
  let slots: number[] = [];
  for (let i = 0; i < c.match.count; i++) {
    const o = i * PKEY_SIZE;
    const plen = c.match.keys.readUInt32LE(o);
    if (c.match.keys.readUInt32LE(o + 4) !== rc || c.match.keys.readUInt32LE(o + 8) !== lc || c.match.keys.readUInt8(o + 12) !== k.dir) continue;
    if (plen >= 80 && c.match.keys.readUInt8(o + 13) !== k.proto) continue;
    if (plen > 80) {
      const bits = plen - 80;
      const shift = 16 - bits;
      if (c.match.keys.readUInt16BE(o + 14) >> shift !== k.port >> shift) continue;
    }
    if (plen > best) {
      best = plen;
      const v = i * CANDS_SIZE;
      slots = Array.from({ length: c.match.values.readUInt32LE(v) }, (_, j) => c.match.values.readUInt16LE(v + 4 + 2 * j));
    }
  }
  for (const s of slots) {
    const o = s * RULE_SIZE;
    const mask = c.rules.readUInt8(o + 2);
    if (mask && (k.flags & mask) !== c.rules.readUInt8(o + 3)) continue;
    return s;
  }
  return k.dir; // default slot = direction
}

function referenceVerdict(rules: NRule[], k: Pkt): number {
  const inAny = (ps: NRule['remote'], a: bigint) => ps === null || ps.some((p) => maskBits(a, p.len) === p.bits);
  for (const r of rules) {
    if (r.dir !== k.dir || !inAny(r.remote, k.raddr) || !inAny(r.local, k.laddr)) continue;
    if (r.proto !== null && r.proto !== k.proto) continue;
    if (r.ports && !r.ports.some(([lo, hi]) => lo <= k.port && k.port <= hi)) continue;
    if (r.tcpMask && (k.flags & r.tcpMask) !== r.tcpValue) continue;
    return SLOT_RULE0 + r.index;
  }
  return k.dir;
}

describe('compiled maps decide like "first matching rule wins"', () => {
  const PREFIXES = ['10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24', '10.1.2.3/32', '192.168.0.0/16', '::/0', 'fd00::/8', 'fd00:1::/32', '0.0.0.0/0'];
  const ADDRS = ['10.1.2.3', '10.1.2.4', '10.1.9.9', '10.9.9.9', '192.168.1.1', '8.8.8.8', 'fd00:1::1', 'fd00:2::1', '2001:db8::1'];
  const rule: fc.Arbitrary<RuleSpec> = fc.record(
    {
      direction: fc.constantFrom('ingress' as const, 'egress' as const),
      action: fc.constantFrom('pass' as const, 'drop' as const),
      proto: fc.constantFrom('tcp' as const, 'udp' as const, 'any' as const),
      remote: fc.option(fc.subarray(PREFIXES, { minLength: 1, maxLength: 3 }), { nil: undefined }),
      local: fc.option(fc.subarray(PREFIXES, { minLength: 1, maxLength: 2 }), { nil: undefined }),
      ports: fc.option(fc.array(fc.oneof(fc.constantFrom(22, 53, 80, 443), fc.constantFrom('1000-2000', '1500-1600', '0-1023', '443-443')), { minLength: 1, maxLength: 3 }), { nil: undefined }),
      tcpFlags: fc.option(fc.constantFrom('new', 'syn', '!ack', 'rst'), { nil: undefined }),
    },
    { requiredKeys: ['direction', 'action'] },
  ).map((r) => {
    if (!r.proto || r.proto === 'any') return { ...r, ports: undefined, tcpFlags: undefined };
    if (r.proto !== 'tcp') return { ...r, tcpFlags: undefined };
    return r;
  });
  const pkt = fc.record({
    dir: fc.integer({ min: 0, max: 1 }),
    raddr: fc.constantFrom(...ADDRS),
    laddr: fc.constantFrom(...ADDRS),
    proto: fc.constantFrom(6, 17, 1),
    port: fc.constantFrom(0, 22, 53, 80, 443, 999, 1000, 1550, 2000, 2001, 65535),
    flags: fc.constantFrom(0x02, 0x12, 0x10, 0x04),
  });
  const bits = (a: string) => parsePrefix(a, 'a').bits;

  test('for random policies and packets', () => {
    fc.assert(
      fc.property(fc.array(rule, { maxLength: 12 }), fc.array(pkt, { minLength: 20, maxLength: 20 }), (specs, pkts) => {
        const spec: PolicySpec = { rules: specs };
        const np = normalizePolicy(spec);
        let c: CompiledPolicy;
        try {
          c = compilePolicy(np, LIMITS);
        } catch (err) {
          if (/more than 8 rules with conditions/.test((err as Error).message)) return;
          throw err;
        }
        for (const p of pkts) {
          const k = { ...p, raddr: bits(p.raddr), laddr: bits(p.laddr), port: p.proto === 1 ? 0 : p.port, flags: p.proto === 6 ? p.flags : 0 };
          expect(modelVerdict(c, k)).toBe(referenceVerdict(np.rules, k));
        }
      }),
      { numRuns: 400 },
    );
  });
});
