/*
 * `taskwire ls --ports`: who listens where, from ip-per-task's host-wide post-bind map
 * (tw_ipt_binds, one entry per bound socket, kept exact by post_bind and sock_release, tagged
 * with the container's cgroup id), and, for containers with localhost-redirect, the loopback
 * address through which the task reaches it.
 */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { BpfMap } from '../../lib/bpf/map';
import { sharedMapPath } from '../../lib/bpf/shared';
import type { ContainerView } from '../../lib/inventory';
import { bindKey, bindValue, BINDS_MAP, BPF_OBJECT } from '../../plugins/ip-per-task/codec';

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

export function listPorts(containers: ContainerView[]): PortView[] {
  const out: PortView[] = [];
  // Containers by the loaded ip-per-task object they are linked from (one, but for containers
  // started before an upgrade), then by cgroup id.
  const bySet = new Map<string, Map<bigint, ContainerView>>();
  for (const c of containers)
    for (const dir of c.sharedObjects)
      if (basename(dir).startsWith(`${BPF_OBJECT}-`)) {
        const byCgroup = bySet.get(dir) ?? new Map<bigint, ContainerView>();
        bySet.set(dir, byCgroup.set(BigInt(c.cgroupId), c));
      }
  for (const [dir, byCgroup] of bySet) {
    const path = sharedMapPath(dir, BINDS_MAP);
    if (!existsSync(path)) continue;
    const map = BpfMap.openPinned(path);
    try {
      for (const [, b] of map.entries(bindKey, bindValue)) {
        const c = byCgroup.get(b.cgroup_id);
        if (c) out.push({ container: c.id, protocol: PROTOCOLS[b.protocol] ?? String(b.protocol), address: b.addr, port: b.port, localhost: loopbackFor(c, b.addr) });
      }
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
