import type { Command } from 'commander';
import { listContainers } from '../../lib/inventory';
import { containerObjects, isAttached } from '../../lib/introspect';
import type { Layout } from '../../lib/state/paths';
import type { DamagedRecord } from '../../lib/state/record';
import { ipJson } from '../../lib/net/iproute';
import { cliContext, printJson, printTable, warnDamaged } from '../context';
import { listPorts, portRows, PORT_HEADER } from './ls-ports';

function addresses(plugins: { summary: Record<string, unknown> }[]): string {
  const out: string[] = [];
  for (const p of plugins) for (const k of ['ip6', 'ip4']) if (typeof p.summary[k] === 'string') out.push(p.summary[k] as string);
  return out.join(',') || '-';
}

/*
 * What kind of device a plugin put the container on, as the kernel says, or 'gone'. Asked over
 * rtnetlink (ip), not /sys/class/net: sysfs shows the netns that mounted it, which need not be ours.
 */
interface HostLink {
  ifname: string;
  link_type?: string;
  linkinfo?: { info_kind?: string };
}
let hostLinks: Map<string, HostLink> | undefined;
function deviceKind(dev: string): string {
  // One `ip` for the whole listing, however many containers.
  hostLinks ??= new Map(ipJson<HostLink[]>(['-d', 'link', 'show']).map((l) => [l.ifname, l]));
  const link = hostLinks.get(dev);
  if (!link) return 'gone';
  return link.link_type === 'loopback' ? 'loopback' : (link.linkinfo?.info_kind ?? 'device');
}

/*
 * Summaries name their device in one of two ways: `device` is the device itself (ip-per-task:
 * "lo"), or, for netns, `hostDevice` is the host end of the pair (its peer, eth0, lives in the
 * container's netns) while `device` is the kind (veth/netkit) and `attach` how the programs sit
 * on it (tcx, clsact, netkit links).
 */
function devices(plugins: { summary: Record<string, unknown> }[]): { device: string; kind: string; attach?: string }[] {
  return plugins.flatMap((p) => {
    const s = p.summary;
    if (typeof s.hostDevice === 'string') {
      const seen = deviceKind(s.hostDevice);
      const kind = seen === 'gone' ? 'gone' : typeof s.device === 'string' ? s.device : seen;
      return [{ device: s.hostDevice, kind, ...(typeof s.attach === 'string' ? { attach: s.attach } : {}) }];
    }
    if (typeof s.device !== 'string') return [];
    const said = s.deviceKind ?? s.kind;
    return [{ device: s.device, kind: typeof said === 'string' ? said : deviceKind(s.device) }];
  });
}

/** "twab12cd34(veth/tcx)", "twab12cd34(netkit)" (netkit's attach mode is its own links), "lo(loopback)". */
const deviceLabel = (d: { device: string; kind: string; attach?: string }) => `${d.device}(${d.kind}${d.attach && d.attach !== d.kind && d.kind !== 'gone' ? `/${d.attach}` : ''})`;

/* Programs as the kernel sees them through the pinned links: attached, or defunct (target gone). */
function kernelPrograms(layout: Layout, id: string) {
  return containerObjects(layout, id)
    .filter((o) => o.kind === 'link' || o.error)
    .map((o) => ({ pin: o.rel, name: o.program ?? null, type: o.prog?.type ?? null, attachType: o.link?.attachType ?? null, target: o.link?.target ?? null, attached: o.link ? isAttached(o.link) : false, error: o.error }));
}

export function registerLs(program: Command): void {
  program
    .command('ls')
    .description('list the containers taskwire manages: plugins, addresses, devices, programs attached as the kernel sees them')
    .option('--json', 'machine-readable output')
    .option('--ports', 'who listens where in each container (ip-per-task bind map) and its localhost address')
    .action((opts: { json?: boolean; ports?: boolean }, cmd: Command) => {
      const { layout } = cliContext(cmd);
      const damaged: DamagedRecord[] = [];
      const containers = listContainers(layout, damaged);
      warnDamaged(cmd, damaged, 'its container is not listed');
      if (opts.ports) {
        const ports = listPorts(containers);
        return opts.json ? printJson(ports) : printTable(PORT_HEADER, portRows(ports));
      }
      const list = containers.map((c) => ({ ...c, devices: devices(c.plugins), programs: kernelPrograms(layout, c.id) }));
      if (opts.json) return printJson(list);
      printTable(
        ['CONTAINER', 'STATE', 'PLUGINS', 'ADDRESSES', 'DEVICE', 'ATTACHED'],
        list.map((c) => [
          c.id,
          !c.complete ? 'partial' : c.state,
          c.plugins.map((p) => p.name).join(',') || '-',
          addresses(c.plugins),
          c.devices.map(deviceLabel).join(',') || '-',
          `${c.programs.filter((p) => p.attached).length}/${c.programs.length}`,
        ]),
      );
    });
}
