// The main job for a newcomer (run by scripts/demo.sh, which sets up, prepares a work directory
// and cleans up on any exit): one real container with every taskwire plugin on, what each
// plugin did in a few lines, `taskwire ls` and `taskwire inspect`, then the container deleted
// and proof that nothing is left.
//
// A plugin joins the demo with ONE entry in PLUGINS below: its annotation value, what runs in
// the container, and how to show its effect. Entries for plugins the registry
// (plugins/index.ts) does not list yet are skipped, so the table can run ahead of the code;
// registered plugins without an entry are named, not silently left out.
//
// Runtime: podman (with runc, a --hooks-dir written by `taskwire install`, the hooks.d route
// most users take) when it works here, else runc with a bundle whose config.json names the hook
// (scripts/oci-bundle.js). DEMO_RUNTIME=runc|podman forces one.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { busyboxRootfs, RUNC, writeSpec } = require('./oci-bundle');

const ROOT = path.resolve(__dirname, '..');
const NODE = process.execPath;
const CLI = path.join(ROOT, 'dist', 'taskwire.js');
const HOOK = path.join(ROOT, 'dist', 'taskwire-hook.js');
const PODMAN = '/usr/bin/podman';
const PREFIX = 'io.taskwire.';

const [work, configPath, name] = process.argv.slice(2);
if (!work || !configPath || !name) {
  process.stderr.write('usage: demo.js WORKDIR CONFIG NAME (run scripts/demo.sh)\n');
  process.exit(2);
}
const config = JSON.parse(fs.readFileSync(configPath, 'utf8'));

// ---- what several entries share: a web server inside, a peer listener outside ------------------
const PAGE = 'hello from a taskwire container\n';
const WWW = { 'www/index.html': PAGE };

/** Host side: a listener on a global address of this host, standing for a peer outside. */
async function peerListener(ctx) {
  ctx.peer = hostPeerAddress();
  if (ctx.peer) ctx.peerServer = await listenOnce(ctx.peer);
}

/** Inside: httpd on *:PORT, "serving: yes" once it listens, then one connection to the peer. */
function serveAndCall(ctx) {
  return [
    `httpd -f -p ${ctx.port} -h /www &`,
    `for i in $(seq 50); do netstat -ltn | grep -q ":${ctx.port} " && break; sleep 0.1; done; echo "serving: yes"`,
    ...(ctx.peerServer ? [`echo hello | nc ${ctx.peer} ${ctx.peerServer.port} >/dev/null`] : []),
  ];
}

/** The line about the connection to the peer: which source address it arrived from. */
async function outbound(ctx, ips) {
  if (!ctx.peerServer) return '(no global address on this host to show outbound connections with)';
  const from = await Promise.race([ctx.peerServer.from, after(10000, 'nowhere (timed out)')]);
  return `${ips.includes(from) ? '' : 'FAILED: '}its connection to ${fmtHostPort(ctx.peer, ctx.peerServer.port)} on the host arrived from ${from}`;
}

/** The text after "<key>: " in the container's output, once it is there. */
function containerSaid(ctx, key, ms = 10000) {
  return until(() => ctx.output().match(new RegExp(`^${key}: (.*)$`, 'm'))?.[1] || undefined, `the container to report ${key}`, ms);
}

// ---- the plugin table ------------------------------------------------------------------------
// name        plugin name in plugins/index.ts; annotation io.taskwire.<name>
// annotation  the value the demo asks for, or (ctx) => value once prepare has run
// network     'host' (default) or 'private': plugins are grouped into one container per network
//             (ip-per-task works in the host netns, netns needs a netns of its own)
// files       extra rootfs files
// prepare     (ctx) => Promise: host-side setup before the container starts (listeners...)
// inside      (ctx) => shell lines run in the container, in table order; print "<name>: ..."
//             lines to hand results to show
// show        (ctx, summary) => Promise<string[]>: what the plugin did, as seen from the host;
//             throw (or return a line starting with "FAILED") when the effect is missing
const PLUGINS = [
  {
    name: 'ip-per-task',
    annotation: 'auto',
    files: WWW,
    prepare: peerListener,
    inside: serveAndCall,
    async show(ctx, s) {
      const lines = [
        `got ${[s.ip6, s.ip4].filter(Boolean).join(' and ')} on ${s.device || 'lo'}; ${s.programs.length} programs linked to its cgroup from the host's one verified copy (_shared/objects: later containers only link)`,
      ];
      const bound = await until(() => listenersOn(ctx.port), 'the server to listen');
      const reply = await httpGet(s.ip6, ctx.port);
      lines.push(`httpd in the container bound *:${ctx.port}; the host sees it listening on ${bound.join(', ')} and GET http://[${s.ip6}]:${ctx.port}/ answers "${reply.trim()}"`);
      return [...lines, await outbound(ctx, [s.ip6, s.ip4])];
    },
  },
  {
    name: 'localhost-redirect',
    annotation: 'true',
    // nc, not wget: busybox-static's wget crashes on [::1] (its resolver path needs glibc's NSS).
    inside: (ctx) => [`echo "localhost-redirect: $(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc ::1 ${ctx.port} | tail -1)"`],
    async show(ctx, s) {
      const got = await containerSaid(ctx, 'localhost-redirect');
      const ok = got.includes(PAGE.trim());
      return [`${ok ? '' : 'FAILED: '}inside, GET http://[::1]:${ctx.port}/ reached the container's own server on [${s.redirects?.['::1']}]:${ctx.port}: "${got.trim()}"`];
    },
  },
  {
    name: 'sysctl',
    annotation: 'deny',
    inside: () => ['echo "sysctl: $(cat /proc/sys/kernel/ostype 2>&1)"'],
    async show(ctx, s) {
      const got = await containerSaid(ctx, 'sysctl');
      const ok = /not permitted/.test(got);
      return [`${ok ? '' : 'FAILED: '}policy ${(s.policies ?? []).map((p, i) => `${p} ${s.defaults?.[i] ?? ''}`.trim()).join(' + ')}: inside, reading kernel.ostype gives "${got.trim()}" (the host reads "${fs.readFileSync('/proc/sys/kernel/ostype', 'utf8').trim()}")`];
    },
  },
  {
    name: 'twfw',
    annotation: (ctx) => JSON.stringify({ rules: [{ name: 'demo-block', direction: 'egress', action: 'drop', proto: 'tcp', ports: [ctx.blocked.port] }] }),
    async prepare(ctx) {
      const peer = hostPeerAddress();
      if (peer) ctx.blocked = { peer, ...(await listenOnce(peer)) };
    },
    inside: (ctx) => (ctx.blocked ? [`echo "twfw: $(echo x | nc -w 2 ${ctx.blocked.peer} ${ctx.blocked.port} >/dev/null 2>&1 && echo connected || echo failed)"`] : []),
    async show(ctx, s) {
      if (!ctx.blocked) return ['(no global address on this host to show a blocked connection with)'];
      const got = await containerSaid(ctx, 'twfw');
      const arrived = await Promise.race([ctx.blocked.from.then(() => true), after(200, false)]);
      const ok = got === 'failed' && !arrived;
      return [`${ok ? '' : 'FAILED: '}${s.rules} rule (egress tcp to port ${ctx.blocked.port}: drop): the container's connection to ${fmtHostPort(ctx.blocked.peer, ctx.blocked.port)} ${got}${arrived ? ' and reached the host' : ', the host saw nothing'}`];
    },
  },
  {
    name: 'netns',
    annotation: 'auto',
    network: 'private',
    files: WWW,
    prepare: peerListener,
    inside: serveAndCall,
    async show(ctx, s) {
      const ip = s.ip6 ?? s.ip4;
      const lines = [`a ${s.device} pair (host side ${s.hostDevice}, programs by ${s.attach}) into the container's own netns, which has ${[s.ip6, s.ip4].filter(Boolean).join(' and ')}`];
      await containerSaid(ctx, 'serving');
      const reply = await httpGet(ip, ctx.port);
      lines.push(`GET http://${fmtHostPort(ip, ctx.port)}/ from the host answers "${reply.trim()}"`);
      return [...lines, await outbound(ctx, [s.ip6, s.ip4])];
    },
  },
];

// ---- small helpers -----------------------------------------------------------------------------
const say = (s = '') => process.stdout.write(`${s}\n`);
const title = (s) => say(`\n== ${s}`);
const fmtHostPort = (a, p) => (a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Resolves to `value` after ms without keeping the process alive (for races). */
const after = (ms, value) => new Promise((r) => setTimeout(r, ms, value).unref());

async function until(fn, what, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v && (!Array.isArray(v) || v.length)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function cli(...args) {
  return execFileSync(NODE, [CLI, ...args, '--config', configPath], { encoding: 'utf8' });
}

/** Plugin names in the registry, read from its source: the demo must not depend on a build. */
function registeredPlugins() {
  const src = fs.readFileSync(path.join(ROOT, 'plugins', 'index.ts'), 'utf8');
  return [...src.matchAll(/\{\s*name:\s*'([^']+)'/g)].map((m) => m[1]);
}

/** A global address of this host outside taskwire's prefixes, to stand for a peer. */
function hostPeerAddress() {
  const links = JSON.parse(execFileSync('ip', ['-j', 'addr', 'show', 'scope', 'global'], { encoding: 'utf8' }));
  const addrs = links.filter((l) => l.ifname !== 'lo').flatMap((l) => l.addr_info.map((a) => a.local));
  return addrs.find((a) => a.includes(':')) ?? addrs[0];
}

/** A host TCP listener; `from` resolves to the address of the first client. */
function listenOnce(host) {
  return new Promise((resolve, reject) => {
    let got;
    const from = new Promise((r) => (got = r));
    const srv = net.createServer((s) => {
      got(s.remoteAddress);
      s.end();
      srv.close();
    });
    srv.on('error', reject);
    srv.listen({ host, port: 0 }, () => resolve({ port: srv.address().port, from, close: () => srv.close() }));
  });
}

function httpGet(host, port) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port }, () => s.write('GET / HTTP/1.0\r\n\r\n'));
    let data = '';
    s.setTimeout(5000, () => s.destroy(new Error(`no answer from ${fmtHostPort(host, port)}`)));
    s.on('data', (d) => (data += d));
    s.on('end', () => resolve(data.split('\r\n\r\n').slice(1).join('')));
    s.on('error', reject);
  });
}

function listenersOn(port) {
  const out = execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' });
  return out.split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/)[3]);
}

function freePort() {
  for (const p of [8080, 8081, 8088, 18080]) if (listenersOn(p).length === 0) return p;
  return 20000 + Math.floor(Math.random() * 20000);
}

// ---- runtimes ---------------------------------------------------------------------------------
const podmanGlobal = () => ['--runtime', RUNC, '--hooks-dir', path.join(work, 'hooks.d')];

function podmanWorks(rootfs) {
  if (!fs.existsSync(PODMAN)) return 'podman is not installed';
  const r = spawnSync(PODMAN, ['--runtime', RUNC, 'run', '--rm', '--network', 'host', ...ULIMITS, '--rootfs', rootfs, 'true'], { encoding: 'utf8', timeout: 20000 });
  return r.status === 0 ? null : `podman cannot run a container here: ${(r.stderr || String(r.error)).trim().split('\n').pop()}`;
}

// Without CAP_SYS_RESOURCE a limit cannot be raised, and podman's defaults may ask for more than
// the current hard limits: ask for limits at or below what any host grants (lowering is allowed).
const ULIMITS = ['--ulimit', `nofile=${lowLimit('Max open files')}`, '--ulimit', `nproc=${lowLimit('Max processes')}`];
function lowLimit(label) {
  const line = fs.readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith(label));
  const hard = Number(line?.slice(26).trim().split(/\s+/)[1]);
  const v = Number.isFinite(hard) ? Math.min(1024, hard) : 1024;
  return `${v}:${v}`;
}

/** Installs the hooks into the demo's own hooks.d, as an operator would into /etc. */
function installHooks() {
  const dir = path.join(work, 'hooks.d');
  return cli('install', '--hooks-dir', dir).trim().split('\n');
}

function start(runtime, rootfs, cname, network, annotations, script) {
  if (runtime === 'podman') {
    // podman reads each --annotation as a CSV list (a string-slice flag): a JSON value must be
    // one quoted CSV field, with its quotes doubled, or podman rejects or splits it at commas.
    const csv = (f) => (/[",]/.test(f) ? `"${f.replace(/"/g, '""')}"` : f);
    const ann = Object.entries(annotations).flatMap(([k, v]) => ['--annotation', csv(`${k}=${v}`)]);
    const net = network === 'host' ? 'host' : 'none';
    const r = spawnSync(PODMAN, [...podmanGlobal(), 'run', '-d', '--rm', '--name', cname, ...ann, ...ULIMITS, '--network', net, '--rootfs', rootfs, 'sh', '-c', script], { encoding: 'utf8', timeout: 30000 });
    if (r.status !== 0) throw new Error(`podman run failed: ${r.stderr.trim()}`);
    const id = r.stdout.trim();
    return { id, output: () => spawnSync(PODMAN, ['logs', cname], { encoding: 'utf8' }).stdout || '', remove: () => spawnSync(PODMAN, ['rm', '-f', '-t', '0', cname], { encoding: 'utf8' }) };
  }
  const bundle = path.join(work, `bundle-${network}`);
  const hooks = { node: NODE, hookJs: HOOK, hostConfig: configPath };
  writeSpec(bundle, { id: cname, args: ['sh', '-c', script], annotations, hooks, netns: network !== 'host' }, (spec) => (spec.root = { path: rootfs, readonly: true }));
  const r = spawnSync('sh', ['-c', 'exec "$0" run -d --bundle "$1" "$2" >"$1/stdout" 2>"$1/stderr"', RUNC, bundle, cname], { encoding: 'utf8', timeout: 30000 });
  if (r.status !== 0) throw new Error(`runc run failed: ${fs.readFileSync(path.join(bundle, 'stderr'), 'utf8').trim()}`);
  const remove = () => spawnSync(RUNC, ['delete', '--force', cname], { encoding: 'utf8' });
  return { id: cname, output: () => fs.readFileSync(path.join(bundle, 'stdout'), 'utf8'), remove };
}

// ---- the demo ---------------------------------------------------------------------------------
async function main() {
  const t0 = Date.now();
  const registered = registeredPlugins();
  const plugins = PLUGINS.filter((p) => registered.includes(p.name));
  for (const p of PLUGINS) if (!registered.includes(p.name)) say(`(${p.name}: in the demo table but not registered in plugins/index.ts yet; skipped)`);
  for (const n of registered) if (!PLUGINS.some((p) => p.name === n)) say(`(${n}: registered but has no demo entry in scripts/demo.js; not shown)`);

  const rootfs = busyboxRootfs(path.join(work, 'rootfs'), Object.assign({}, ...plugins.map((p) => p.files ?? {})));
  const forced = process.env.DEMO_RUNTIME;
  const podmanProblem = forced === 'runc' ? 'DEMO_RUNTIME=runc' : podmanWorks(rootfs);
  if (podmanProblem && forced === 'podman') throw new Error(podmanProblem);
  const runtime = podmanProblem ? 'runc' : 'podman';
  title(`taskwire on ${runtime}`);
  if (podmanProblem) say(`using runc directly (${podmanProblem}); each config.json names the hook`);
  else for (const l of installHooks()) say(l);

  let ok = true;
  for (const network of ['host', 'private']) {
    const group = plugins.filter((p) => (p.network ?? 'host') === network);
    if (group.length) ok = (await runContainer(runtime, rootfs, network, group)) && ok;
  }
  say(`\ndone in ${((Date.now() - t0) / 1000).toFixed(1)} s${ok ? '' : ' (with failures above)'}`);
  process.exitCode = ok ? 0 : 1;
}

/** One container with `group` on: start, show each plugin's effect, ls/inspect, delete, check. */
async function runContainer(runtime, rootfs, network, group) {
  const t0 = Date.now();
  const cname = `${name}-${network}`;
  const ctx = { port: freePort(), output: () => '' };
  title(`a container in the ${network === 'host' ? "host's network namespace" : 'network namespace of its own'} with ${group.map((p) => p.name).join(', ')}`);
  for (const p of group) await p.prepare?.(ctx);
  const annotations = Object.fromEntries(group.map((p) => [PREFIX + p.name, typeof p.annotation === 'function' ? p.annotation(ctx) : p.annotation]));
  for (const [k, v] of Object.entries(annotations)) say(`annotation ${k}=${v}`);
  const script = [...group.flatMap((p) => p.inside?.(ctx) ?? []), 'exec sleep 600'].join('\n');
  const c = start(runtime, rootfs, cname, network, annotations, script);
  ctx.output = c.output;
  say(`container ${cname} started${c.id !== cname ? ` (id ${c.id.slice(0, 12)})` : ''} in ${Date.now() - t0} ms`);

  let ok = true;
  try {
    const view = JSON.parse(cli('ls', '--json')).find((v) => v.id === c.id);
    if (!view) throw new Error(`taskwire has no record of ${c.id}: did the hook run? (log: ${config.logFile})`);
    title('what each plugin did');
    for (const p of group) {
      const summary = view.plugins.find((x) => x.name === p.name)?.summary ?? {};
      let lines;
      try {
        lines = await p.show(ctx, summary);
      } catch (err) {
        lines = [`FAILED: ${err.message}`];
      }
      for (const l of lines) {
        if (l.startsWith('FAILED')) ok = false;
        say(`${p.name}: ${l}`);
      }
    }
    if (!ok) say(`container output so far:\n${c.output().trim() || '(none)'}`);

    title('taskwire ls');
    process.stdout.write(cli('ls'));
    title(`taskwire inspect ${c.id.length > 16 ? `${c.id.slice(0, 12)}...` : c.id}`);
    const r = spawnSync(NODE, [CLI, 'inspect', c.id, '--config', configPath], { encoding: 'utf8' });
    process.stdout.write(r.status === 0 ? r.stdout : `(inspect failed: ${r.stderr.trim()})\n`);

    title(`deleting the container (${runtime === 'podman' ? 'podman rm' : 'runc delete'}; poststop undoes everything)`);
    const rm = c.remove();
    if (rm.status !== 0) throw new Error(`delete failed: ${rm.stderr.trim()}`);
    const left = await leftovers(c.id, view);
    if (left.length) {
      ok = false;
      say(`FAILED: left behind: ${left.join(', ')}`);
    } else {
      const addrs = view.plugins.flatMap((p) => [p.summary.ip6, p.summary.ip4]).filter((a) => typeof a === 'string');
      say(`nothing left: no record, no pins under ${path.join(config.bpffs, 'taskwire')} (but _shared), ${[...new Set(addrs)].join(' and ') || 'no address'} gone from the host, cgroup removed`);
    }
    process.stdout.write(cli('ls'));
  } finally {
    c.remove();
    ctx.peerServer?.close();
    ctx.blocked?.close();
  }
  return ok;
}

/** What of container `id` is still on the host after its delete (podman's poststop may lag). */
async function leftovers(id, view) {
  const recordGone = () => !JSON.parse(cli('ls', '--json')).some((v) => v.id === id);
  await until(recordGone, 'poststop to remove the record').catch(() => {});
  const addrs = view.plugins.flatMap((p) => [p.summary.ip6, p.summary.ip4]).filter((a) => typeof a === 'string');
  const onHost = JSON.parse(execFileSync('ip', ['-j', 'addr', 'show'], { encoding: 'utf8' })).flatMap((l) => l.addr_info.map((a) => a.local));
  const pinRoot = path.join(config.bpffs, 'taskwire');
  // _shared holds host-wide objects (named sets, endpoint maps) that outlive any one container.
  const pins = fs.existsSync(pinRoot) ? fs.readdirSync(pinRoot).filter((d) => d !== '_shared') : [];
  const devices = view.plugins.map((p) => p.summary.hostDevice).filter((d) => typeof d === 'string' && fs.existsSync(`/sys/class/net/${d}`));
  return [
    ...(recordGone() ? [] : [`the record of ${id}`]),
    ...pins.map((p) => `pin ${path.join(pinRoot, p)}`),
    ...addrs.filter((a) => onHost.includes(a)).map((a) => `address ${a}`),
    ...devices.map((d) => `device ${d}`),
    ...(fs.existsSync(view.cgroup) ? [`cgroup ${view.cgroup}`] : []),
  ];
}

main().catch((err) => {
  process.stderr.write(`demo: ${err.message}\n`);
  process.exit(1);
});
