/* Host addresses over rtnetlink (lib/net/netlink.ts): one socket serves every request of a
 * process, and a refused request (a nack) leaves it usable: acks are matched by sequence. */
import { randomInt } from 'node:crypto';
import { describePrivileged } from '../helpers/privileged';
import { deviceAddresses, onCleanup, runCleanups } from '../helpers/kernel';
import { addAddress, removeAddress } from '../../lib/net/netlink';
import { SyscallError } from '../../lib/errors';

describePrivileged('rtnetlink host addresses', () => {
  afterAll(runCleanups);

  test('add, a refused add, remove and a second remove on one socket', () => {
    const a6 = `fd00:7a5c:ffee:${randomInt(1, 0xffff).toString(16)}::${randomInt(1, 0xffff).toString(16)}`;
    const a4 = `10.123.255.${randomInt(1, 254)}`;
    onCleanup(() => {
      removeAddress('lo', a6, 128);
      removeAddress('lo', a4, 32);
    });
    addAddress('lo', a6, 128);
    let refused: unknown;
    try {
      addAddress('lo', a6, 128);
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(SyscallError);
    expect((refused as SyscallError).errnoName).toBe('EEXIST');
    addAddress('lo', a4, 32);
    expect(deviceAddresses()).toEqual(expect.arrayContaining([a6, a4]));
    removeAddress('lo', a6, 128);
    removeAddress('lo', a4, 32);
    removeAddress('lo', a4, 32); // gone already: done
    expect(deviceAddresses()).not.toContain(a6);
    expect(deviceAddresses()).not.toContain(a4);
    expect(() => addAddress('tw-no-such-dev', a6, 128)).toThrow(/ENODEV/);
  });
});
