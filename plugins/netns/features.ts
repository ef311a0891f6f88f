/*
 * What this kernel offers the netns plugin and what will be used instead, for `taskwire doctor`.
 * netkit is probed for real (a throwaway pair in the host netns, deleted at once: the kernel
 * config may not be readable and CONFIG_NETKIT is a bool, so no module to look for); tcx and the
 * redirect helpers are probed without changing anything (lib/bpf/netdev.ts).
 */
import { SyscallError } from '../../lib/errors';
import { probeDeviceBpf } from '../../lib/bpf/netdev';
import { createPair, deleteLink } from '../../lib/net/rtnetlink-link';
import { linkIndex } from '../../lib/net/netlink';
import { randomName } from './device';

export interface NetnsFeatures {
  netkit: boolean;
  tcx: boolean;
  redirectPeer: boolean;
  redirectNeigh: boolean;
  /** What io.taskwire.netns {"device":"auto"} gets here. */
  device: 'netkit' | 'veth';
  /** How the programs attach. */
  attach: 'netkit' | 'tcx' | 'clsact';
  /** One line per fallback, for a person. */
  notes: string[];
}

function probeNetkit(): boolean {
  const hostName = randomName();
  try {
    createPair({ kind: 'netkit', hostName, peerName: `${hostName}p`, peerNetnsPid: process.pid });
  } catch (err) {
    if (err instanceof SyscallError && ['EOPNOTSUPP', 'ENOTSUPP'].includes(err.errnoName)) return false;
    throw err;
  }
  deleteLink(hostName, linkIndex(hostName));
  return true;
}

export function netnsFeatures(): NetnsFeatures {
  const netkit = probeNetkit();
  const { tcx, redirectPeer, redirectNeigh } = probeDeviceBpf();
  const notes: string[] = [];
  if (!netkit) notes.push('no netkit (needs 6.7+ and CONFIG_NETKIT): veth pairs with BPF redirects instead');
  if (!netkit && !tcx) notes.push('no tcx (needs 6.6+): programs attach through clsact + cls_bpf (tc), and uplinks get no redirect program');
  if (!redirectPeer) notes.push('no bpf_redirect_peer (needs 5.10+): traffic into containers takes the host stack');
  if (!redirectNeigh) notes.push('no bpf_redirect_neigh (needs 5.10+): traffic out of containers takes the host stack');
  return { netkit, tcx, redirectPeer, redirectNeigh, device: netkit ? 'netkit' : 'veth', attach: netkit ? 'netkit' : tcx ? 'tcx' : 'clsact', notes };
}
