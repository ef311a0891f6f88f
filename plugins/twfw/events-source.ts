/*
 * twfw log events for `taskwire monitor`. Containers are those with a twfw state file; the rule
 * labels come from that file and change with each `fw apply` / `fault`, so the decoder is rebuilt
 * from the current state on every scan.
 */
import { defineEventSource } from '../../lib/events';
import { PLUGIN, readState } from './apply';
import { decodeEvent, eventsPath, formatEvent, FwEvent, twfwContainers } from './ops';

export type TwfwMonitorEvent = FwEvent & { plugin: 'twfw'; kind: 'log' };

export default defineEventSource<TwfwMonitorEvent>({
  plugin: PLUGIN,
  containers: twfwContainers,
  ringPath: eventsPath,
  decoder(l, id) {
    const st = readState(l, id);
    if (!st) return undefined;
    return (data) => {
      const { time, container, ...rest } = decodeEvent(data, id, st.labels);
      return { time, container, plugin: 'twfw', kind: 'log', ...rest };
    };
  },
  format: formatEvent,
});
