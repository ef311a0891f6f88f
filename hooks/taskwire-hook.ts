#!/usr/bin/env node
/* The OCI hook executable: taskwire-hook <createRuntime|prestart|poststop>. See lib/hook.ts.
 * stdin and stderr go in as descriptors: process.stdin/stderr build streams (tty, net) that
 * would cost a hook more start-up time than its work. */
import { writeSync } from 'node:fs';
import { runHook } from '../lib/hook';
import { exitProcess } from '../lib/process-exit';

const stderr = {
  write(s: string) {
    try {
      writeSync(2, s);
    } catch {
      // stderr closed: the exit code still tells the runtime
    }
  },
};

runHook(process.argv.slice(2), { stdin: 0, stderr, env: process.env }).then(
  (code) => exitProcess(code),
  (err) => {
    stderr.write(`taskwire: internal error: ${err instanceof Error ? err.message : String(err)}\n`);
    exitProcess(1);
  },
);
