/* Socket actors in child processes, inside a cgroup or on the host, with JSON-line events. */
import { spawn, ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { NODE, onCleanup } from './kernel';

const CHILD = join(__dirname, 'net-child.js');

export interface ActorEvent {
  event: string;
  [k: string]: any;
}

export interface Actor {
  proc: ChildProcess;
  next(event?: string): Promise<ActorEvent>;
  kill(): void;
}

/** `netns` (a path like /proc/PID/ns/net) runs the actor in that network namespace too. */
export function actor(cgroup: string | null, cmd: Record<string, unknown>, netns?: string): Actor {
  const argv = [CHILD, JSON.stringify(cmd)];
  const [file, args] = cgroup ? ['sh', ['-c', `echo $$ > "$0/cgroup.procs" && exec "$@"`, cgroup, NODE, ...argv]] : [NODE, argv];
  const proc = netns ? spawn('nsenter', [`--net=${netns}`, '--', file, ...args], { stdio: ['ignore', 'pipe', 'inherit'] }) : spawn(file, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  onCleanup(() => proc.kill('SIGKILL'));
  const queue: ActorEvent[] = [];
  const waiters: ((e: ActorEvent) => void)[] = [];
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    const e = JSON.parse(line) as ActorEvent;
    const w = waiters.shift();
    if (w) w(e);
    else queue.push(e);
  });
  proc.on('exit', () => {
    while (waiters.length) waiters.shift()!({ event: 'exit' });
  });
  return {
    proc,
    async next(event?: string) {
      const e = queue.shift() ?? (await new Promise<ActorEvent>((r) => waiters.push(r)));
      if (event && e.event !== event) throw new Error(`expected ${event}, got ${JSON.stringify(e)}`);
      return e;
    },
    kill: () => proc.kill('SIGKILL'),
  };
}

/** Runs an actor to its first event of interest (a client's result). */
export async function once(cgroup: string | null, cmd: Record<string, unknown>, netns?: string): Promise<ActorEvent[]> {
  const a = actor(cgroup, cmd, netns);
  const events: ActorEvent[] = [];
  for (;;) {
    const e = await a.next();
    if (e.event === 'exit') return events;
    events.push(e);
    if (e.event === 'error' || e.event === 'reply') {
      a.kill();
      return events;
    }
  }
}
