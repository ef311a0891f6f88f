/* Address allocations (lib/state/ipam.ts): a container's addresses are claimed in one locked
 * transaction, all or none, pools round robin. Needs no privilege: a temp run dir and flock. */
import { ipamEntries, claimAddressesFor, releaseAddresses, reserveAddress } from '../../lib/state/ipam';
import { parseCidr } from '../../lib/net/addr';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCleanups, tempDir } from '../helpers/kernel';

afterAll(runCleanups);

describe('claimAddressesFor', () => {
  const layout = () => ({ bpffs: '/nonexistent', runDir: tempDir('tw-ipam-') });
  const v6 = parseCidr('fd00:7a5c:99::/120', 'pool');
  const v4 = parseCidr('10.123.99.0/30', 'pool');

  test("claims a container's IPv6 and IPv4 together, the next free of each pool", () => {
    const l = layout();
    expect(claimAddressesFor(l, [{ prefix: v6 }, { prefix: v4 }], 'a', 'lo')).toEqual(['fd00:7a5c:99::1', '10.123.99.1']);
    expect(claimAddressesFor(l, [{ prefix: v6, isTaken: (a) => a.endsWith('::2') }, { prefix: v4 }], 'b', 'lo')).toEqual(['fd00:7a5c:99::3', '10.123.99.2']);
    const owners = Object.fromEntries(Object.entries(ipamEntries(l)).map(([a, e]) => [a, e.owner]));
    expect(owners).toEqual({ 'fd00:7a5c:99::1': 'a', '10.123.99.1': 'a', 'fd00:7a5c:99::3': 'b', '10.123.99.2': 'b' });
  });

  test('claims nothing when one of them cannot be had', () => {
    const l = layout();
    reserveAddress(l, 'fd00:7a5c:99::10', 'other', 'lo');
    expect(() => claimAddressesFor(l, [{ prefix: v4 }, { address: 'fd00:7a5c:99::10' }], 'c', 'lo')).toThrow(/in use by container other/);
    claimAddressesFor(l, [{ prefix: v4 }, { prefix: v4 }], 'd', 'lo'); // .1 and .2: the /30 is full
    expect(() => claimAddressesFor(l, [{ prefix: v6 }, { prefix: v4 }], 'e', 'lo')).toThrow(/no free address left in 10\.123\.99\.0\/30/);
    expect(Object.values(ipamEntries(l)).map((e) => e.owner).sort()).toEqual(['d', 'd', 'other']);
  });

  test('an explicit address its owner holds already is claimed again; release is by owner', () => {
    const l = layout();
    expect(claimAddressesFor(l, [{ address: '10.123.99.1' }], 'f', 'lo')).toEqual(['10.123.99.1']);
    expect(claimAddressesFor(l, [{ address: '10.123.99.1' }], 'f', 'lo')).toEqual(['10.123.99.1']);
    expect(releaseAddresses(l, [{ address: '10.123.99.1', owner: 'g' }])).toBe(0);
    expect(releaseAddresses(l, [{ address: '10.123.99.1', owner: 'f' }])).toBe(1);
    expect(ipamEntries(l)).toEqual({});
  });

  test('hands a pool out round robin: a released address is not the next one, and the cursor wraps', () => {
    const l = layout();
    const [a1] = claimAddressesFor(l, [{ prefix: v4 }], 'a', 'lo');
    expect(a1).toBe('10.123.99.1');
    releaseAddresses(l, [{ address: a1, owner: 'a' }]);
    expect(claimAddressesFor(l, [{ prefix: v4 }], 'b', 'lo')).toEqual(['10.123.99.2']);
    expect(claimAddressesFor(l, [{ prefix: v4 }], 'c', 'lo')).toEqual(['10.123.99.1']); // wrapped: .3 is the broadcast
    expect(() => claimAddressesFor(l, [{ prefix: v4 }], 'd', 'lo')).toThrow(/no free address left/);
    releaseAddresses(l, [{ address: '10.123.99.2', owner: 'b' }]);
    expect(claimAddressesFor(l, [{ prefix: v4 }], 'd', 'lo')).toEqual(['10.123.99.2']);
  });

  test('with many addresses in use, the next claim does not scan them', () => {
    const l = layout();
    const big = parseCidr('fd00:7a5c:98::/112', 'pool');
    const taken: string[] = [];
    const isTaken = (a: string) => (taken.push(a), false);
    for (let i = 0; i < 300; i++) claimAddressesFor(l, [{ prefix: big }], `c${i}`, 'lo');
    expect(claimAddressesFor(l, [{ prefix: big, isTaken }], 'next', 'lo')).toEqual(['fd00:7a5c:98::12d']);
    expect(taken).toEqual(['fd00:7a5c:98::12d']); // one candidate looked at, not 301
  });

  test('allocations of the single-file layout (ipam.json) are taken over at the first claim', () => {
    const l = layout();
    mkdirSync(l.runDir, { recursive: true });
    const since = '2026-01-01T00:00:00.000Z';
    writeFileSync(join(l.runDir, 'ipam.json'), JSON.stringify({ version: 1, addresses: { '10.123.99.1': { owner: 'old', device: 'lo', since } } }));
    expect(ipamEntries(l)).toEqual({ '10.123.99.1': { owner: 'old', device: 'lo', since } });
    expect(claimAddressesFor(l, [{ prefix: v4 }], 'new', 'lo')).toEqual(['10.123.99.2']);
    expect(existsSync(join(l.runDir, 'ipam.json'))).toBe(false);
    expect(Object.fromEntries(Object.entries(ipamEntries(l)).map(([a, e]) => [a, e.owner]))).toEqual({ '10.123.99.1': 'old', '10.123.99.2': 'new' });
    expect(releaseAddresses(l, [{ address: '10.123.99.1', owner: 'old' }])).toBe(1);
  });

  test('a damaged cursor starts the pool over; stray files in the directory are not allocations', () => {
    const l = layout();
    claimAddressesFor(l, [{ prefix: v4 }], 'a', 'lo');
    const dir = join(l.runDir, 'ipam');
    writeFileSync(join(dir, 'cursor-10.123.99.0_30'), 'garbage');
    writeFileSync(join(dir, '10.123.99.2~'), '{}');
    writeFileSync(join(dir, '.10.123.99.2.123.tmp'), '{}');
    writeFileSync(join(dir, '10.123.099.2'), '{}');
    expect(claimAddressesFor(l, [{ prefix: v4 }], 'b', 'lo')).toEqual(['10.123.99.2']);
    expect(Object.keys(ipamEntries(l)).sort()).toEqual(['10.123.99.1', '10.123.99.2']);
  });
});
