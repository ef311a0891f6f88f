/* Listing the records (lib/state/record.ts listRecords): a file that is not a record, whatever is
 * wrong with it, is reported as damaged and the others are listed; nothing throws. No privilege. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCleanups, tempDir } from '../helpers/kernel';
import { ContainerRecord, DamagedRecord, listRecords, writeRecord } from '../../lib/state/record';
import { recordDir } from '../../lib/state/paths';
import { recordedState } from '../../lib/container';
import { cgroup2Mount } from '../../lib/host/discovery';

afterAll(runCleanups);

const record = (id: string): ContainerRecord => ({
  version: 1,
  id,
  createdAt: '2026-11-21T00:00:00.000Z',
  stage: 'createRuntime',
  pid: 1,
  bundle: '/b',
  cgroup: '/sys/fs/cgroup/x',
  cgroupId: '1',
  netns: null,
  complete: true,
  plugins: [],
  resources: [],
});

test('files that are not records are reported as damaged, by file; the records are listed', () => {
  const dir = tempDir('tw-records-');
  const layout = { bpffs: join(dir, 'bpf'), runDir: join(dir, 'run') };
  writeRecord(layout, record('good.1'));
  mkdirSync(recordDir(layout), { recursive: true });
  const bad: Record<string, string> = {
    'cut.json': '{"version":1,"id":', // not JSON
    'null.json': 'null',
    'empty.json': '{}',
    'other.json': JSON.stringify(record('someone-else')), // a record under another id's name
    'a%2Fb.json': JSON.stringify(record('a/b')), // a name that decodes to no valid id
  };
  for (const [name, text] of Object.entries(bad)) writeFileSync(join(recordDir(layout), name), text);
  writeFileSync(join(recordDir(layout), '.good.1.json.999.tmp'), '{'); // a temp file is not a record
  mkdirSync(join(recordDir(layout), 'unreadable.json')); // reading it fails (EISDIR), as EACCES or EIO would

  const damaged: DamagedRecord[] = [];
  expect(listRecords(layout, damaged).map((r) => r.id)).toEqual(['good.1']);
  expect(damaged.map((d) => d.path.slice(recordDir(layout).length + 1)).sort()).toEqual([...Object.keys(bad), 'unreadable.json'].sort());
  expect(damaged.filter((d) => d.reason === 'unreadable').map((d) => d.id)).toEqual(['unreadable']);
  expect(damaged.find((d) => d.id === 'unreadable')!.error).toMatch(/EISDIR/);
  expect(damaged.find((d) => d.path.endsWith('/empty.json'))!.error).toBe('not a taskwire record of container "empty"');
  expect(damaged.find((d) => d.path.endsWith('/a%2Fb.json'))!.error).toMatch(/container id "a\/b" is not valid/);
  expect(() => listRecords(layout)).not.toThrow();
});

test("a record's container counts as running when its cgroup cannot be judged from here, gone when its cgroup is not there", () => {
  // Written in another mount namespace: gone from here is not gone (gc and the netns plugin's count of users rely on this).
  expect(recordedState({ ...record('elsewhere'), cgroup: '/not/the/cgroup2/mount/x' })).toBe('running');
  expect(recordedState({ ...record('gone'), cgroup: join(cgroup2Mount(), `tw-no-such-${process.pid}`) })).toBe('gone');
});
