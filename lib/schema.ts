/* Validation through the precompiled ajv validators (scripts/gen-validators.js). */
import { ConfigError } from './errors';
import { validator } from './generated/validators';

export function validate<T>(schemaId: string, data: unknown, what: string): T {
  const fn = validator(schemaId);
  if (!fn) throw new Error(`no validator for schema ${schemaId} (run make)`);
  if (fn(data)) return data as T;
  const e = fn.errors?.[0];
  const at = e?.instancePath ? ` at ${e.instancePath}` : '';
  let msg = e?.message ?? 'is not valid';
  if (e?.keyword === 'additionalProperties') msg = `has unknown field ${JSON.stringify(e.params.additionalProperty)}`;
  if (e?.keyword === 'enum') msg += ` (${e.params.allowedValues.map((v: unknown) => JSON.stringify(v)).join(', ')})`;
  throw new ConfigError(`${what}${at} ${msg}`);
}
