/*
 * localhost-redirect through the real runc: two busybox containers with distinct task IPs, each
 * running httpd on the same port, each reaching its own through localhost (runc exec + wget).
 */
import { randomInt } from 'node:crypto';
import { describePrivileged } from '../helpers/privileged';
import { eventually, runCleanups, testHost, TestHost } from '../helpers/kernel';
import { once } from '../helpers/net';
import { makeBundle, runcDelete, runcExec, runcRun } from '../helpers/bundle';
import { readRecord } from '../../lib/state/record';

describePrivileged(
  'localhost-redirect end to end with runc',
  () => {
    let host: TestHost;
    beforeAll(() => {
      host = testHost();
    });
    afterAll(runCleanups);

    test('two containers serve the same port; each reaches its own via [::1] and 127.0.0.1', async () => {
      const port = randomInt(20000, 40000);
      const start = (name: string) => {
        // httpd's default bind is [::] (moved to the task IPv6); the second one binds 0.0.0.0 for 127.0.0.1.
        const b = makeBundle({
          args: ['sh', '-c', `httpd -p 0.0.0.0:${port} -h /www && exec httpd -f -p ${port} -h /www`],
          files: { 'www/index.html': `served by ${name}\n` },
          annotations: { 'io.taskwire.ip-per-task': 'auto', 'io.taskwire.localhost-redirect': 'true' },
          hostConfig: host.configPath,
          idPrefix: `tw.lr.${name}`,
        });
        expect(runcRun(b, { detach: true })).toMatchObject({ code: 0 });
        return b;
      };
      const [a, b] = [start('a'), start('b')];
      const layout = host.layout;
      const ips = [a, b].map((x) => readRecord(layout, x.id)!.plugins.find((p) => p.name === 'ip-per-task')!.summary as { ip6: string; ip4: string });
      expect(ips[0].ip6).not.toBe(ips[1].ip6);

      // busybox nc, not wget: the static busybox's wget crashes in the resolver without NSS files.
      const get = (x: typeof a, addr: string) => runcExec(x, ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${addr} ${port}`]).stdout;
      for (const [x, name] of [[a, 'a'], [b, 'b']] as const) {
        await eventually(() => get(x, '::1').endsWith(`served by ${name}\n`), `${name} reaches its own httpd on [::1]:${port}`, 10000);
        expect(get(x, '::1')).toMatch(/^HTTP\/1\.[01] 200/);
        expect(get(x, '127.0.0.1')).toMatch(new RegExp(`^HTTP/1\\.[01] 200[^]*served by ${name}\n$`));
      }
      // The host's own loopback has nothing on that port: the redirect lives only inside the tasks.
      expect((await once(null, { op: 'tcp-connect', host: '::1', port }))[0]).toMatchObject({ event: 'error', code: 'ECONNREFUSED' });

      for (const x of [a, b]) expect(runcDelete(x)).toMatchObject({ code: 0, stderr: '' });
      for (const x of [a, b]) expect(readRecord(layout, x.id)).toBeUndefined();
    });
  },
  ['runc', 'bpftool'],
);
