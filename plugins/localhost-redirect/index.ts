/*
 * localhost-redirect: a task that ip-per-task moved onto its own address still reaches its own
 * services at [::1]:P and 127.0.0.1:P, and never another task's on the same port. The BPF side
 * (bpf/localhost_redirect.bpf.c) says why it looks listeners up statelessly and how it composes
 * with ip-per-task's programs on the same cgroup.
 *
 * Annotation io.taskwire.localhost-redirect:
 *   "true"                         the host's default for loopback ports the task does not serve
 *   {"hostLoopback": "refuse"}     such connects fail with ECONNREFUSED instead of reaching the host
 * A container may tighten the host's hostLoopback but not loosen it.
 */
import { ConfigError, TaskwireError } from '../../lib/errors';
import { definePlugin } from '../../lib/plugin';
import { validate } from '../../lib/schema';
import { parseAnnotationJson } from '../../lib/host/annotation-json';
import { taskAddrConstant } from '../../lib/bpf/task-addr';
import { BPF_OBJECT, lrConfig, REFUSE_HOST } from './codec';

export type HostLoopback = 'allow' | 'refuse';

export interface LrHostSection {
  enabled: boolean;
  hostLoopback?: HostLoopback;
}

export interface LrConfig {
  hostLoopback: HostLoopback;
}

export interface LrSummary extends Record<string, unknown> {
  /** Loopback destination → the task address it is redirected to (when a task socket serves the port). */
  redirects: Record<string, string>;
  hostLoopback: HostLoopback;
  programs: string[];
}

/** What attach needs from ip-per-task's summary. */
interface IptOutput {
  ip6: string | null;
  ip4: string | null;
}

export function parseLr(value: string, section: LrHostSection): LrConfig {
  const hostDefault = section.hostLoopback ?? 'allow';
  const v = value.trim();
  if (v === 'true') return { hostLoopback: hostDefault };
  if (!v.startsWith('{')) throw new ConfigError(`must be "true" or an object like {"hostLoopback":"refuse"}, not ${JSON.stringify(value)}`);
  const cfg = validate<Partial<LrConfig>>('taskwire:localhost-redirect/annotation', parseAnnotationJson(v), 'value');
  const want = cfg.hostLoopback ?? hostDefault;
  if (want === 'allow' && hostDefault === 'refuse')
    throw new ConfigError('hostLoopback "allow" is not permitted: the host config refuses loopback connects to the host (plugins["localhost-redirect"].hostLoopback)');
  return { hostLoopback: want };
}

export default definePlugin<LrConfig, LrHostSection, LrSummary>({
  name: 'localhost-redirect',
  annotation: 'io.taskwire.localhost-redirect',
  summary: "loopback connects and datagrams reach the task's own servers on its task IP, never another task's",
  requires: ['ip-per-task'],
  hostSchema: 'taskwire:localhost-redirect/host',

  parse(value, { section }) {
    return parseLr(value, section);
  },

  attach(ctx, cfg) {
    const ipt = ctx.outputs.get('ip-per-task') as IptOutput | undefined;
    if (!ipt || (!ipt.ip6 && !ipt.ip4)) throw new TaskwireError('SYSTEM', 'localhost-redirect: ip-per-task gave this container no address');
    const obj = ctx.loadIntoCgroup(BPF_OBJECT, {
      rodata: {
        ...taskAddrConstant(ipt),
        tw_lr_cfg: { codec: lrConfig, value: { flags: cfg.hostLoopback === 'refuse' ? REFUSE_HOST : 0 } },
      },
    });
    const redirects: Record<string, string> = {};
    if (ipt.ip6) redirects['::1'] = ipt.ip6;
    if (ipt.ip4) redirects['127.0.0.0/8'] = ipt.ip4;
    return { redirects, hostLoopback: cfg.hostLoopback, programs: obj.programs().map((p) => p.name) };
  },
});
