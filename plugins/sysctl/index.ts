/*
 * sysctl: what a container may read and write under /proc/sys, enforced by a
 * BPF_PROG_TYPE_CGROUP_SYSCTL program in its cgroup (bpf/sysctl.bpf.c); a denied access fails
 * with EPERM and can be logged to a pinned ring buffer (plugins/sysctl/events.ts).
 *
 * Annotation io.taskwire.sysctl:
 *   "default"                         the host policy (plugins.sysctl.policy)
 *   "allow" | "read-only" | "deny"    shorthand for {"default": <word>}
 *   {"default": ..., "rules": [...]}  a policy (oci-config/sysctl-policy.schema.json)
 *   "@NAME"                           the policy file <policyDir>/NAME.json
 * The host decides what an annotation's policy does (plugins.sysctl.annotations): tighten (both
 * policies must allow: an annotation can only take access away), replace, or forbid.
 *
 * The bundle's linux.sysctl values are written by runc from inside the container's cgroup after
 * createRuntime: exactly those (name, value) writes pass, unless bundleSysctls is "policy".
 */
import { existsSync } from 'node:fs';
import { joinPath } from '../../lib/path';
import { ConfigError } from '../../lib/errors';
import { definePlugin } from '../../lib/plugin';
import { isPolicyRef } from '../../lib/host/policy-file';
import { loadPolicyAnnotation, PolicyAccess } from '../../lib/host/annotation-json';
import { BPF_OBJECT, EVENTS_MAP, STATS_MAP } from './codec';
import { bundleRules, bundleSysctls, compilePolicy, evaluate, PolicySpec, Slot } from './policy';
import { applyPlan, makePlan, planMaxEntries, planRodata } from './plan';
import { toDots } from './names';

export interface SysctlHostSection extends PolicyAccess {
  enabled: boolean;
  policy?: PolicySpec;
  annotations?: 'tighten' | 'replace' | 'forbid';
  bundleSysctls?: 'allow' | 'policy';
  events?: boolean;
}

export const HOST_DEFAULT_POLICY: PolicySpec = { default: 'read-only' };
const WORDS = ['allow', 'read-only', 'deny'] as const;

export interface SysctlConfig {
  /** Slot names in order: "host", "annotation" (tighten) or just one of them. */
  sources: string[];
  defaults: string[];
  slots: Slot[];
  events: boolean;
}

export interface SysctlSummary extends Record<string, unknown> {
  policies: string[];
  defaults: string[];
  exact: number;
  patterns: number;
  bundleSysctls: Record<string, string>;
  events: boolean;
  programs: string[];
}

/** The annotation's own policy, or undefined for "default". */
function annotationPolicy(value: string, ctx: { host: import('../../lib/host/config').HostConfig; section: SysctlHostSection }): PolicySpec | undefined {
  const v = value.trim();
  if (v === 'default') return undefined;
  if ((ctx.section.annotations ?? 'tighten') === 'forbid')
    throw new ConfigError(`the host accepts only "default" here (plugins.sysctl.annotations is "forbid"), not ${JSON.stringify(v.slice(0, 60))}`);
  if ((WORDS as readonly string[]).includes(v)) return { default: v as PolicySpec['default'] };
  if (!v.startsWith('{') && !isPolicyRef(v))
    throw new ConfigError(`must be "default", "allow", "read-only", "deny", a JSON policy or @NAME, not ${JSON.stringify(v.slice(0, 60))}`);
  return loadPolicyAnnotation<PolicySpec>(v, { host: ctx.host, section: ctx.section, schemaId: 'taskwire:sysctl-policy', what: 'policy' });
}

/** linux.sysctl of the bundle; a bundle without config.json (only in tests) sets none. */
function readLinuxSysctl(bundle: string): Record<string, unknown> | undefined {
  if (!existsSync(joinPath(bundle, 'config.json'))) return undefined;
  const { readBundleConfig } = require('../../lib/oci') as typeof import('../../lib/oci');
  return readBundleConfig(bundle).linux?.sysctl;
}

export default definePlugin<SysctlConfig, SysctlHostSection, SysctlSummary>({
  name: 'sysctl',
  annotation: 'io.taskwire.sysctl',
  summary: 'the container reads and writes only the sysctls the host (and its own policy) allow; others fail with EPERM',
  hostSchema: 'taskwire:sysctl/host',

  parse(value, ctx) {
    const { section } = ctx;
    const hostSpec = section.policy ?? HOST_DEFAULT_POLICY;
    const hostSlot = compilePolicy(hostSpec, 'host config plugins.sysctl.policy');
    const own = annotationPolicy(value, ctx);
    if (!own) return { sources: ['host'], defaults: [hostSpec.default], slots: [hostSlot], events: (section.events ?? false) || hostSlot.events };
    const ownSlot = compilePolicy(own, 'policy');
    const events = (section.events ?? false) || hostSlot.events || ownSlot.events;
    if (section.annotations === 'replace') return { sources: ['annotation'], defaults: [own.default], slots: [ownSlot], events };
    return { sources: ['host', 'annotation'], defaults: [hostSpec.default, own.default], slots: [hostSlot, ownSlot], events };
  },

  attach(ctx, cfg) {
    let sysctls = bundleSysctls(readLinuxSysctl(ctx.container.bundle));
    if (ctx.section.bundleSysctls === 'policy') {
      for (const [name, value] of sysctls) {
        const v = evaluate(cfg.slots, new Map(), { name, write: true, value });
        if (!v.allowed)
          throw new ConfigError(`bundle config.json linux.sysctl sets ${toDots(name)}=${JSON.stringify(value)}, which the ${cfg.sources[v.slot ?? 0]} sysctl policy refuses (${v.rule}; plugins.sysctl.bundleSysctls is "policy")`);
      }
      // They pass the policy on their own: no exception needed.
      sysctls = new Map();
    }
    const plan = makePlan(cfg.slots, bundleRules(sysctls), cfg.events);
    const obj = ctx.loadIntoCgroup(BPF_OBJECT, {
      rodata: planRodata(plan),
      maxEntries: planMaxEntries(plan),
      pinMaps: cfg.events ? [STATS_MAP, EVENTS_MAP] : [STATS_MAP],
      beforeAttach: (o) => applyPlan(o, plan),
    });
    return {
      policies: cfg.sources,
      defaults: cfg.defaults,
      exact: cfg.slots.reduce((n, s) => n + s.exact.size, 0),
      patterns: cfg.slots.reduce((n, s) => n + s.patterns.length, 0),
      bundleSysctls: Object.fromEntries([...sysctls].map(([n, v]) => [toDots(n), v])),
      events: cfg.events,
      programs: obj.programs().map((p) => p.name),
    };
  },
});
