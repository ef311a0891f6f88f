import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { selectPlugins } from '../../lib/pipeline';
import type { HostConfig } from '../../lib/host/config';
import { validate } from '../../lib/schema';
import { parseLr } from '../../plugins/localhost-redirect';
import { lrConfig, lrOrig } from '../../plugins/localhost-redirect/codec';
import { taskAddrConstant, TASK_HAVE_IP4, TASK_HAVE_IP6 } from '../../lib/bpf/task-addr';

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

  test('the task address constant is written word by word in network order', () => {
    const { tw_task } = taskAddrConstant({ ip6: 'fd00::1', ip4: '10.0.1.1' });
    const b = tw_task.codec.encode(tw_task.value);
    expect(b.subarray(0, 2)).toEqual(Buffer.from([0xfd, 0x00]));
    expect(b.subarray(12, 16)).toEqual(Buffer.from([0, 0, 0, 1]));
    expect(b.subarray(16, 20)).toEqual(Buffer.from([10, 0, 1, 1]));
    expect(b.readUInt32LE(20)).toBe(TASK_HAVE_IP6 | TASK_HAVE_IP4);
    expect(b.length).toBe(32);
    expect(lrConfig.size).toBe(4);
    expect(lrOrig.size).toBe(24);
  });
});
