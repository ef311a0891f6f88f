/* netns plugin without privilege: annotation parsing under host limits, and the RTM_NEWLINK
 * wire format of a pair. */
import { parseNetns, NetnsHostSection } from '../../plugins/netns';
import { newPairMessage } from '../../lib/net/rtnetlink-link';
import { errnoFromMessage } from '../../lib/net/iproute';
import { userPort } from '../../plugins/netns/codec';
import type { HostConfig } from '../../lib/host/config';

const host = { pools: { default: { ip6: 'fd00:7a5c:0:1::/64', ip4: '10.123.1.0/24' }, v6only: { ip6: 'fd00:7a5c:0:2::/64' } }, plugins: {} } as unknown as HostConfig;
const section: NetnsHostSection = {
  enabled: true,
  allowedPrefixes: ['fd00:7a5c::/48', '10.123.0.0/16'],
  devices: ['netkit', 'veth'],
  mtu: 1500,
  maxMtu: 9000,
  hostServices: { ip4: '10.123.0.1', ports: [8125], annotationPorts: [8126] },
};

describe('io.taskwire.netns parsing', () => {
  test('auto: both families, device auto, host ports', () => {
    expect(parseNetns('auto', host, section)).toEqual({ ip6: 'auto', ip4: 'auto', device: 'auto', mtu: 1500, services: [8125] });
  });
  test('bare auto takes only what the pool has; an object without addresses too', () => {
    expect(parseNetns('auto', host, { ...section, pool: 'v6only' }).ip4).toBeUndefined();
    expect(parseNetns('{"device":"veth"}', host, { ...section, pool: 'v6only' })).toMatchObject({ ip6: 'auto', device: 'veth' });
  });
  test('explicit addresses, mtu and annotation ports', () => {
    expect(parseNetns('{"ip6":"fd00:7a5c::0:10","ip4":"10.123.5.5","mtu":9000,"services":[8126]}', host, section)).toEqual({
      ip6: 'fd00:7a5c::10',
      ip4: '10.123.5.5',
      device: 'auto',
      mtu: 9000,
      services: [8125, 8126],
    });
  });
  test.each<[string, RegExp, string?, string[]?]>([
    ['{"ip4":"0177.0.0.1"}', /not an IPv4 address/],
    ['{"ip4":"192.0.2.1"}', /outside the host's allowed prefixes/],
    ['{"ip4":"auto"}', /no IPv4 prefix in pool/, 'v6only'],
    ['{"device":"netkit"}', /device netkit is not allowed/, undefined, ['veth']],
    ['{"mtu":9001}', /over the host's maxMtu 9000/],
    ['{"services":[22]}', /port 22 is not in the host's hostServices.annotationPorts/],
    ['{"bogus":1}', /bogus|additional/],
    ['{', /not valid JSON/],
    ['veth', /must be "auto" or a JSON object/],
  ])('%s is refused', (...row) => {
    const [value, re, pool, devices] = row;
    const s = { ...section, ...(pool ? { pool } : {}), ...(devices ? { devices: devices as any } : {}) };
    expect(() => parseNetns(value, host, s)).toThrow(re);
  });
  test('service ports need a host target', () => {
    expect(() => parseNetns('auto', host, { ...section, hostServices: { ports: [1] } })).toThrow(/no hostServices.ip4\/ip6 target/);
  });
});

describe('rtnetlink pair message', () => {
  test('netkit: names, peer netns pid, L3 mode, peer policy drop', () => {
    const m = newPairMessage({ kind: 'netkit', hostName: 'twabc', peerName: 'eth0', peerNetnsPid: 4242, mtu: 1400 });
    const text = m.toString('latin1');
    expect(text).toContain('twabc\0');
    expect(text).toContain('eth0\0');
    expect(text).toContain('netkit\0');
    const attr = (type: number, v: number) => {
      const b = Buffer.alloc(8);
      b.writeUInt16LE(8, 0);
      b.writeUInt16LE(type, 2);
      b.writeUInt32LE(v, 4);
      return b;
    };
    expect(m.includes(attr(19, 4242))).toBe(true); // IFLA_NET_NS_PID in the peer's info
    expect(m.includes(attr(5, 1))).toBe(true); // IFLA_NETKIT_MODE = NETKIT_L3
    expect(m.includes(attr(4, 2))).toBe(true); // IFLA_NETKIT_PEER_POLICY = NETKIT_DROP
    expect(m.includes(attr(3, 0))).toBe(true); // IFLA_NETKIT_POLICY = NETKIT_PASS
  });
  test('veth carries no netkit attributes', () => {
    const m = newPairMessage({ kind: 'veth', hostName: 'twabc', peerName: 'eth0', peerNetnsPid: 1 });
    expect(m.toString('latin1')).toContain('veth\0');
    expect(m.length % 4).toBe(0);
  });
});

test('iproute2 messages map to errno names', () => {
  expect(errnoFromMessage('RTNETLINK answers: File exists')).toBe('EEXIST');
  expect(errnoFromMessage('Cannot find device "x"')).toBe('ENODEV');
  expect(errnoFromMessage('nsenter: reassociate to namespace \'ns/net\' failed: No such file or directory')).toBe('ENOENT');
});

test('ports are kept as bpf_sock_addr.user_port holds them', () => {
  expect(userPort(8126)).toBe(0xbe1f);
});
