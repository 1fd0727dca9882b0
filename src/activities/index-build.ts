/**
 * ensureIndex: a species' kallisto index is checked, or built exactly once (the seed let up to ten quants
 * build the same index at once). Two guards, because both kinds of concurrency happen:
 *  - within one worker process, concurrent calls for one index share one promise;
 *  - across worker processes (several workers on a host, or hosts sharing a filesystem), an O_EXCL lock
 *    file beside the index. A lock is stale when its owner is a dead pid on this host, or older than the
 *    build timeout (a crashed host can't be asked), and is then taken over.
 * The index is written under a temp name and renamed, so an index path that exists is always complete.
 */
import { hostname } from 'node:os';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, isAbsolute } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../failures.js';
import { indexKmers, kallistoIndex } from '../tools/kallisto.js';
import { pidAlive } from '../state-dir.js';
import { ToolFailedError, ToolMissingError, toToolFailure } from '../tools/process.js';
import type { Activities } from './contract.js';
import { systemClock } from '../tools/http.js';
import { activityHooks, type ActivityHooks } from './heartbeat.js';

const LOCK_POLL_MS = 500;

const indexError = (message: string) => ApplicationFailure.create({ type: FailureType.IndexError, message, nonRetryable: true });

async function nonEmptyFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile() && s.size > 0, () => false);
}

interface LockOwner {
  pid: number;
  host: string;
  startedAt: string;
}

async function lockIsStale(lockPath: string, timeoutSec: number): Promise<boolean> {
  const [text, st] = await Promise.all([readFile(lockPath, 'utf8').catch(() => ''), stat(lockPath).catch(() => null)]);
  if (!st) return false; // gone already: the caller simply tries again
  let owner: Partial<LockOwner> = {};
  try {
    owner = JSON.parse(text) as LockOwner;
  } catch {
    // Half-written by an owner killed between open and write: judged by age below.
  }
  if (owner.host === hostname() && typeof owner.pid === 'number' && !pidAlive(owner.pid)) return true;
  return Date.now() - st.mtimeMs > timeoutSec * 1000;
}

/** Takes the lock (true), or returns false while another live builder holds it. */
async function tryLock(lockPath: string, timeoutSec: number): Promise<boolean> {
  try {
    const fh = await open(lockPath, 'wx');
    const owner: LockOwner = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
    await fh.writeFile(JSON.stringify(owner));
    await fh.close();
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  if (await lockIsStale(lockPath, timeoutSec)) {
    await rm(lockPath, { force: true });
    return tryLock(lockPath, timeoutSec);
  }
  return false;
}

async function build(indexPath: string, fastaPaths: string[], timeoutSec: number, hooks: ActivityHooks): Promise<void> {
  if (fastaPaths.length === 0) {
    throw indexError(`no kallisto index at ${indexPath} and no transcriptome FASTA to build it from (looked for <Genus_species>*.fa[sta][.gz] in steps.quant.fasta_dir, or genome.files.transcriptome_fasta)`);
  }
  const missing: string[] = [];
  for (const f of fastaPaths) if (!(await nonEmptyFile(f))) missing.push(f);
  if (missing.length) throw indexError(`no kallisto index at ${indexPath}, and the transcriptome FASTA to build it from is missing or empty: ${missing.join(', ')}`);
  const tmp = `${indexPath}.building-${process.pid}`;
  await rm(tmp, { force: true });
  try {
    const r = await kallistoIndex(tmp, fastaPaths, { timeoutSec, signal: hooks.signal, onHeartbeat: () => hooks.heartbeat() });
    if (!(await nonEmptyFile(tmp))) throw indexError(`kallisto index exited 0 but wrote no index at ${tmp} from ${fastaPaths.join(', ')}`);
    if (indexKmers(r.stderr + r.stdout) === 0) {
      throw indexError(`building ${indexPath}: kallisto found 0 k-mers in ${fastaPaths.join(', ')} (not a transcriptome FASTA, or every sequence shorter than 31 bases)`);
    }
    await rename(tmp, indexPath);
  } catch (err) {
    await rm(tmp, { force: true });
    if (err instanceof ToolFailedError) throw indexError(`building ${indexPath} from ${fastaPaths.join(', ')} failed: ${err.message}`);
    if (err instanceof ToolMissingError) throw toToolFailure(err, `building ${indexPath}`);
    throw err;
  }
}

export async function ensureIndexOnce(
  indexPath: string,
  fastaPaths: string[],
  timeoutSec: number,
  hooks: ActivityHooks,
): Promise<{ indexPath: string; built: boolean }> {
  const lockPath = `${indexPath}.lock`;
  await mkdir(dirname(indexPath), { recursive: true });
  for (;;) {
    if (await nonEmptyFile(indexPath)) return { indexPath, built: false };
    hooks.heartbeat();
    if (await tryLock(lockPath, timeoutSec)) {
      try {
        // Another process may have finished between our check and taking the lock.
        if (await nonEmptyFile(indexPath)) return { indexPath, built: false };
        await build(indexPath, fastaPaths, timeoutSec, hooks);
        return { indexPath, built: true };
      } finally {
        await rm(lockPath, { force: true });
      }
    }
    await systemClock.sleep(LOCK_POLL_MS, hooks.signal);
  }
}

export function createIndexActivities(): Pick<Activities, 'ensureIndex'> {
  const inProcess = new Map<string, Promise<{ indexPath: string; built: boolean }>>();
  return {
    async ensureIndex({ indexPath, fastaPaths, timeoutSec, onlyIfBuilt }) {
      if (!isAbsolute(indexPath) || indexPath.split('/').includes('..')) {
        throw indexError(`index path must be absolute without '..' (got ${JSON.stringify(indexPath)})`);
      }
      // Fast path: every sample calls this; a stat is all it should cost once the index exists.
      if (await nonEmptyFile(indexPath)) return { indexPath, built: false };
      if (onlyIfBuilt) return { indexPath, built: false, missing: true };
      const hooks = activityHooks();
      let p = inProcess.get(indexPath);
      const mine = !p;
      if (!p) {
        p = ensureIndexOnce(indexPath, fastaPaths, timeoutSec, hooks).finally(() => inProcess.delete(indexPath));
        inProcess.set(indexPath, p);
      }
      if (mine) return p;
      // A follower heartbeats on its own while the leader builds, and reports built:false (it did not build).
      const beat = setInterval(() => hooks.heartbeat(), 1000);
      try {
        const r = await p;
        return { indexPath: r.indexPath, built: false };
      } finally {
        clearInterval(beat);
      }
    },
  };
}
