/* What every subcommand needs: the host config, the layout, a logger, output helpers. */
import type { Command } from 'commander';
import { configPath, HostConfig, loadHostConfig } from '../lib/host/config';
import { openLog, Logger } from '../lib/log';
import type { Layout } from '../lib/state/paths';
import type { DamagedRecord } from '../lib/state/record';

export interface CliContext {
  host: HostConfig;
  layout: Layout;
  log: Logger;
}

export function cliContext(cmd: Command): CliContext {
  const opts = cmd.optsWithGlobals() as { config?: string };
  const host = loadHostConfig(configPath(opts.config));
  return { host, layout: { bpffs: host.bpffs, runDir: host.runDir }, log: openLog(host.logFile, host.logLevel, { cli: cmd.name() }) };
}

/** One stderr line per record a listing skipped because it is damaged (lib/state/record.ts). */
export function warnDamaged(cmd: Command, damaged: DamagedRecord[], consequence: string): void {
  for (const d of damaged) process.stderr.write(`taskwire ${cmd.name()}: ${d.path}: ${d.reason === 'damaged' ? 'damaged' : 'unreadable'} record (${d.error}); ${consequence}\n`);
}

export function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? x.toString() : x), 2)}\n`);
}

/** A plain aligned table; no colours unless stdout is a terminal (util.styleText honours NO_COLOR). */
export function printTable(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(widths[i]))).join('  ').trimEnd();
  process.stdout.write(`${line(head)}\n`);
  for (const r of rows) process.stdout.write(`${line(r)}\n`);
}
