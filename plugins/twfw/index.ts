/*
 * twfw: a firewall per container, on its cgroup (bpf/twfw.bpf.c). Rules affect only that task,
 * vanish with it, and change while it runs (`taskwire fw apply`, `taskwire fault`).
 *
 * Annotation io.taskwire.twfw: an inline JSON policy, or @NAME for <policyDir>/NAME.json
 * (oci-config/twfw-policy.schema.json; plugins/twfw/README.md has the language and its order).
 * parse() compiles the whole policy, so every refusal happens before the kernel is touched.
 */
import { ConfigError } from '../../lib/errors';
import { definePlugin } from '../../lib/plugin';
import { layoutOf } from '../../lib/pipeline';
import type { Layout } from '../../lib/state/paths';
import { firstGeneration, lockPath, newState, statePath, TwfwSection, writeState } from './apply';
import { BPF_OBJECT, F_SOCKET } from './codec';
import { compilePolicy, CompiledPolicy } from './compile';
import { loadPolicy, normalizePolicy, PolicySpec, RuleSpec } from './policy';
import { knownSets } from './sets';

export interface TwfwConfig {
  source: string;
  policy: PolicySpec;
  compiled: CompiledPolicy;
}

export interface TwfwSummary extends Record<string, unknown> {
  source: string;
  rules: number;
  defaults: { ingress: string; egress: string };
  entries: { remote: number; local: number; match: number };
  socketLevel: boolean;
  programs: string[];
}

/** Policy + faults → compiled, with every named set known and non-empty. */
export function compileFor(policy: PolicySpec, faults: RuleSpec[], section: TwfwSection, layout: Layout): CompiledPolicy {
  const compiled = compilePolicy(normalizePolicy(policy, faults), section);
  const sets = knownSets(layout, section.sets);
  for (const r of compiled.setRules) {
    const members = sets[r.set];
    if (!members) throw new ConfigError(`rule ${compiled.labels[r.slot]}: set ${r.set} is not defined (host config plugins.twfw.sets or taskwire set update)`);
    if (!members.length) throw new ConfigError(`rule ${compiled.labels[r.slot]}: set ${r.set} is empty`);
  }
  return compiled;
}

export default definePlugin<TwfwConfig, TwfwSection, TwfwSummary>({
  name: 'twfw',
  annotation: 'io.taskwire.twfw',
  summary: 'a per-container firewall: ordered rules on prefixes, ports, protocols, TCP flags and named sets; counters, events, live updates, fault injection',
  hostSchema: 'taskwire:twfw/host',

  parse(value, { host, section }) {
    const { source, spec } = loadPolicy(value, host, section);
    return { source, policy: spec, compiled: compileFor(spec, [], section, layoutOf(host)) };
  },

  attach(ctx, cfg) {
    const { layout, container } = ctx;
    const c = cfg.compiled;
    ctx.acquire({ kind: 'file', path: lockPath(layout, container.id) }, () => undefined);
    ctx.acquire({ kind: 'file', path: statePath(layout, container.id) }, () => writeState(layout, newState(container.id, cfg.source, cfg.policy, [], c, 1)));
    const gen = firstGeneration(layout, ctx.section, c);
    let programs: string[];
    try {
      programs = ctx.loadIntoCgroup(BPF_OBJECT, gen.opts).programs().map((p) => p.name);
    } finally {
      gen.close();
    }
    return {
      source: cfg.source,
      rules: c.slots - 3,
      defaults: { ingress: cfg.policy.defaults?.ingress ?? 'pass', egress: cfg.policy.defaults?.egress ?? 'pass' },
      entries: { remote: c.raddr.count, local: c.laddr.count, match: c.match.count },
      socketLevel: (c.flags & F_SOCKET) !== 0,
      programs,
    };
  },
});
