// Bundles the hook and the CLI into one file each (Node start-up is the hook's biggest cost:
// one file parses faster than hundreds of modules). koffi stays external: it loads a native
// binary relative to its own package.
'use strict';
const esbuild = require('esbuild');
const path = require('node:path');
const root = path.resolve(__dirname, '..');
const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', external: ['koffi'], logLevel: 'warning', absWorkingDir: root, legalComments: 'none' };
Promise.all([
  esbuild.build({ ...common, entryPoints: ['hooks/taskwire-hook.ts'], outfile: 'dist/taskwire-hook.js' }),
  esbuild.build({ ...common, entryPoints: ['cli/taskwire.ts'], outfile: 'dist/taskwire.js' }),
]).catch(() => process.exit(1));
