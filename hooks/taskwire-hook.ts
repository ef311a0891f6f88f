#!/usr/bin/env node
/* The OCI hook executable: taskwire-hook <createRuntime|prestart|poststop>. See lib/hook.ts. */
import { runHook } from '../lib/hook';

runHook(process.argv.slice(2), { stdin: process.stdin, stderr: process.stderr, env: process.env }).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`taskwire: internal error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
