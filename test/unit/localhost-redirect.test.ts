import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { selectPlugins } from '../../lib/pipeline';
import type { HostConfig } from '../../lib/host/config';
import { validate } from '../../lib/schema';
import { parseLr } from '../../plugins/localhost-redirect';
import { lrConfig, lrOrig } from '../../plugins/localhost-redirect/codec';

const example = JSON.parse(readFileSync(join(__dirname, '../../oci-config/config.example.json'), 'utf8'));
const host = (lr: Record<string, unknown> = { enabled: true }): HostConfig => ({
  path: '/etc/taskwire/config.json',
  logFile: '',
  logLevel: 'silent',
  hookTimeoutMs: 8000,
  ...example,
  plugins: { ...example.plugins, 'localhost-redirect': lr },
});
const both = (lr: string) => ({ 'io.taskwire.ip-per-task': 'auto', 'io.taskwire.localhost-redirect': lr });

describe('localhost-redirect annotation', () => {
  test.each([
    ['true', {}, 'allow'],
    [' true ', { hostLoopback: 'allow' }, 'allow'],
    ['true', { hostLoopback: 'refuse' }, 'refuse'],
    ['{}', {}, 'allow'],
    ['{"hostLoopback":"refuse"}', {}, 'refuse'],
    ['{"hostLoopback":"refuse"}', { hostLoopback: 'refuse' }, 'refuse'],
  ])('%s with host %j → %s', (value, section, want) => {
    expect(parseLr(value, { enabled: true, ...section } as any)).toEqual({ hostLoopback: want });
  });

  test.each([
    ['false', {}, /must be "true" or an object/],
    ['yes', {}, /must be "true" or an object/],
    ['{"hostLoopback":', {}, /not valid JSON/],
    ['{"hostLoopback":"maybe"}', {}, /hostLoopback must be equal to one of the allowed values \("allow", "refuse"\)/],
    ['{"ports":[1]}', {}, /unknown field "ports"/],
    ['{"hostLoopback":"allow"}', { hostLoopback: 'refuse' }, /not permitted: the host config refuses .*plugins\["localhost-redirect"\]\.hostLoopback/],
  ])('refuses %s with host %j in one line', (value, section, message) => {
    expect(() => parseLr(value, { enabled: true, ...section } as any)).toThrow(message);
    try {
      parseLr(value, { enabled: true, ...section } as any);
    } catch (e) {
      expect((e as Error).message).not.toContain('\n');
    }
  });

  test('selection runs it after ip-per-task, requires it, and honours the host section', () => {
    expect(selectPlugins(both('true'), host(), 'c1').map((s) => s.def.name)).toEqual(['ip-per-task', 'localhost-redirect']);
    expect(() => selectPlugins({ 'io.taskwire.localhost-redirect': 'true' }, host(), 'c1')).toThrow(
      'annotation io.taskwire.localhost-redirect: plugin localhost-redirect requires io.taskwire.ip-per-task as well',
    );
    expect(() => selectPlugins(both('true'), host({ enabled: false }), 'c1')).toThrow(/plugin localhost-redirect is not enabled on this host/);
    expect(() => selectPlugins(both('true'), host({ enabled: true, hostLoopback: 'never' }), 'c1')).toThrow(
      /host config plugins\["localhost-redirect"\] at \/hostLoopback must be equal to one of the allowed values/,
    );
    expect(() => selectPlugins(both('1'), host(), 'c1')).toThrow(/^annotation io\.taskwire\.localhost-redirect: must be "true"/);
  });

  test('the example host config enables it with a valid section', () => {
    expect(validate('taskwire:localhost-redirect/host', example.plugins['localhost-redirect'], 'x')).toEqual({ enabled: true, hostLoopback: 'allow' });
  });

  test('the rodata config encodes addresses word by word in network order', () => {
    const b = lrConfig.encode({ ip6: [0x00fd, 0, 0, 0x01000000], ip4: 0x0101000a, flags: 7, host_netns_cookie: 5n });
    expect(b.subarray(0, 2)).toEqual(Buffer.from([0xfd, 0x00]));
    expect(b.subarray(16, 20)).toEqual(Buffer.from([10, 0, 1, 1]));
    expect(b.length).toBe(32);
    expect(lrOrig.size).toBe(24);
  });
});
