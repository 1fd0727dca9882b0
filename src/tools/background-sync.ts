/**
 * Writeback while a file is still being written (issue 15).
 *
 * A download is fsynced before its name is published (a crash must never leave a checked name on bytes that
 * were only in the page cache). Written at page-cache speed and synced only at the end, a GB of FASTQ then
 * waited for the disk all at once: on the 2-core VM of bench/results/, a 150 MB `.fastq.gz` kept plain took
 * 2.3-2.6 s from request to checked file against 1.3 s with the syncs left out (bench/download-cpu.ts,
 * docs/benchmarks.md "Writeback during the transfer"), and the first quant of a batch waits on exactly that.
 * An fdatasync every SYNC_EVERY bytes while the file grows spreads the disk's work over the transfer; the sync
 * before the rename then has only the tail to write. It changes no guarantee: the last sync is still awaited
 * before the name is published, and an error of any sync fails the file.
 *
 * Each sync runs in libuv's thread pool, which the whole process shares (4 threads by default: every fs call
 * of the worker waits there too). So at most PERMITS run at once in a process, counted in shared memory across
 * its threads (the main thread and the check threads of ./fastq.ts); a file that finds none free tries again
 * at its next write.
 */

/** Bytes written since the last sync began before the next one starts. */
export const SYNC_EVERY = 32 << 20;
/** Background syncs at once in one process. */
const PERMITS = 2;

let permits: SharedArrayBuffer | null = null;
/** This process's permit count, to hand to worker threads (workerData) so they share it. */
export function syncPermits(): SharedArrayBuffer {
  return (permits ??= new SharedArrayBuffer(4));
}

export class BackgroundSync {
  private readonly cell: Int32Array;
  /** the file's size when the last sync began */
  private syncedTo = 0;
  private inFlight: Promise<void> | null = null;
  private error: Error | null = null;

  /** `sync`: fdatasync of the file (its fd or FileHandle); `shared`: syncPermits() of the process. */
  constructor(
    private readonly sync: () => Promise<void>,
    shared: SharedArrayBuffer = syncPermits(),
    private readonly every = SYNC_EVERY,
  ) {
    this.cell = new Int32Array(shared);
  }

  /** The file holds `bytes` now: a sync starts if `every` more were written since the last began and a permit is free. */
  wrote(bytes: number): void {
    if (this.inFlight || this.error || bytes - this.syncedTo < this.every) return;
    if (Atomics.add(this.cell, 0, 1) >= PERMITS) {
      Atomics.sub(this.cell, 0, 1);
      return;
    }
    this.syncedTo = bytes;
    this.inFlight = this.sync()
      .catch((err: unknown) => {
        this.error ??= err as Error;
      })
      .finally(() => {
        Atomics.sub(this.cell, 0, 1);
        this.inFlight = null;
      });
  }

  /** A sync is under way: the file's descriptor must stay open until settle() resolves. */
  get running(): boolean {
    return this.inFlight !== null;
  }

  /**
   * Waits for a sync under way, and returns the first error of any: Linux reports a failed writeback to one
   * fsync only, so the final sync may not see it again.
   */
  async settle(): Promise<Error | null> {
    await this.inFlight;
    return this.error;
  }
}
