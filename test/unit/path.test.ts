import fc from 'fast-check';
import { join } from 'node:path';
import { joinPath } from '../../lib/path';

// joinPath must be path.join, only faster where there is nothing to normalize.
const piece = fc.stringMatching(/^[a.\/%-]{0,6}$/);

describe('joinPath', () => {
  test('equals path.join for any directory and names', () => {
    fc.assert(
      fc.property(piece, fc.array(piece, { maxLength: 4 }), (dir, names) => joinPath(dir, ...names) === join(dir, ...names)),
      { numRuns: 20000 },
    );
  });

  test('equals path.join for absolute directories made of plain components', () => {
    const name = fc.stringMatching(/^[a-z0-9%._-]{1,8}$/);
    const dir = fc.array(name, { maxLength: 4 }).map((parts) => `/${parts.join('/')}`);
    fc.assert(fc.property(dir, fc.array(name, { maxLength: 4 }), (d, names) => joinPath(d, ...names) === join(d, ...names)), { numRuns: 20000 });
  });

  test.each([
    [['/'], '/'],
    [['/', 'a'], '/a'],
    [['/run/taskwire', 'containers', 'x.json'], '/run/taskwire/containers/x.json'],
    [['/run/taskwire/', 'ipam'], '/run/taskwire/ipam'],
    [['/run//taskwire', 'ipam'], '/run/taskwire/ipam'],
    [['/sys/fs/bpf', '..', 'x'], '/sys/fs/x'],
    [['/sys/fs/bpf', 'a/b'], '/sys/fs/bpf/a/b'],
    [['/sys/fs/bpf', ''], '/sys/fs/bpf'],
    [['relative', 'x'], 'relative/x'],
  ])('%j gives %s', (args, out) => {
    expect(joinPath(...(args as [string, ...string[]]))).toBe(out);
  });
});
