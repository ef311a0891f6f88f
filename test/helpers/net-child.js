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
      emit({ event: 'accepted', remote: s.remoteAddress, remotePort: s.remotePort, local: s.localAddress });
      s.on('data', (d) => s.write(`echo:${d}`));
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
      sock.send(`echo:${msg}`, from.port, from.address);
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
    const go = () => (cmd.connect ? sock.send(cmd.data || 'ping') : sock.send(cmd.data || 'ping', cmd.port, cmd.host));
    if (cmd.connect) sock.connect(cmd.port, cmd.host, go);
    else go();
    break;
  }
  default:
    fail({ code: 'EINVAL', message: `unknown op ${cmd.op}` });
}
