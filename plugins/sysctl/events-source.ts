/*
 * Denied sysctl accesses for `taskwire monitor`: containers are those whose pin dir holds the
 * events ring (events on by host, section or policy). JSON has no 64-bit integers, so the cgroup
 * id travels as a decimal string and the kernel's monotonic time as wall-clock ISO time.
 */
import { joinPath } from '../../lib/path';
import { containersWithPin, defineEventSource, monotonicToIso } from '../../lib/events';
import { pluginPinDir } from '../../lib/state/paths';
import { decodeSysctlEvent, EVENTS_PIN, formatSysctlEvent, PLUGIN_DIR, SysctlEvent } from './events';

export type SysctlMonitorEvent = Omit<SysctlEvent, 'kind' | 'monotonicNs' | 'cgroupId'> & {
  time: string;
  container: string;
  plugin: 'sysctl';
  kind: 'denied';
  cgroupId: string;
};

export default defineEventSource<SysctlMonitorEvent>({
  plugin: PLUGIN_DIR,
  containers: (l) => containersWithPin(l, PLUGIN_DIR, EVENTS_PIN),
  ringPath: (l, id) => joinPath(pluginPinDir(l, id, PLUGIN_DIR), EVENTS_PIN),
  decoder: (_l, id) => (data) => {
    const { kind: _, monotonicNs, cgroupId, ...rest } = decodeSysctlEvent(data);
    return { time: monotonicToIso(monotonicNs), container: id, plugin: 'sysctl', kind: 'denied', ...rest, cgroupId: cgroupId.toString() };
  },
  format: (e) => `${e.time} ${e.container} ${formatSysctlEvent(e)}`,
});
