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
// The class of this very module: require('node:module') costs a hook about 0.1 ms of loading.
const Module = module.constructor;

// Paths by concatenation (__dirname is absolute and normal): path.join's normalizing loop runs
// interpreted this early, and costs more than the rest of this file (lib/path.ts).
const bundle = `${__dirname}/taskwire-hook-main.js`;
const cacheDir = `${__dirname}/.cache`;
// The stage is argv[2] when the runtime calls us properly; anything else shares one file.
const stage = /^(createRuntime|prestart|poststop)$/.test(process.argv[2] || '') ? process.argv[2] : 'other';

const st = fs.statSync(bundle);
const version = `hook-${process.version}-${process.arch}-${st.ino}-${st.size}-${Math.floor(st.mtimeMs)}`;
// A run that did real work (attach, detach) compiles far more than one that found nothing to do,
// so each stage has two kinds of cache. "deep" serves runs whose OCI state names io.taskwire.*
// annotations, and is replaced as soon as such a run did work on a shallower cache (a first
// poststop for an unknown container must not leave every later run half-cached). "shallow"
// serves the rest, whatever they turn out to do (with applyToAll they attach too), and is never
// written from a deep one: it would carry all of the deep one's code. The hook says it did work
// through globalThis.taskwireHookDidWork (lib/hook.ts).
//
// A createRuntime's deep cache holds the code of the plugins that ran when it was made: an
// ip-per-task container on a cache made by a twfw container compiled ip-per-task's code lazily
// on every run, 1.4 ms more per createRuntime. So its name ends with the plugins that ran
// (`deep~ip-per-task+twfw`, as lib/hook.ts reports them in globalThis.taskwireHookPlugins: never
// names a container made up), and a run of a plugin it lacks writes the union at exit and then
// removes the caches the union covers: on a host, the cache converges on the plugins its
// containers use. poststop undoes records without loading plugins: its deep cache has no
// plugin suffix.
const shallowName = `${version}-${stage}-shallow`;
const deepPrefix = `${version}-${stage}-deep~`;
// The bundle is stored wrapped in the CommonJS function this runs (scripts/bundle.js). latin1:
// it is ASCII, and skipping UTF-8 decoding saves a copy.
const source = fs.readFileSync(bundle, 'latin1');

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

const byPlugin = stage === 'createRuntime' || stage === 'prestart';
const pluginsOf = (f) => (f.length > deepPrefix.length ? f.slice(deepPrefix.length).split('+') : []);
const deepCaches = () => {
  try {
    return fs.readdirSync(cacheDir).filter((f) => f.startsWith(deepPrefix) && !f.endsWith('.tmp'));
  } catch {
    return []; // no cache made yet
  }
};

let cachedData;
let cachedDepth = null;
let cachedPlugins = [];
// The deep cache to start from: the one with the most plugins (a union replaces the caches it
// covers, so there is usually one). Another hook may replace it between the listing and the
// read: then the listing is taken again, once.
for (let attempt = 0; likelyDeep && cachedDepth === null && attempt < 2; attempt++) {
  const best = deepCaches().reduce((a, f) => (a === null || pluginsOf(f).length > pluginsOf(a).length ? f : a), null);
  if (best === null) break;
  try {
    cachedData = fs.readFileSync(`${cacheDir}/${best}`);
    cachedDepth = 'deep';
    cachedPlugins = pluginsOf(best);
  } catch {
    // replaced meanwhile: list again
  }
}
if (cachedDepth === null) {
  try {
    cachedData = fs.readFileSync(`${cacheDir}/${shallowName}`);
    cachedDepth = 'shallow';
  } catch {
    // not made yet for this stage and bundle
  }
}
const script = new vm.Script(source, { filename: bundle, cachedData });
if (script.cachedDataRejected) cachedDepth = null;

if (cachedDepth !== target || (target === 'deep' && byPlugin)) {
  process.once('exit', () => {
    if (globalThis.taskwireHookColdRun) return; // loaded a host-wide object (lib/bpf/shared.ts): atypical code
    const depth = likelyDeep && !globalThis.taskwireHookDidWork ? 'shallow' : target;
    if (depth === 'shallow' && cachedDepth !== null) return;
    const ran = (byPlugin && globalThis.taskwireHookPlugins) || []; // the registry's names (lib/hook.ts)
    if (depth === 'deep' && cachedDepth === 'deep' && ran.every((p) => cachedPlugins.includes(p))) return;
    const plugins = depth === 'deep' ? [...new Set([...(cachedDepth === 'deep' ? cachedPlugins : []), ...ran])].sort() : [];
    const name = depth === 'deep' ? `${deepPrefix}${plugins.join('+')}` : shallowName;
    const cacheFile = `${cacheDir}/${name}`;
    try {
      fs.mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
      const tmp = `${cacheFile}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, script.createCachedData(), { mode: 0o600 });
      fs.renameSync(tmp, cacheFile);
      // Then what this one replaces goes: caches of other bundles or Node versions (two Node
      // binaries running the hook on one host would replace each other's: slower, never wrong),
      // and this stage's deep caches whose plugins the new one has too.
      for (const f of fs.readdirSync(cacheDir)) {
        const covered = depth === 'deep' && f !== name && f.startsWith(deepPrefix) && !f.endsWith('.tmp') && pluginsOf(f).every((p) => plugins.includes(p));
        if (!f.startsWith(version) || covered) fs.rmSync(`${cacheDir}/${f}`, { force: true, recursive: true });
      }
    } catch {
      // read-only install: run uncached
    }
  });
}

const mod = new Module(bundle, module);
mod.filename = bundle;
mod.paths = Module._nodeModulePaths(__dirname);
mod.loaded = true;
script.runInThisContext()(mod.exports, Module.createRequire(bundle), mod, bundle, __dirname);
