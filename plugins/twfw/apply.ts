/*
 * Putting a compiled policy into the kernel, first at createRuntime and then live.
 *
 * Each policy is a fresh load of bpf/twfw.bpf.o whose per-policy maps (tries, candidates, rules,
 * counters) are filled *before* any program sees them. The first time, the core attaches the
 * programs through pinned links; afterwards `fw apply` / `fault` load a new generation and swap
 * each pinned link's program with bpf_link_update. Per hook that swap is atomic: a packet is
 * judged by the old policy or by the new one, never by neither and never by a half-built one,
 * and the old generation's maps live until its last program is gone. Maps holding state across
 * generations (events ring, log bucket, socket marks, the shared sets) are reused by fd.
 *
 * What `fw stats` and `monitor` need besides the maps (rule labels, the policy source, faults,
 * the generation) is the state file <runDir>/twfw/<id>.json, replaced atomically after a swap.
 */
import { renameSync, rmSync } from 'node:fs';
import { basename } from 'node:path';
import { joinPath } from '../../lib/path';
import { bpfObjectPath } from '../../lib/assets';
import { BpfObject, OpenOptions } from '../../lib/bpf/object';
import { BpfMap } from '../../lib/bpf/map';
import { helperAvailable } from '../../lib/bpf/libbpf';
import { PinnedLink } from '../../lib/bpf/cgroup';
import { errnoName, TaskwireError } from '../../lib/errors';
import { readStateFile, writeFileAtomic } from '../../lib/state/atomic';
import { withFileLock } from '../../lib/state/lock';
import { encodeId, Layout, pluginPinDir } from '../../lib/state/paths';
import { BPF_OBJECT, config, F_RETVAL, MAPS, MAX_SET_RULES, PROGRAMS } from './codec';
import { CompiledPolicy } from './compile';
import type { PolicySpec, RuleSpec } from './policy';
import { prepareSets } from './sets';

const BPF_PROG_TYPE_CGROUP_SOCK_ADDR = 18;
const BPF_FUNC_set_retval = 187;

export interface TwfwSection {
  enabled: boolean;
  inline: boolean;
  policies?: string[];
  maxRules: number;
  maxPrefixes: number;
  maxEntries: number;
  logRate: number;
  logBurst: number;
  sets?: Record<string, string[]>;
}

export interface TwfwState {
  version: 1;
  id: string;
  generation: number;
  appliedAt: string;
  source: string;
  policy: PolicySpec;
  faults: RuleSpec[];
  /** By slot. */
  labels: string[];
  entries: { remote: number; local: number; match: number };
}

export const PLUGIN = 'twfw';
/** Maps pinned per container: the kept ones, plus this generation's counters and rules. */
const KEPT_MAPS = [MAPS.events, MAPS.bucket, MAPS.socks];
const GEN_MAPS = [MAPS.cnt, MAPS.rules];

export const statePath = (l: Layout, id: string) => joinPath(l.runDir, 'twfw', `${encodeId(id)}.json`);
export const lockPath = (l: Layout, id: string) => joinPath(l.runDir, 'twfw', `${encodeId(id)}.lock`);

/** The container's live policy state; undefined when it has none, an error when the file is damaged. */
export function readState(l: Layout, id: string): TwfwState | undefined {
  const path = statePath(l, id);
  const shaped = (v: unknown): v is TwfwState => {
    const s = v as Partial<TwfwState> | null;
    return typeof s === 'object' && s !== null && s.id === id && typeof s.generation === 'number' && Array.isArray(s.labels) && Array.isArray(s.faults);
  };
  return readStateFile(path, shaped, (detail) => new TaskwireError('STATE', `twfw state ${path} is damaged (${detail || 'not a twfw state'}): live changes to container ${id} are refused until it is repaired; the firewall in the kernel is unchanged`));
}

export function writeState(l: Layout, s: TwfwState): void {
  writeFileAtomic(statePath(l, s.id), JSON.stringify(s));
}

/** Object options for one generation: constants, map sizes, reused maps. */
function openOptions(c: CompiledPolicy, section: TwfwSection, bits: Record<string, number>, reuse: Record<string, number>): OpenOptions {
  const set = Array.from({ length: MAX_SET_RULES }, (_, i) => {
    const r = c.setRules[i];
    return r ? { slot: r.slot, dir: r.dir, proto: r.proto, bit: 1n << BigInt(bits[r.set]) } : { slot: 0, dir: 0, proto: 0, bit: 0n };
  });
  const retval = helperAvailable(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_set_retval);
  return {
    rodata: {
      tw_fw_cfg: {
        codec: config,
        value: { flags: c.flags | (retval ? F_RETVAL : 0), nset: c.setRules.length, log_rate: BigInt(section.logRate), log_burst: BigInt(section.logBurst), set },
      },
    },
    maxEntries: {
      [MAPS.raddr]: Math.max(1, c.raddr.count),
      [MAPS.laddr]: Math.max(1, c.laddr.count),
      [MAPS.match]: Math.max(1, c.match.count),
      [MAPS.rules]: c.slots,
      [MAPS.cnt]: c.slots,
    },
    reuseMaps: reuse,
  };
}

/** Fills a generation's maps; the rules array last, defaults included (zero = drop meanwhile). */
export function fillMaps(obj: BpfObject, c: CompiledPolicy): void {
  obj.map(MAPS.raddr).updateBatch(c.raddr.keys, c.raddr.values, c.raddr.count);
  obj.map(MAPS.laddr).updateBatch(c.laddr.keys, c.laddr.values, c.laddr.count);
  obj.map(MAPS.match).updateBatch(c.match.keys, c.match.values, c.match.count);
  const idx = Buffer.alloc(4 * c.slots);
  for (let i = 0; i < c.slots; i++) idx.writeUInt32LE(i, 4 * i);
  obj.map(MAPS.rules).updateBatch(idx, c.rules, c.slots);
}

export function newState(id: string, source: string, policy: PolicySpec, faults: RuleSpec[], c: CompiledPolicy, generation: number): TwfwState {
  return {
    version: 1,
    id,
    generation,
    appliedAt: new Date().toISOString(),
    source,
    policy,
    faults,
    labels: c.labels,
    entries: { remote: c.raddr.count, local: c.laddr.count, match: c.match.count },
  };
}

/** Options for the first generation, loaded and attached by the core (ctx.loadIntoCgroup). */
export function firstGeneration(l: Layout, section: TwfwSection, c: CompiledPolicy) {
  const sets = prepareSets(l, section.sets ?? {}, [...new Set(c.setRules.map((r) => r.set))]);
  const opts = openOptions(c, section, sets.bits, { [MAPS.setmem]: sets.map.fd });
  return {
    opts: { ...opts, pinMaps: [...KEPT_MAPS, ...GEN_MAPS], beforeAttach: (obj: BpfObject) => fillMaps(obj, c) },
    close: () => sets.map.close(),
  };
}

/** Every pinned link held open with the program it ran before this apply: the way back. */
function holdLinks(pinDir: string, held: PinnedLink[]): void {
  for (const p of PROGRAMS) held.push(PinnedLink.open(joinPath(pinDir, `link_${p}`)));
}

/**
 * Replaces a running container's policy. `change` gets the current state and returns the new
 * policy, faults and compiled form. All or nothing: the new generation is loaded, filled and its
 * maps pinned under temporary names before any link moves; if a link refuses the new program,
 * the links already moved go back to the old programs, the temporary pins go and the state file
 * is untouched, so the container never runs a mix of two generations for longer than the swap.
 */
export function applyLive(
  l: Layout,
  section: TwfwSection,
  id: string,
  change: (cur: TwfwState) => { source: string; policy: PolicySpec; faults: RuleSpec[]; compiled: CompiledPolicy },
): TwfwState {
  return withFileLock(lockPath(l, id), () => {
    const cur = readState(l, id);
    if (!cur) throw new TaskwireError('STATE', `container ${id} has no twfw policy (not running with io.taskwire.twfw?)`);
    const next = change(cur);
    const c = next.compiled;
    const pinDir = pluginPinDir(l, id, PLUGIN);
    const tmpPin = (m: string) => joinPath(pinDir, `new_${m}`);
    const sets = prepareSets(l, section.sets ?? {}, [...new Set(c.setRules.map((r) => r.set))]);
    const kept = KEPT_MAPS.map((m) => BpfMap.openPinned(joinPath(pinDir, `map_${m}`)));
    const oldGen = GEN_MAPS.map((m) => BpfMap.openPinned(joinPath(pinDir, `map_${m}`)));
    const held: PinnedLink[] = [];
    const switched: PinnedLink[] = [];
    const renamed: number[] = [];
    let obj: BpfObject | undefined;
    try {
      const reuse: Record<string, number> = { [MAPS.setmem]: sets.map.fd };
      KEPT_MAPS.forEach((m, i) => (reuse[m] = kept[i].fd));
      obj = BpfObject.open(bpfObjectPath(BPF_OBJECT), openOptions(c, section, sets.bits, reuse));
      fillMaps(obj, c);
      for (const m of GEN_MAPS) {
        rmSync(tmpPin(m), { force: true });
        obj.pinMap(m, tmpPin(m));
      }
      holdLinks(pinDir, held);
      try {
        for (const h of held) {
          liveApplyHooks.beforeLinkUpdate?.(h.path);
          h.update(obj.program(basename(h.path).slice(5)).fd);
          switched.push(h);
        }
        // Publish the new generation's counters and rules over the old pins (same directory).
        GEN_MAPS.forEach((m, i) => {
          renameSync(tmpPin(m), joinPath(pinDir, `map_${m}`));
          renamed.push(i);
        });
        const state = newState(id, next.source, next.policy, next.faults, c, cur.generation + 1);
        writeState(l, state);
        return state;
      } catch (err) {
        throw rollBack(id, cur.generation, pinDir, err, switched, renamed.map((i) => [GEN_MAPS[i], oldGen[i]] as const));
      }
    } finally {
      for (const m of GEN_MAPS) rmSync(tmpPin(m), { force: true });
      for (const h of held) h.close();
      obj?.close();
      kept.forEach((m) => m.close());
      oldGen.forEach((m) => m.close());
      sets.map.close();
    }
  });
}

/** Test seam: lets a test make one link update fail after others succeeded. */
export const liveApplyHooks: { beforeLinkUpdate?: (linkPath: string) => void } = {};

/** Puts the previous generation back after a failed swap; returns the error to throw. */
function rollBack(id: string, generation: number, pinDir: string, err: unknown, switched: PinnedLink[], renamed: (readonly [string, BpfMap])[]): Error {
  const failed: string[] = [];
  for (const h of [...switched].reverse()) {
    const errno = h.restore();
    if (errno) failed.push(`${basename(h.path)} (${errnoName(errno)})`);
  }
  for (const [m, old] of renamed) {
    const tmp = joinPath(pinDir, `old_${m}`);
    try {
      rmSync(tmp, { force: true });
      old.pin(tmp);
      renameSync(tmp, joinPath(pinDir, `map_${m}`));
    } catch {
      failed.push(`map_${m}`);
    }
  }
  const why = (err as { errnoName?: string }).errnoName === 'ENOLINK' ? `container ${id} is gone (its cgroup links are defunct)` : (err as Error).message;
  const tail = failed.length
    ? `and putting generation ${generation} back failed for ${failed.join(', ')}: the container may run a mix, apply again or restart it`
    : `generation ${generation} stays in force on every hook`;
  return new TaskwireError('STATE', `live policy apply for ${id} failed: ${why}; ${tail}`, { cause: err });
}
