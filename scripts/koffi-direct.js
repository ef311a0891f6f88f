// What the bundles get for `require('koffi')`. koffi's own index.js loads its download/install
// tooling first (node:https, node:zlib, node:crypto: about a third of a hook's start-up) just to
// find the prebuilt binary; on the platforms taskwire supports that binary sits at a fixed path,
// so it is loaded directly. koffi's wrapper only adds deprecated aliases, which taskwire does
// not use. Anything unexpected (another platform, a version mismatch) falls back to the package.
//
// The bundle knows the koffi version it was built against (KOFFI_VERSION, from scripts/bundle.js)
// and looks first where a checkout or an install keeps it, next to dist/: a node_modules walk,
// koffi's package.json and require's handling of a .node file cost a hook most of a millisecond
// on top of the dlopen itself.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

/* global KOFFI_VERSION */
const version = typeof KOFFI_VERSION === 'string' ? KOFFI_VERSION : null;

function* koffiDirs() {
  yield `${path.dirname(__dirname)}/node_modules/koffi`; // not path.join: its normalizing loop runs interpreted this early (lib/path.ts)
  try {
    yield path.dirname(require.resolve('koffi/package.json'));
  } catch {
    // not resolvable from here either: the package fallback below says why
  }
}

function direct() {
  if (!version || process.platform !== 'linux' || (process.arch !== 'x64' && process.arch !== 'arm64')) return null;
  for (const dir of koffiDirs()) {
    for (const libc of ['linux', 'musl']) {
      const file = `${dir}/build/koffi/${libc}_${process.arch}/koffi.node`;
      if (!fs.existsSync(file)) continue;
      try {
        const mod = { exports: {} };
        process.dlopen(mod, file);
        if (mod.exports && mod.exports.version === version) return mod.exports;
      } catch {
        // wrong libc flavour: try the next, then the package
      }
    }
  }
  return null;
}

module.exports = direct() || require('koffi');
