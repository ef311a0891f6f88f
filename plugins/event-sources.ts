/*
 * Plugins whose events `taskwire monitor` streams (lib/events.ts). One line per plugin; loaded
 * lazily, as the plugin registry is, so a command that monitors nothing pays for none of them.
 */
import type { EventSource } from '../lib/events';

export interface EventSourceEntry {
  plugin: string;
  load: () => EventSource<any>;
}

export const eventSources: EventSourceEntry[] = [
  { plugin: 'twfw', load: () => require('./twfw/events-source').default },
  { plugin: 'sysctl', load: () => require('./sysctl/events-source').default },
];
