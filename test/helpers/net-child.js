// A socket actor for tests, run as a child process (optionally inside a test cgroup): one JSON
// command in argv[2], JSON-line events on stdout. Plain JS so it starts without a transform.
'use strict';
const net = require('node:net');
const dgram = require('node:dgram');
const cmd = JSON.parse(process.argv[2]);
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const fail = (err) => {
  emit({ event: 'error', code: err.code || String(err), message: err.message });
  process.exit(0);
};
const deadline = setTimeout(() => fail({ code: 'ETIMEDOUT', message: 'actor timed out' }), cmd.timeoutMs || 5000);

switch (cmd.op) {
  case 'tcp-listen': {
    const srv = net.createServer((s) => {
      if (!cmd.quiet) emit({ event: 'accepted', remote: s.remoteAddress, remotePort: s.remotePort, local: s.localAddress });
      s.on('data', (d) => s.write(`${cmd.tag || 'echo'}:${d}`));
      s.on('error', () => {});
    });
    srv.on('error', fail);
    srv.listen({ host: cmd.host, port: cmd.port || 0, ipv6Only: cmd.ipv6Only }, () => {
      clearTimeout(deadline);
      const a = srv.address();
      emit({ event: 'listening', address: a.address, port: a.port, family: a.family });
    });
    break;
  }
  case 'tcp-connect': {
    const opts = { host: cmd.host, port: cmd.port };
    if (cmd.localAddress) opts.localAddress = cmd.localAddress;
    const s = net.connect(opts, () => {
      emit({ event: 'connected', local: s.localAddress, localPort: s.localPort, remote: s.remoteAddress, remotePort: s.remotePort });
      s.write(cmd.data || 'ping');
    });
    s.on('data', (d) => {
      emit({ event: 'reply', data: String(d) });
      clearTimeout(deadline);
      s.end();
      process.exit(0);
    });
    s.on('error', fail);
    break;
  }
  case 'udp-listen': {
    const sock = dgram.createSocket({ type: cmd.host.includes(':') ? 'udp6' : 'udp4', ipv6Only: cmd.ipv6Only });
    sock.on('message', (msg, from) => {
      emit({ event: 'datagram', from: from.address, fromPort: from.port, data: String(msg) });
      sock.send(`${cmd.tag || 'echo'}:${msg}`, from.port, from.address);
    });
    sock.on('error', fail);
    sock.bind(cmd.port || 0, cmd.host, () => {
      clearTimeout(deadline);
      const a = sock.address();
      emit({ event: 'listening', address: a.address, port: a.port });
    });
    break;
  }
  case 'udp-send': {
    // Unconnected unless cmd.connect: sendto(2) each datagram; waits for the echo.
    const sock = dgram.createSocket(cmd.host.includes(':') ? 'udp6' : 'udp4');
    sock.on('message', (msg, from) => {
      emit({ event: 'reply', from: from.address, fromPort: from.port, data: String(msg), remote: cmd.connect ? sock.remoteAddress().address : undefined });
      clearTimeout(deadline);
      process.exit(0);
    });
    sock.on('error', fail);
    // A send refused by the kernel (a BPF program, say) reaches only the callback.
    const sent = (err) => err && fail(err);
    const go = () => (cmd.connect ? sock.send(cmd.data || 'ping', sent) : sock.send(cmd.data || 'ping', cmd.port, cmd.host, sent));
    if (cmd.connect) sock.connect(cmd.port, cmd.host, go);
    else go();
    break;
  }
  case 'tcp-connect-loop': {
    // cmd.count sequential connects, each until the server accepted and echoed one byte (so
    // connect and accept are both counted), then closed; reports the elapsed time. For benchmarks.
    clearTimeout(deadline);
    let left = cmd.count;
    const start = process.hrtime.bigint();
    const one = () => {
      if (left-- === 0) {
        emit({ event: 'done', count: cmd.count, ns: String(process.hrtime.bigint() - start) });
        process.exit(0);
      }
      const s = net.connect({ host: cmd.host, port: cmd.port }, () => s.write('x'));
      // RST instead of FIN: thousands of connects to one port must not pile up in TIME_WAIT.
      s.once('data', () => {
        s.resetAndDestroy();
        one();
      });
      s.on('error', fail);
    };
    one();
    break;
  }
  case 'udp-blast': {
    // cmd.count datagrams to host:port one after another; reports how many sends failed, by code
    // (a cgroup egress drop fails the send with EPERM, so the sender can count exactly).
    const sock = dgram.createSocket(cmd.host.includes(':') ? 'udp6' : 'udp4');
    const errors = {};
    let sent = 0;
    const next = (i) => {
      if (i >= cmd.count) {
        clearTimeout(deadline);
        emit({ event: 'blasted', sent, errors });
        process.exit(0);
      }
      sock.send(cmd.data || 'x', cmd.port, cmd.host, (err) => {
        if (err) errors[err.code] = (errors[err.code] || 0) + 1;
        else sent++;
        next(i + 1);
      });
    };
    sock.on('error', () => {});
    next(0);
    break;
  }
  case 'tcp-loop': {
    // Connects to each target in turn until cmd.durationMs passes; a connection counts as ok
    // once it echoes. Reports per target: ok, and failures by code.
    const results = {};
    const end = Date.now() + cmd.durationMs;
    const attempt = (t) =>
      new Promise((resolve) => {
        const s = net.connect({ host: t.host, port: t.port });
        const timer = setTimeout(() => done('ETIMEDOUT'), cmd.attemptMs || 300);
        function done(code) {
          clearTimeout(timer);
          s.destroy();
          const r = (results[t.port] = results[t.port] || { ok: 0 });
          r[code] = (r[code] || 0) + 1;
          resolve();
        }
        s.on('connect', () => s.write('ping'));
        s.on('data', () => done('ok'));
        s.on('error', (err) => done(err.code || 'error'));
      });
    clearTimeout(deadline);
    (async () => {
      emit({ event: 'started' });
      while (Date.now() < end) for (const t of cmd.targets) await attempt(t);
      emit({ event: 'summary', results });
      process.exit(0);
    })();
    break;
  }
  default:
    fail({ code: 'EINVAL', message: `unknown op ${cmd.op}` });
}
