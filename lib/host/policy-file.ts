/*
 * `@NAME` in an annotation: a policy file the operator keeps in the host's policy directory,
 * <policyDir>/<NAME>.json. The name is checked before it touches a path, so an annotation can
 * never read outside that directory; the caller validates the content against its own schema.
 */
import { readFileSync } from 'node:fs';
import { joinPath } from '../path';
import { ConfigError } from '../errors';
import type { HostConfig } from './config';

/**
 * A policy name. The host schemas' `policies` items (plugins/twfw, plugins/sysctl) carry the same
 * pattern text, so a name the host may list is exactly a name an annotation may use
 * (test/unit/policy-annotation.test.ts keeps them equal).
 */
export const NAME_RE = /^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

export function isPolicyRef(value: string): boolean {
  return value.trim().startsWith('@');
}

/** Reads and parses <policyDir>/<NAME>.json for the reference "@NAME". */
export function readPolicyRef(host: HostConfig, ref: string): { path: string; data: unknown } {
  const name = ref.trim().slice(1);
  if (!NAME_RE.test(name))
    throw new ConfigError(`policy reference ${JSON.stringify(ref)}: the name may have letters, digits, _ . - (up to 100, no ..)`);
  const path = joinPath(host.policyDir, `${name}.json`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`policy ${ref}: ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}`);
  }
  try {
    return { path, data: JSON.parse(text) };
  } catch (err) {
    throw new ConfigError(`policy ${ref}: ${path} is not valid JSON (${(err as Error).message})`);
  }
}
