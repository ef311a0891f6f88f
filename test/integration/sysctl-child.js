// A process that moves itself into a cgroup (argv[2], '' = stay) and then reads and writes
// /proc/sys as told (argv[3], JSON ops), printing one JSON array of results. Run it under
// `unshare -n` to write network sysctls of a private netns only.
'use strict';
const fs = require('node:fs');

const [cgroup, opsJson] = process.argv.slice(2);
if (cgroup) fs.writeFileSync(`${cgroup}/cgroup.procs`, String(process.pid));
const path = (name) => `/proc/sys/${name.includes('/') ? name : name.replaceAll('.', '/')}`;
const out = [];
for (const op of JSON.parse(opsJson)) {
  try {
    if (op.op === 'read') out.push({ ok: true, value: fs.readFileSync(path(op.name), 'utf8').trimEnd() });
    else if (op.op === 'write') {
      fs.writeFileSync(path(op.name), op.value);
      out.push({ ok: true });
    } else if (op.op === 'read-loop') {
      // One open file read with pread at offset 0 each time: the cost is the sysctl handler's.
      const fd = fs.openSync(path(op.name), 'r');
      const buf = Buffer.alloc(256);
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < op.n; i++) fs.readSync(fd, buf, 0, buf.length, 0);
      const ns = Number(process.hrtime.bigint() - t0);
      fs.closeSync(fd);
      out.push({ ok: true, nsPerOp: ns / op.n });
    } else throw new Error(`unknown op ${op.op}`);
  } catch (err) {
    out.push({ ok: false, code: err.code ?? String(err) });
  }
}
process.stdout.write(JSON.stringify(out));
