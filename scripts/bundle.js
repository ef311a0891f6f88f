// Bundles the hook and the CLI into one file each (Node start-up is the hook's biggest cost:
// one file parses faster than hundreds of modules). koffi stays external: it loads a native
// binary relative to its own package; scripts/koffi-direct.js stands in for its index.js.
//
// The hook is a launcher (scripts/hook-launcher.js, copied to dist/taskwire-hook.js) that runs
// its bundle (dist/taskwire-hook-main.js) from a V8 code cache. The CLI is not start-up critical
// and stays one file (it checks require.main).
'use strict';
const esbuild = require('esbuild');
const path = require('node:path');
const root = path.resolve(__dirname, '..');
const koffiDirect = path.join(__dirname, 'koffi-direct.js');

const koffiPlugin = {
  name: 'koffi-direct',
  setup(build) {
    build.onResolve({ filter: /^koffi(\/.*)?$/ }, (args) => {
      if (args.importer === koffiDirect) return { path: args.path, external: true };
      if (args.path === 'koffi') return { path: koffiDirect };
      return { path: args.path, external: true };
    });
  },
};

// pino as the hook uses it: pino.destination({ sync: true }) to a file, never a transport (a
// worker thread running another module: a hook exits within milliseconds and must not lose
// lines). pino loads its transport machinery and two slow built-ins at require time anyway:
// thread-stream and worker_threads (about 2 ms), assert for one check in sonic-boom's close
// (about 3 ms), a fifth of a hook's own start-up (bench/README.md). In the hook bundle only:
//  - pino/lib/transport.js is a stub that throws if anything ever asks for a transport;
//  - tools.js's `isMainThread` (it only decides whether an async destination is flushed at
//    exit) is true: the hook's bundle runs on the main thread (scripts/hook-launcher.js);
//  - sonic-boom requires assert at its first assertion instead of at load;
//  - pino.js asks node:os for the hostname of its default `base` only when that base is used;
//  - pino.js no longer looks up its callers' file names at every pino() (util.getCallSites,
//    which makes V8 compute the line ends of the whole bundle: about 0.3 ms): they only serve to
//    resolve a transport's relative target.
// Each edit must match pino's source exactly, or the build fails: an upgrade is checked here.
const pinoTransport = path.join(__dirname, 'pino-no-transport.js');
function replaceOnce(file, text, from, to) {
  if (text.split(from).length !== 2) throw new Error(`bundle: ${file} changed; review scripts/bundle.js's pino edits (${JSON.stringify(from)})`);
  return text.replace(from, to);
}
const pinoLean = {
  name: 'pino-lean',
  setup(build) {
    build.onResolve({ filter: /^\.(\/lib)?\/transport$/ }, (args) =>
      /[\\/]node_modules[\\/]pino[\\/]/.test(args.importer) ? { path: pinoTransport } : undefined,
    );
    build.onLoad({ filter: /[\\/]node_modules[\\/]pino[\\/]lib[\\/]tools\.js$/ }, async (args) => {
      const text = await require('node:fs/promises').readFile(args.path, 'utf8');
      return { contents: replaceOnce(args.path, text, "const { isMainThread } = require('worker_threads')", 'const isMainThread = true'), loader: 'js' };
    });
    // node:os only for the default `base`'s hostname, which taskwire replaces with its own:
    // loading node:os cost a hook about 0.27 ms (lib/errors.ts defers it the same way).
    build.onLoad({ filter: /[\\/]node_modules[\\/]pino[\\/]pino\.js$/ }, async (args) => {
      let text = await require('node:fs/promises').readFile(args.path, 'utf8');
      text = replaceOnce(args.path, text, "const os = require('node:os')\n", '');
      text = replaceOnce(args.path, text, 'const hostname = os.hostname()\n', '');
      text = replaceOnce(args.path, text, 'base: { pid, hostname },', "base: { pid, get hostname () { return require('node:os').hostname() } },");
      text = replaceOnce(args.path, text, "const caller = require('./lib/caller')\n", '');
      text = replaceOnce(args.path, text, 'normalize(instance, caller(), ...args)', 'normalize(instance, undefined, ...args)');
      return { contents: text, loader: 'js' };
    });
    build.onLoad({ filter: /[\\/]node_modules[\\/]sonic-boom[\\/]index\.js$/ }, async (args) => {
      const text = await require('node:fs/promises').readFile(args.path, 'utf8');
      return { contents: replaceOnce(args.path, text, "const assert = require('assert')", "const assert = (...a) => require('assert')(...a)"), loader: 'js' };
    });
  },
};

// Our TypeScript reaches the hook bundle as CommonJS modules, one lazy wrapper each, rather than
// as ES modules: esbuild scope-hoists ES modules, putting every function of every module in the
// bundle's top scope, where V8 creates it on every start (and the code cache stores it) whether
// the hook ever calls it or not. As CommonJS, a module the stage does not require is never
// compiled: a createRuntime with one plugin touches a fraction of the code. The unit and
// integration tests run the same sources as CommonJS too (jest with swc), the e2e tests this bundle.
//
// TypeScript's own emit, with tsconfig.json's options (module commonjs), makes each export a plain property,
// `exports.f = f`. esbuild's and swc's CommonJS emit each carry their own copy of the interop
// helpers and define every export as a getter, twice (__export, then __toCommonJS): about 30 µs of
// property definitions per module loaded, 1.5 ms over a createRuntime's sixty (bench/README.md).
const lazyModules = {
  name: 'lazy-modules',
  setup(build) {
    const ts = require('typescript');
    const { config, error } = ts.readConfigFile(path.join(root, 'tsconfig.json'), ts.sys.readFile);
    const converted = !error && ts.convertCompilerOptionsFromJson(config.compilerOptions, root);
    const problem = error ?? converted.errors[0];
    if (problem) throw new Error(`bundle: tsconfig.json: ${ts.flattenDiagnosticMessageText(problem.messageText, ' ')}`);
    // transpileModule compiles one file at a time (isolatedModules) and always emits.
    const compilerOptions = converted.options;
    build.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
      const text = await require('node:fs/promises').readFile(args.path, 'utf8');
      const out = ts.transpileModule(text, { compilerOptions, fileName: args.path });
      return { contents: out.outputText, loader: 'js', resolveDir: path.dirname(args.path) };
    });
  },
};

// The koffi version the bundles are built against: scripts/koffi-direct.js loads only that binary.
const define = { KOFFI_VERSION: JSON.stringify(require(path.join(root, 'node_modules', 'koffi', 'package.json')).version) };
const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', logLevel: 'warning', absWorkingDir: root, legalComments: 'none', plugins: [koffiPlugin], define };

/**
 * A hook bundle at outDir/taskwire-hook-main.js (stored as the function body the launcher runs,
 * so not runnable on its own) with its launcher at outDir/taskwire-hook.js.
 * Whitespace and syntax minified (names kept, so stack traces in the log still read): the
 * launcher reads the whole source on every hook, cached or not. ASCII output (esbuild escapes
 * the rest) lets it read the source as latin1, without UTF-8 decoding. bench/hook-latency.ts
 * builds its stack floor with this too.
 */
async function buildHook(entry, outDir) {
  const fs = require('node:fs');
  const main = path.join(outDir, 'taskwire-hook-main.js');
  const { outputFiles } = await esbuild.build({
    ...common,
    plugins: [koffiPlugin, pinoLean, lazyModules],
    entryPoints: [entry],
    outfile: main,
    write: false,
    minifyWhitespace: true,
    minifySyntax: true,
    charset: 'ascii',
  });
  // Stored wrapped as the CommonJS function the launcher runs: wrapping at every start copied the
  // whole source twice (the shebang replaced, then the wrapper concatenated and flattened).
  const wrapped = require('node:module').wrap(outputFiles[0].text.replace(/^#!.*/, ''));
  fs.mkdirSync(outDir, { recursive: true });
  // Each file replaced by rename: hooks running during a rebuild read the old one or the new one.
  const publish = (file, write) => {
    const tmp = `${file}.${process.pid}.tmp`;
    write(tmp);
    fs.renameSync(tmp, file);
  };
  publish(main, (tmp) => fs.writeFileSync(tmp, wrapped, 'latin1'));
  publish(path.join(outDir, 'taskwire-hook.js'), (tmp) => {
    fs.copyFileSync(path.join(__dirname, 'hook-launcher.js'), tmp);
    fs.chmodSync(tmp, 0o755);
  });
}

async function main() {
  await Promise.all([
    buildHook('hooks/taskwire-hook.ts', path.join(root, 'dist')),
    esbuild.build({ ...common, entryPoints: ['cli/taskwire.ts'], outfile: 'dist/taskwire.js' }),
  ]);
}

module.exports = { buildHook };
if (require.main === module) main().catch(() => process.exit(1));
