// What the bundles get for `require('koffi')`. koffi's own index.js loads its download/install
// tooling first (node:https, node:zlib, node:crypto: about a third of a hook's start-up) just to
// find the prebuilt binary; on the platforms taskwire supports that binary sits at a fixed path,
// so it is required directly. koffi's wrapper only adds deprecated aliases, which taskwire does
// not use. Anything unexpected (another platform, a version mismatch) falls back to the package.
'use strict';

function direct() {
  if (process.platform !== 'linux' || (process.arch !== 'x64' && process.arch !== 'arm64')) return null;
  // One node_modules walk for the package, then absolute paths (each bare request walks again).
  let dir, version;
  try {
    const manifest = require.resolve('koffi/package.json');
    dir = manifest.slice(0, -'/package.json'.length);
    version = require(manifest).version;
  } catch {
    return null;
  }
  for (const libc of ['linux', 'musl']) {
    try {
      const native = require(`${dir}/build/koffi/${libc}_${process.arch}/koffi.node`);
      if (native && native.version === version) return native;
    } catch {
      // wrong libc flavour or not shipped: try the next, then the package
    }
  }
  return null;
}

module.exports = direct() || require('koffi');
