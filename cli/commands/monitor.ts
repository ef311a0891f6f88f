/*
 * `taskwire monitor [ID] [--plugin NAME] [--json]`: one stream of the events every plugin logs to
 * its pinned ring buffers (plugins/event-sources.ts: twfw log rules, sysctl denials), decoded.
 * Without an id it follows every container of every source, picking up new ones as they start.
 * Reading never blocks the event loop for long: every ring is drained, then a short timer, so
 * Ctrl-C is immediate. Events are in order within one ring, not across rings.
 */
import { Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import { RingBuffer } from '../../lib/bpf/ringbuf';
import { oneLine, TaskwireError } from '../../lib/errors';
import type { EventSource, MonitorEvent } from '../../lib/events';
import { eventSources } from '../../plugins/event-sources';
import { cliContext } from '../context';

interface Reader {
  source: EventSource;
  id: string;
  path: string;
  ring: RingBuffer;
  decode: (data: Buffer) => MonitorEvent;
}

export function registerMonitor(program: Command): void {
  program
    .command('monitor')
    .description('stream plugin events, decoded: twfw log rules (direction, verdict, 5-tuple, rule) and sysctl denials (op, name, value, reason)')
    .argument('[id]', 'one container (default: all)')
    .addOption(new Option('--plugin <name>', 'only this plugin\'s events').choices(eventSources.map((s) => s.plugin)))
    .option('--json', 'one JSON object per line, each with time, container, plugin, kind')
    .option('--count <n>', 'exit after n events', Number)
    .option('--timeout <seconds>', 'exit after this long', Number)
    .action(async (id: string | undefined, o: { plugin?: string; json?: boolean; count?: number; timeout?: number }, cmd: Command) => {
      const { layout } = cliContext(cmd);
      const sources = eventSources.filter((s) => !o.plugin || s.plugin === o.plugin).map((s) => s.load());
      const readers = new Map<string, Reader>();
      let seen = 0;
      let done = false;
      const finish = () => (done = true);
      process.once('SIGINT', finish);
      process.once('SIGTERM', finish);
      const deadline = o.timeout ? Date.now() + o.timeout * 1000 : Infinity;

      const emit = (r: Reader, data: Buffer) => {
        if (done) return;
        const e = r.decode(data);
        process.stdout.write(o.json ? `${JSON.stringify(e)}\n` : `${r.source.format(e)}\n`);
        if (o.count && ++seen >= o.count) done = true;
      };

      // A container whose state cannot be decoded (a damaged file) is named once and skipped:
      // the others' events go on. With an id, the scan's own error says it instead.
      const unreadable = new Map<string, string>(); // key → why
      const decoderOf = (source: EventSource, c: string, key: string) => {
        try {
          const d = source.decoder(layout, c);
          unreadable.delete(key);
          return d;
        } catch (err) {
          if (!(err instanceof TaskwireError)) throw err;
          if (!id && !unreadable.has(key)) process.stderr.write(`taskwire: ${c}: ${source.plugin} events skipped: ${oneLine(err)}\n`);
          unreadable.set(key, oneLine(err));
          return undefined;
        }
      };

      const open = (source: EventSource, c: string) => {
        const key = `${source.plugin}\0${c}`;
        const path = source.ringPath(layout, c);
        const decode = existsSync(path) ? decoderOf(source, c, key) : undefined;
        const cur = readers.get(key);
        if (cur) {
          if (decode) cur.decode = decode;
          return key;
        }
        if (!decode) return undefined;
        const r = { source, id: c, path, decode } as Reader;
        try {
          r.ring = new RingBuffer(path, (data) => emit(r, data));
        } catch (err) {
          // The container went away between the scan and the open: nothing to follow.
          if (existsSync(path)) throw err;
          return undefined;
        }
        readers.set(key, r);
        return key;
      };

      const scan = () => {
        const live = new Set<string>();
        for (const s of sources)
          for (const c of id ? [id] : s.containers(layout)) {
            const key = open(s, c);
            if (key) live.add(key);
          }
        for (const [key, r] of readers)
          if (!live.has(key) || !existsSync(r.path)) {
            r.ring.close();
            readers.delete(key);
          }
        if (id && !readers.size && unreadable.size) throw new Error(`container ${id}: ${[...unreadable.values()].join('; ')}`);
        if (id && !readers.size)
          throw new Error(`container ${id} has no ${sources.map((s) => s.plugin).join(' or ')} event ring (not running, or no plugin logs events for it)`);
      };

      scan();
      let lastScan = Date.now();
      while (!done && Date.now() < deadline) {
        for (const r of readers.values()) if (!done) r.ring.consume();
        if (Date.now() - lastScan > 1000) {
          scan();
          lastScan = Date.now();
        }
        await new Promise((res) => setTimeout(res, 50));
      }
      for (const r of readers.values()) r.ring.close();
    });
}
