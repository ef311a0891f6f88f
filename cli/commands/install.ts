import type { Command } from 'commander';
import { projectRoot } from '../../lib/assets';
import { appliesToAll, configPath, loadHostConfig } from '../../lib/host/config';
import { applyInstall, DEFAULT_HOOKS_DIR, planInstall, uninstall } from '../../lib/install';
import { printJson } from '../context';

interface Opts {
  hooksDir: string;
  prefix?: string;
  dryRun?: boolean;
  json?: boolean;
}

/* The config is resolved to an absolute path now: the hooks run later, with no environment. */
function configOf(cmd: Command): { path: string; timeoutMs: number; always: boolean } {
  const path = configPath((cmd.optsWithGlobals() as { config?: string }).config);
  const host = loadHostConfig(path);
  return { path, timeoutMs: host.hookTimeoutMs, always: appliesToAll(host) };
}

export function registerInstall(program: Command): void {
  program
    .command('install')
    .description('install the hooks for podman and CRI-O: the program first, then the hooks.d JSON (idempotent)')
    .option('--hooks-dir <dir>', 'hooks.d directory to write', DEFAULT_HOOKS_DIR)
    .option('--prefix <dir>', 'copy node, the bundles, the BPF objects and koffi here (default: run from this checkout)')
    .option('--dry-run', 'show what would be written, write nothing')
    .option('--json', 'machine-readable output')
    .action((opts: Opts, cmd: Command) => {
      const cfg = configOf(cmd);
      const plan = planInstall({ hooksDir: opts.hooksDir, prefix: opts.prefix, source: projectRoot(), node: process.execPath, configPath: cfg.path, hookTimeoutMs: cfg.timeoutMs, always: cfg.always });
      if (opts.dryRun) {
        if (opts.json) return printJson(plan);
        if (plan.prefix) process.stdout.write(`would copy ${plan.copies.length} files to ${plan.prefix}\n`);
        for (const h of plan.hooks) process.stdout.write(`would write ${h.path}\n`);
        return;
      }
      const r = applyInstall(plan, (line) => process.stderr.write(`${line}\n`));
      if (opts.json) return printJson({ ...r, node: plan.node, hook: plan.hook, prefix: plan.prefix ?? null });
      if (plan.prefix) process.stdout.write(`program: ${plan.prefix} (${r.copied} files copied, ${r.unchanged} unchanged)\n`);
      else process.stdout.write(`program: ${plan.hook} (run from this checkout)\n`);
      for (const h of r.hooks) process.stdout.write(`hook: ${h}\n`);
      process.stdout.write(`config: ${cfg.path}\n`);
    });

  program
    .command('uninstall')
    .description('remove the hooks.d JSON first, then the program copied by install --prefix (idempotent)')
    .option('--hooks-dir <dir>', 'hooks.d directory', DEFAULT_HOOKS_DIR)
    .option('--prefix <dir>', 'the prefix given to install, removed after the hooks')
    .option('--json', 'machine-readable output')
    .action((opts: Opts) => {
      const r = uninstall(opts.hooksDir, projectRoot(), opts.prefix);
      if (opts.json) return printJson(r);
      for (const h of r.removedHooks) process.stdout.write(`removed ${h}\n`);
      if (r.removedPrefix) process.stdout.write(`removed ${r.removedPrefix}\n`);
      if (!r.removedHooks.length && !r.removedPrefix) process.stdout.write('nothing installed\n');
    });
}
