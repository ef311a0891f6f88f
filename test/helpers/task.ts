/* A "task" for privileged tests: a test cgroup with a process in it, created through the real
 * hook with the given annotations, and destroyed (as poststop would) at cleanup. */
import { destroyContainer, layoutOf } from '../../lib/pipeline';
import { loadHostConfig } from '../../lib/host/config';
import { silentLog } from '../../lib/log';
import { readRecord, ContainerRecord } from '../../lib/state/record';
import { hook, HookResult } from './hook';
import { onCleanup, sleeperIn, tempCgroup, TestHost, uniq, waitInCgroup } from './kernel';

export interface Task {
  id: string;
  cgroup: string;
  pid: number;
  record: ContainerRecord;
  /** The summary a plugin recorded, by plugin name. */
  summary<T = Record<string, any>>(plugin: string): T;
}

export async function cgroupWithProcess(): Promise<{ cgroup: string; pid: number }> {
  const cgroup = tempCgroup();
  const p = sleeperIn(cgroup);
  await waitInCgroup(cgroup, p.pid!);
  return { cgroup, pid: p.pid! };
}

/** Runs createRuntime for a new task; throws with the hook's stderr if it fails. */
export async function startTask(host: TestHost, annotations: Record<string, string>, idPrefix = 'tw.task', bundle?: string): Promise<Task> {
  const id = uniq(idPrefix);
  const { cgroup, pid } = await cgroupWithProcess();
  const layout = layoutOf(loadHostConfig(host.configPath));
  onCleanup(() => destroyContainer(layout, id, silentLog()));
  const r: HookResult = await hook('createRuntime', { id, pid, annotations, ...(bundle ? { bundle } : {}) }, host.configPath);
  if (r.code !== 0) throw new Error(`createRuntime failed (${r.code}): ${r.stderr}`);
  const record = readRecord(layout, id)!;
  return {
    id,
    cgroup,
    pid,
    record,
    summary: <T>(plugin: string) => record.plugins.find((p) => p.name === plugin)?.summary as T,
  };
}
