/* Where the built artefacts are: the checkout or install prefix holding package.json, found
 * from this file whether it runs from source (lib/) or from the bundle (dist/). */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { joinPath } from './path';

let root: string | undefined;
export function projectRoot(): string {
  if (root) return root;
  let d = __dirname;
  while (!existsSync(joinPath(d, 'package.json')) && dirname(d) !== d) d = dirname(d);
  root = d;
  return root;
}

export function bpfObjectPath(name: string): string {
  return joinPath(process.env.TASKWIRE_BPF_DIR || joinPath(projectRoot(), 'build', 'bpf'), `${name}.bpf.o`);
}
