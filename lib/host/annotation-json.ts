/*
 * Annotation values that carry JSON. Every plugin refuses unparsable JSON with the same one line,
 * and every plugin taking a policy offers the host the same controls over where it comes from.
 */
import { ConfigError } from '../errors';
import { validate } from '../schema';
import type { HostConfig } from './config';
import { isPolicyRef, readPolicyRef } from './policy-file';

/** JSON.parse, refusing bad text as a ConfigError "is not valid JSON (<parser's reason>)". */
export function parseAnnotationJson(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new ConfigError(`is not valid JSON (${(err as Error).message})`);
  }
}

/** The host-config options every policy-taking plugin has (its host schema declares them). */
export interface PolicyAccess {
  /** false: only @NAME is accepted. */
  inline?: boolean;
  /** The @NAMEs an annotation may use; absent = any file in the policy directory. */
  policies?: string[];
}

export interface PolicyAnnotationOptions<T> {
  host: HostConfig;
  section: PolicyAccess;
  /** Schema the policy must satisfy, e.g. "taskwire:sysctl-policy". */
  schemaId: string;
  /** The noun in messages, e.g. "policy". */
  what: string;
  /** Replaces plain schema validation, for plugins that explain schema errors further. */
  check?: (raw: unknown, what: string) => T;
}

/**
 * An annotation that is an inline JSON policy or @NAME (<policyDir>/NAME.json, read by
 * policy-file.ts, which refuses names that could leave the directory) → the validated policy.
 * The caller handles its own keywords ("default", shorthands) before calling this.
 */
export function loadPolicyAnnotation<T>(value: string, opts: PolicyAnnotationOptions<T>): T {
  const { host, section, schemaId, what } = opts;
  const check = opts.check ?? ((raw: unknown, w: string) => validate<T>(schemaId, raw, w));
  const v = value.trim();
  if (isPolicyRef(v)) {
    const name = v.slice(1);
    if (section.policies && !section.policies.includes(name))
      throw new ConfigError(`${what} ${v} is not among the host's allowed policies (${section.policies.join(', ') || 'none'})`);
    return check(readPolicyRef(host, v).data, `${what} ${v}`);
  }
  if (!v.startsWith('{')) throw new ConfigError(`is neither an inline JSON ${what} nor @NAME`);
  if (section.inline === false) throw new ConfigError(`inline ${what} is not allowed on this host (its "inline" is false); name one with @NAME`);
  let raw: unknown;
  try {
    raw = parseAnnotationJson(v);
  } catch (err) {
    throw new ConfigError(`${what} ${(err as Error).message}`);
  }
  return check(raw, what);
}
