/*
 * Reading a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) through libbpf's ring_buffer: records are
 * handed over as Buffers copied out of the mapped ring. consume() never blocks; poll() blocks the
 * calling thread up to `ms` (a CLI streaming events polls in short slices between timers).
 */
import { SyscallError } from '../errors';
import { libbpf, registerSample } from '../ffi';
import { checkInt, checkPtr } from './libbpf';
import { BpfMap } from './map';

export class RingBuffer {
  private ptr: unknown;
  private readonly map: BpfMap;
  private readonly sample: { cb: unknown; unregister(): void };

  /** Opens the pinned ring buffer at `path`; each record goes to `onRecord`. */
  constructor(path: string, onRecord: (data: Buffer) => void) {
    this.map = BpfMap.openPinned(path);
    this.sample = registerSample(onRecord);
    try {
      this.ptr = checkPtr(libbpf.ringbufNew(this.map.fd, this.sample.cb, null, null), `open ring buffer ${path}`);
    } catch (err) {
      this.sample.unregister();
      this.map.close();
      throw err;
    }
  }

  /** Hands over every record available now; returns how many. */
  consume(): number {
    return checkInt(libbpf.ringbufConsume(this.ptr) as number, 'consume ring buffer');
  }

  /** Waits up to `ms` for records, then hands them over; returns how many. */
  poll(ms: number): number {
    const rc = libbpf.ringbufPoll(this.ptr, ms) as number;
    if (rc === -4) return 0; // EINTR
    if (rc < 0) throw new SyscallError('BPF', 'poll ring buffer', -rc);
    return rc;
  }

  close(): void {
    if (this.ptr === null) return;
    libbpf.ringbufFree(this.ptr);
    this.ptr = null;
    this.sample.unregister();
    this.map.close();
  }
}
