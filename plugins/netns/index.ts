/*
 * netns: wires a container that has its own network namespace to the host, the fast way the
 * kernel allows: a netkit pair in L3 mode (6.7+), else a veth pair whose host end carries
 * tc/tcx programs (bpf_redirect_peer into containers, bpf_redirect_neigh out of them).
 * See plugins/netns/README.md for the picture, device.ts for the order of steps.
 *
 * Annotation io.taskwire.netns:
 *   "auto"                                                     addresses from the host pool
 *   {"device":"auto|netkit|veth","ip6":"...|auto","ip4":"...|auto","mtu":1500,"services":[8126]}
 */
import { existsSync } from 'node:fs';
import { joinPath } from '../../lib/path';
import { ConfigError, TaskwireError } from '../../lib/errors';
import { parseAnnotationJson } from '../../lib/host/annotation-json';
import { definePlugin } from '../../lib/plugin';
import { validate } from '../../lib/schema';
import { ip4Word, ip6Words, parseIp } from '../../lib/net/addr';
import { AddressRequest, claimAddresses, resolveAddressRequest } from '../../lib/net/task-address';
import type { PairKind } from '../../lib/net/rtnetlink-link';
import { BPF_OBJECT, CGROUP_PROGS, DEVICE_PROGS, EPS_MAP, epKey, epValue, MAX_PORTS, PROG, SVC_CONST, SVC_HAVE4, SVC_HAVE6, svcConfig, userPort } from './codec';

export interface NetnsHostSection {
  enabled: boolean;
  pool?: string;
  allowedPrefixes?: string[];
  devices?: PairKind[];
  mtu?: number;
  maxMtu?: number;
  uplinks?: string[];
  hostServices?: { ip4?: string; ip6?: string; ports?: number[]; annotationPorts?: number[] };
}

export interface NetnsConfig extends AddressRequest {
  device: 'auto' | PairKind;
  mtu: number;
  /** Host service ports this container reaches at its gateway (host's plus annotation's). */
  services: number[];
}

export interface NetnsSummary extends Record<string, unknown> {
  device: PairKind;
  attach: 'netkit' | 'tcx' | 'clsact';
  hostDevice: string;
  ifindex: number;
  ip6: string | null;
  ip4: string | null;
  mtu: number;
  gateway4: string | null;
  gateway6: string | null;
  services: number[];
  programs: string[];
  uplinks: string[];
}

interface RawAnnotation extends AddressRequest {
  device?: 'auto' | PairKind;
  mtu?: number;
  services?: number[];
}

function parseValue(value: string): { raw: RawAnnotation; bareAuto: boolean } {
  const v = value.trim();
  if (v === 'auto') return { raw: { ip6: 'auto', ip4: 'auto' }, bareAuto: true };
  if (!v.startsWith('{')) throw new ConfigError('must be "auto" or a JSON object {"device","ip6","ip4","mtu","services"}');
  const raw = validate<RawAnnotation>('taskwire:netns/annotation', parseAnnotationJson(v), 'value');
  // No address member at all means "whatever the pool has", like bare auto.
  if (raw.ip6 === undefined && raw.ip4 === undefined) return { raw: { ...raw, ip6: 'auto', ip4: 'auto' }, bareAuto: true };
  return { raw, bareAuto: false };
}

export function parseNetns(value: string, host: import('../../lib/host/config').HostConfig, section: NetnsHostSection): NetnsConfig {
  const { raw, bareAuto } = parseValue(value);
  const pool = section.pool ?? 'default';
  const addrs = resolveAddressRequest(raw, bareAuto, host, pool, section.allowedPrefixes);
  const allowedDevices = section.devices ?? ['netkit', 'veth'];
  const device = raw.device ?? 'auto';
  if (device !== 'auto' && !allowedDevices.includes(device)) throw new ConfigError(`device ${device} is not allowed on this host (host config plugins.netns.devices: ${allowedDevices.join(', ')})`);
  const maxMtu = section.maxMtu ?? 9000;
  if (raw.mtu !== undefined && raw.mtu > maxMtu) throw new ConfigError(`mtu ${raw.mtu} is over the host's maxMtu ${maxMtu}`);
  const svc = section.hostServices ?? {};
  for (const p of raw.services ?? [])
    if (!(svc.annotationPorts ?? []).includes(p)) throw new ConfigError(`services: port ${p} is not in the host's hostServices.annotationPorts (${(svc.annotationPorts ?? []).join(', ') || 'none'})`);
  const services = [...new Set([...(svc.ports ?? []), ...(raw.services ?? [])])];
  if (services.length > MAX_PORTS) throw new ConfigError(`services: at most ${MAX_PORTS} ports in all (host's and annotation's), ${services.length} asked`);
  if (services.length && !svc.ip4 && !svc.ip6) throw new ConfigError('services: the host config has no hostServices.ip4/ip6 target');
  return { ...addrs, device, mtu: raw.mtu ?? section.mtu ?? 1500, services };
}

export default definePlugin<NetnsConfig, NetnsHostSection, NetnsSummary>({
  name: 'netns',
  annotation: 'io.taskwire.netns',
  summary: "wires the container's own netns to the host: netkit (L3) or veth with tc/tcx redirects, addresses from the host pool, host services at its gateway",
  hostSchema: 'taskwire:netns/host',

  parse(value, { host, section }) {
    const svc = section.hostServices ?? {};
    if (svc.ip4) parseIp(svc.ip4, 'host config plugins.netns.hostServices.ip4', 4);
    if (svc.ip6) parseIp(svc.ip6, 'host config plugins.netns.hostServices.ip6', 6);
    return parseNetns(value, host, section);
  },

  attach(ctx, cfg) {
    const { section, container, layout } = ctx;
    if (container.netnsId === require('../../lib/container').hostNetnsId())
      throw new ConfigError(`container ${container.id} shares the host's network namespace; io.taskwire.netns needs a netns of its own`);
    const { BpfObject } = require('../../lib/bpf/object') as typeof import('../../lib/bpf/object');
    const { bpfObjectPath } = require('../../lib/assets') as typeof import('../../lib/assets');
    const { ifIndex } = require('../../lib/net/netlink') as typeof import('../../lib/net/netlink');
    const nd = require('../../lib/bpf/netdev') as typeof import('../../lib/bpf/netdev');
    const dev = require('./device') as typeof import('./device');
    const shared = require('./shared') as typeof import('./shared');
    const pool = section.pool ?? 'default';

    // 1. Addresses (journaled as they are claimed; 'netns' is only a label in ipam).
    const addrs = claimAddresses(ctx, cfg, pool, 'netns');

    // 2. The pair: each random name journaled before the pair is made under it (a persistent
    // named netns would keep an unrecorded pair), then again with the ifindex it got, which
    // identifies it exactly from then on.
    const pair = dev.createDevicePair(cfg.device, container.pid, cfg.mtu, section.devices ?? ['netkit', 'veth'], (name, create) => ctx.acquire({ kind: 'netdev', name }, create));
    if (!pair.ifindex) throw new TaskwireError('NETLINK', `host end ${pair.hostName} vanished right after it was created`);
    ctx.acquire({ kind: 'netdev', name: pair.hostName, ifindex: pair.ifindex }, () => undefined);
    ctx.checkDeadline();

    // 3. Programs on the pair, the shared endpoint map, uplinks: all under the netns lock. Our
    // use of the shared pins is journaled first, so releasing it can remove them with the last user.
    ctx.ensurePinDir();
    ctx.acquire({ kind: shared.SHARED_KIND, id: container.id }, () => undefined);
    const tcx = nd.tcxAvailable();
    const attach: NetnsSummary['attach'] = pair.kind === 'netkit' ? 'netkit' : tcx ? 'tcx' : 'clsact';
    const programs: string[] = [];
    const uplinks: string[] = [];
    shared.withSharedState(layout, (epsFd) => {
      const obj = BpfObject.open(bpfObjectPath(BPF_OBJECT), { skipPrograms: CGROUP_PROGS, reuseMaps: epsFd >= 0 ? { [EPS_MAP]: epsFd } : {} });
      try {
        if (epsFd < 0) obj.pinMap(EPS_MAP, shared.epsMapPath(layout));
        const pin = (p: string) => joinPath(ctx.pinDir, `link_${p}`);
        if (attach === 'netkit') {
          nd.attachDeviceLink(obj.program(PROG.nkPrimary), pair.ifindex, nd.BPF_NETKIT_PRIMARY, pin(PROG.nkPrimary));
          nd.attachDeviceLink(obj.program(PROG.fromCtr), pair.ifindex, nd.BPF_NETKIT_PEER, pin(PROG.fromCtr));
          programs.push(`${PROG.nkPrimary}@netkit-primary`, `${PROG.fromCtr}@netkit-peer`);
        } else if (attach === 'tcx') {
          nd.attachTcx(obj.program(PROG.fromCtr), pair.ifindex, 'ingress', pin(PROG.fromCtr));
          programs.push(`${PROG.fromCtr}@tcx-ingress`);
        } else {
          nd.attachClsact(obj.program(PROG.fromCtr), pair.hostName, 'ingress', joinPath(ctx.pinDir, `prog_${PROG.fromCtr}`));
          programs.push(`${PROG.fromCtr}@clsact-ingress`);
        }
        if (tcx)
          for (const up of section.uplinks ?? []) {
            if (!existsSync(shared.uplinkPinPath(layout, up))) nd.attachTcx(obj.program(PROG.toCtr), ifIndex(up), 'ingress', shared.uplinkPinPath(layout, up));
            uplinks.push(up);
          }
        else if (section.uplinks?.length) ctx.log.warn({ uplinks: section.uplinks }, 'no tcx on this kernel: uplink traffic to containers takes the host stack');
        const eps = obj.map(EPS_MAP);
        for (const address of [addrs.ip6, addrs.ip4]) {
          if (!address) continue;
          const key = Buffer.alloc(epKey.size);
          epKey.write(key, 0, { addr: address });
          ctx.acquire({ kind: 'map-entry', path: shared.epsMapPath(layout), key: key.toString('hex') }, () =>
            eps.update(epKey, { addr: address }, epValue, { ifindex: pair.ifindex, flags: 0 }),
          );
        }
      } finally {
        obj.close();
      }
    });
    ctx.checkDeadline();

    // 4. Host end up with its routes, then the container side.
    dev.configureHostSide(pair);
    dev.bringUpWithRoutes(pair, addrs);
    dev.configureContainerSide(pair, container.netnsPath, addrs, pair.kind === 'veth' ? dev.hostSideMac(pair) : null);
    ctx.checkDeadline();

    // 5. Host services connector: gateway:port → host address, in the container's cgroup.
    const svc = section.hostServices ?? {};
    const ports = cfg.services;
    if (ports.length) {
      const flags = (svc.ip4 && addrs.ip4 ? SVC_HAVE4 : 0) | (svc.ip6 && addrs.ip6 ? SVC_HAVE6 : 0);
      const list = Array.from({ length: MAX_PORTS }, (_, i) => (i < ports.length ? userPort(ports[i]) : 0));
      const obj = ctx.loadIntoCgroup(BPF_OBJECT, {
        skipPrograms: DEVICE_PROGS,
        rodata: {
          [SVC_CONST]: {
            codec: svcConfig,
            value: {
              flags,
              gw4: ip4Word(dev.GATEWAY4),
              target4: svc.ip4 ? ip4Word(svc.ip4) : 0,
              gw6: ip6Words(dev.GATEWAY6),
              target6: svc.ip6 ? ip6Words(svc.ip6) : [0, 0, 0, 0],
              ports: list,
            },
          },
        },
      });
      programs.push(...obj.programs().map((p) => `${p.name}@cgroup`));
    }

    return {
      device: pair.kind,
      attach,
      hostDevice: pair.hostName,
      ifindex: pair.ifindex,
      ...addrs,
      mtu: cfg.mtu,
      gateway4: addrs.ip4 ? dev.GATEWAY4 : null,
      gateway6: addrs.ip6 ? dev.GATEWAY6 : null,
      services: ports,
      programs,
      uplinks,
    };
  },
});
