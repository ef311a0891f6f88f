/*
 * `taskwire ls --ports`: who listens where, from ip-per-task's post-bind map (tw_ipt_binds,
 * one entry per bound socket of the task, kept exact by post_bind and sock_release), and, for
 * containers with localhost-redirect, the loopback address through which the task reaches it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap } from '../../lib/bpf/map';
import type { ContainerView } from '../../lib/inventory';
import { pluginPinDir, type Layout } from '../../lib/state/paths';
import { bindKey, bindValue, BINDS_MAP } from '../../plugins/ip-per-task/codec';

export interface PortView {
  container: string;
  protocol: string;
  address: string;
  port: number;
  /** The loopback address a client of the same task uses for it, when localhost-redirect is on. */
  localhost: string | null;
}

const PROTOCOLS: Record<number, string> = { 6: 'tcp', 17: 'udp' };

function loopbackFor(c: ContainerView, address: string): string | null {
  const lr = c.plugins.find((p) => p.name === 'localhost-redirect')?.summary.redirects as Record<string, string> | undefined;
  const hit = Object.entries(lr ?? {}).find(([, to]) => to === address)?.[0];
  return hit === undefined ? null : hit.includes(':') ? hit : '127.0.0.1';
}

export function listPorts(layout: Layout, containers: ContainerView[]): PortView[] {
  const out: PortView[] = [];
  for (const c of containers) {
    const path = join(pluginPinDir(layout, c.id, 'ip-per-task'), `map_${BINDS_MAP}`);
    if (!existsSync(path)) continue;
    const map = BpfMap.openPinned(path);
    try {
      for (const [, b] of map.entries(bindKey, bindValue))
        out.push({ container: c.id, protocol: PROTOCOLS[b.protocol] ?? String(b.protocol), address: b.addr, port: b.port, localhost: loopbackFor(c, b.addr) });
    } finally {
      map.close();
    }
  }
  return out.sort((a, b) => a.container.localeCompare(b.container) || a.port - b.port || a.protocol.localeCompare(b.protocol) || a.address.localeCompare(b.address));
}

const hostPort = (addr: string, port: number) => (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);

export function portRows(ports: PortView[]): string[][] {
  return ports.map((p) => [p.container, p.protocol, hostPort(p.address, p.port), p.localhost ? hostPort(p.localhost, p.port) : '-']);
}

export const PORT_HEADER = ['CONTAINER', 'PROTO', 'BOUND', 'LOCALHOST'];
