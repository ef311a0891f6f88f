/*
 * Paths under taskwire's directories. node:path's join normalizes the whole result character by
 * character; a hook lives about 30 ms, so that loop runs in V8's interpreter, and a createRuntime's
 * hundred-odd joins of 60-100 character paths cost it close to a millisecond (bench/README.md).
 * The directories are the host config's (already normal) and the names ours or encoded ids.
 */
import { join } from 'node:path';

/**
 * path.join(dir, ...names), by concatenation when there is nothing to normalize: `dir` absolute
 * and normal (no `//`, `.` or `..` component, no trailing slash), every name one plain component.
 * Anything else goes to path.join, so the result is always path.join's (test/unit/path.test.ts).
 */
export function joinPath(dir: string, ...names: string[]): string {
  if (!isNormalAbsolute(dir)) return join(dir, ...names);
  let out = dir === '/' ? '' : dir;
  for (const name of names) {
    if (!isPlainName(name)) return join(dir, ...names);
    out += `/${name}`;
  }
  return out || '/';
}

function isNormalAbsolute(dir: string): boolean {
  if (dir === '/') return true;
  return (
    dir.startsWith('/') &&
    !dir.endsWith('/') &&
    !dir.includes('//') &&
    !dir.includes('/./') &&
    !dir.includes('/../') &&
    !dir.endsWith('/.') &&
    !dir.endsWith('/..')
  );
}

function isPlainName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/');
}
