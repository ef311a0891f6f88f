/*
 * The plugin registry. Order here is execution order; a plugin comes after those it requires
 * (checked by test/unit/registry.test.ts). Entries load lazily so a hook only pays for the
 * plugins a container enables.
 */
import type { PluginDef } from '../lib/plugin';
import type { ReleaseContext } from '../lib/resources';
import type { Resource } from '../lib/state/record';

export interface RegistryEntry {
  name: string;
  load: () => PluginDef<any, any, any>;
}

export const registry: RegistryEntry[] = [
  { name: 'ip-per-task', load: () => require('./ip-per-task').default },
  { name: 'netns', load: () => require('./netns').default },
  { name: 'localhost-redirect', load: () => require('./localhost-redirect').default },
  { name: 'twfw', load: () => require('./twfw').default },
  { name: 'sysctl', load: () => require('./sysctl').default },
];

export const ANNOTATION_PREFIX = 'io.taskwire.';

/** The container's io.taskwire.* annotation keys. Here, not in lib/pipeline.ts: a hook for a container without any decides so before it loads the pipeline and the native layer. */
export function taskwireAnnotations(annotations: Record<string, string> | undefined): string[] {
  return Object.keys(annotations ?? {}).filter((k) => k.startsWith(ANNOTATION_PREFIX));
}

/**
 * Resource kinds that only a plugin knows how to undo, by kind, loaded when a record names one
 * (poststop and gc run without loading plugins). The core's own kinds are in lib/resources.ts.
 */
export const pluginResourceKinds: Record<string, () => (r: Resource, ctx: ReleaseContext) => void> = {
  'netns-shared': () => require('./netns/shared').releaseSharedResource,
};
