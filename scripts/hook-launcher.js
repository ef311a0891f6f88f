#!/usr/bin/env node
/*
 * dist/taskwire-hook.js: runs the hook bundle (dist/taskwire-hook-main.js) from a V8 code cache.
 *
 * Why not Node's own compile cache (module.enableCompileCache): it saves the code right after
 * compiling, before anything ran, so every function a hook calls is still compiled lazily on
 * every run. A cache made at exit (script.createCachedData() after the work) holds the compiled
 * code of everything the stage ran; with it the hook's own work took about 40% less time (see
 * bench/README.md). A createRuntime runs other code than a poststop, so each stage has its file.
 *
 * The cache sits next to the bundle (root-owned like it: a cache in a world-writable directory
 * could be planted by another user and would run as root). V8 rejects a cache made by another
 * V8 or with other flags; the file name also carries the bundle's inode, size and mtime, so a
 * rebuilt bundle never meets an old cache. If the directory is not writable, the hook simply
 * runs without a cache.
 */
'use strict';
const fs = require('node:fs');
const vm = require('node:vm');

// Paths by concatenation (__dirname is absolute and normal): path.join's normalizing loop runs
// interpreted this early, and costs more than the rest of this file (lib/path.ts).
const bundle = `${__dirname}/taskwire-hook-main.js`;
const cacheDir = `${__dirname}/.cache`;
// The stage is argv[2] when the runtime calls us properly; anything else shares one file.
const stage = /^(createRuntime|prestart|poststop)$/.test(process.argv[2] || '') ? process.argv[2] : 'other';

// The bundle is read through one descriptor (its identity from fstat, no second path lookup)
// into a buffer that the code cache then reuses: a fresh 300 KB buffer costs its page faults.
const fd = fs.openSync(bundle, 'r');
const st = fs.fstatSync(fd);
let buffer = Buffer.allocUnsafeSlow(st.size);
const readAll = (from, size) => {
  let got = 0;
  for (let n; got < size && (n = fs.readSync(from, buffer, got, size - got, got)) > 0; ) got += n;
  return got;
};
// The bundle is stored wrapped in the CommonJS function this runs (scripts/bundle.js). latin1:
// it is ASCII, and skipping UTF-8 decoding saves a copy.
const source = buffer.toString('latin1', 0, readAll(fd, st.size));
fs.closeSync(fd);
const version = `hook-${process.version}-${process.arch}-${st.ino}-${st.size}-${Math.floor(st.mtimeMs)}`;
// A run that did real work (attach, detach) compiles far more than one that found nothing to do,
// so each stage has two kinds of cache. "deep" serves runs whose OCI state names io.taskwire.*
// annotations, and is replaced as soon as such a run did work on a shallower cache (a first
// poststop for an unknown container must not leave every later run half-cached). "shallow"
// serves the rest, whatever they turn out to do (with applyToAll they attach too), and is never
// written from a deep one: it would carry all of the deep one's code. The hook says it did work
// through globalThis.taskwireHookDidWork (lib/hook.ts).
//
// A createRuntime runs the code of the plugins its container asks for, so its deep caches are
// kept per set of plugins (`deep~ip-per-task+twfw`): a cache lacking a plugin left it compiling
// that plugin's code lazily (1.4 ms more per hook), and one holding plugins the container does
// not use made it deserialize their code (0.3 ms more for an ip-per-task container on a cache of
// all five). The set is read from the annotation keys in the OCI state; a cache is only
// ever named by a set the hook confirms it ran (globalThis.taskwireHookPlugins, the registry's
// names), never by what a container wrote. poststop undoes records without loading plugins:
// its deep cache has no plugin suffix.
const shallowName = `${version}-${stage}-shallow`;
const deepPrefix = `${version}-${stage}-deep~`;
const byPlugin = stage === 'createRuntime' || stage === 'prestart';
// Distinct plugin sets a host keeps caches for, per stage; the oldest go first.
const MAX_DEEP_CACHES = 8;

// The OCI state is read here, before the cache is chosen. It reaches lib/hook.ts as
// globalThis.taskwireHookStdin ({ data, complete }: a descriptor that is not a plain blocking one
// is finished there). Only for a real stage: `--help` in a terminal must not wait for input.
let stdin = null;
if (stage !== 'other' && !process.argv.includes('--help') && !process.argv.includes('-h')) {
  const chunks = [];
  let complete = true;
  try {
    const buf = Buffer.allocUnsafe(65536);
    for (let n; (n = fs.readSync(0, buf, 0, buf.length, null)) > 0; ) chunks.push(Buffer.from(buf.subarray(0, n)));
  } catch {
    complete = false; // EAGAIN, EBADF: lib/hook.ts reads on, or reports it
  }
  stdin = Buffer.concat(chunks);
  globalThis.taskwireHookStdin = { data: stdin, complete };
}
const likelyDeep = stdin === null || stdin.includes('io.taskwire.');
const target = likelyDeep ? 'deep' : 'shallow';

// The plugins the annotations ask for, by their keys ("io.taskwire.<name>": not a quote escaped
// inside a value). Only a guess to choose a file by: the host may apply more to every container,
// and a key the runtime wrote escaped is missed (a cache then holds more than its name says).
const asked =
  byPlugin && likelyDeep && stdin !== null
    ? [...new Set(Array.from(stdin.toString('latin1').matchAll(/(?<!\\)"io\.taskwire\.([a-z0-9-]+)"\s*:/g), (m) => m[1]))].sort()
    : [];
const exactName = `${deepPrefix}${asked.join('+')}`;
const pluginsOf = (f) => (f.length > deepPrefix.length ? f.slice(deepPrefix.length).split('+') : []);
// Caches are removed oldest first (below): one in use is kept young, at most a write a day.
const DAY_MS = 86400000;

/** The file's contents in `buffer` (grown if it must be); undefined if it cannot be read. */
function readCache(name) {
  let cfd;
  try {
    cfd = fs.openSync(`${cacheDir}/${name}`, 'r');
    const st = fs.fstatSync(cfd);
    if (st.size > buffer.length) buffer = Buffer.allocUnsafeSlow(st.size);
    const data = buffer.subarray(0, readAll(cfd, st.size));
    try {
      if (Date.now() - st.mtimeMs > DAY_MS) fs.futimesSync(cfd, new Date(), new Date());
    } catch {
      // a read-only install: the cache is used all the same, it just does not look recent
    }
    return data;
  } catch {
    return undefined; // not made yet, or replaced meanwhile
  } finally {
    if (cfd !== undefined) fs.closeSync(cfd);
  }
}

/**
 * Without an exact cache, the largest of no other plugins than the asked ones: V8 writes every
 * function it holds into the cache made at exit, so a run started from a larger set would make
 * this set's cache as large.
 */
function bestSubset() {
  let files = [];
  try {
    files = fs.readdirSync(cacheDir);
  } catch {
    return null; // no cache made yet
  }
  let best = null;
  let size = -1;
  for (const f of files) {
    if (!f.startsWith(deepPrefix) || f.endsWith('.tmp')) continue;
    const plugins = pluginsOf(f);
    if (plugins.length > size && plugins.every((p) => asked.includes(p))) [best, size] = [f, plugins.length];
  }
  return best;
}

let cachedData;
let cachedDepth = null;
let cachedName = null;
if (likelyDeep) {
  cachedName = exactName;
  cachedData = readCache(exactName);
  // A subset's file may go between the listing and the read (another hook's eviction): then none.
  if (!cachedData && byPlugin && (cachedName = bestSubset()) !== null) cachedData = readCache(cachedName);
  if (cachedData) cachedDepth = 'deep';
  else cachedName = null;
}
if (cachedDepth === null) {
  cachedData = readCache(shallowName);
  if (cachedData) cachedDepth = 'shallow';
}
// V8 reads the cache during the compile and keeps no reference to the buffer. A cache it
// rejects (damaged, other V8 flags) counts as none, so this run writes a good one in its place.
const script = new vm.Script(source, { filename: bundle, cachedData });
if (script.cachedDataRejected) cachedDepth = cachedName = null;

if (cachedDepth !== target || (target === 'deep' && cachedName !== exactName)) {
  process.once('exit', () => {
    if (globalThis.taskwireHookColdRun) return; // loaded a host-wide object (lib/bpf/shared.ts): atypical code
    const depth = likelyDeep && !globalThis.taskwireHookDidWork ? 'shallow' : target;
    if (depth === 'shallow' && cachedDepth !== null) return;
    // A deep cache is named by the asked set only once the hook ran every plugin of it.
    const ran = (byPlugin && globalThis.taskwireHookPlugins) || [];
    if (depth === 'deep' && !asked.every((p) => ran.includes(p))) return;
    const name = depth === 'deep' ? exactName : shallowName;
    const cacheFile = `${cacheDir}/${name}`;
    try {
      fs.mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
      const tmp = `${cacheFile}.${process.pid}.tmp`;
      // Opened before the cache is serialized (milliseconds): a read-only install fails here first.
      const wfd = fs.openSync(tmp, 'w', 0o600);
      try {
        fs.writeFileSync(wfd, script.createCachedData());
      } finally {
        fs.closeSync(wfd);
      }
      fs.renameSync(tmp, cacheFile);
      // Then what other bundles or Node versions made goes (two Node binaries running the hook on
      // one host would replace each other's: slower, never wrong), orphaned temp files, and this
      // stage's least recently used deep caches past the bound.
      const files = fs.readdirSync(cacheDir);
      // A hook killed while writing leaves its temp file (named by its pid) to whoever writes next:
      // lib/state/atomic.ts abandonedTempFiles's rule, which this file (run before the bundle,
      // outside it) cannot import.
      const processAlive = (pid) => {
        try {
          process.kill(pid, 0);
          return true;
        } catch (err) {
          return err.code === 'EPERM';
        }
      };
      const orphan = (f) => f.endsWith('.tmp') && !processAlive(Number(f.split('.').at(-2)));
      for (const f of files) if (!f.startsWith(version) || orphan(f)) fs.rmSync(`${cacheDir}/${f}`, { force: true, recursive: true });
      const deep = files.filter((f) => f.startsWith(deepPrefix) && !f.endsWith('.tmp'));
      if (deep.length > MAX_DEEP_CACHES) {
        const age = new Map(deep.map((f) => [f, fs.statSync(`${cacheDir}/${f}`, { throwIfNoEntry: false })?.mtimeMs ?? 0]));
        deep.sort((a, b) => age.get(a) - age.get(b));
        for (const f of deep.slice(0, deep.length - MAX_DEEP_CACHES)) if (f !== name) fs.rmSync(`${cacheDir}/${f}`, { force: true });
      }
    } catch {
      // read-only install: run uncached
    }
  });
}

// The bundle runs as part of this module, with its require: both files are in one directory, so
// anything the bundle resolves (koffi, from node_modules) resolves the same, and no second module
// and require function are built (Module.createRequire and its paths cost about 40 us).
script.runInThisContext()(module.exports, require, module, bundle, __dirname);
