/* The OCI state a runtime writes on a hook's stdin, and the bundle's config.json. */
import { readFileSync } from 'node:fs';
import { joinPath } from './path';
import { TaskwireError } from './errors';
import { validate } from './schema';

export interface OciState {
  ociVersion?: string;
  id: string;
  status?: string;
  pid?: number;
  bundle: string;
  annotations?: Record<string, string>;
}

export function parseState(text: string): OciState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new TaskwireError('STATE', `the OCI state on stdin is not JSON (${text.length} bytes read)`);
  }
  try {
    return validate<OciState>('taskwire:oci-state', raw, 'OCI state');
  } catch (err) {
    throw new TaskwireError('STATE', (err as Error).message);
  }
}

export async function readStdin(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
  return Buffer.concat(chunks).toString('utf8');
}

/** The bundle's config.json (read only when a plugin needs it: linux.sysctl, namespaces). */
export function readBundleConfig(bundle: string): Record<string, any> {
  try {
    return JSON.parse(readFileSync(joinPath(bundle, 'config.json'), 'utf8'));
  } catch (err) {
    throw new TaskwireError('STATE', `bundle ${bundle}: cannot read config.json (${(err as Error).message})`);
  }
}
