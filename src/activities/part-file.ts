/**
 * A download's partial file, written by one attempt only.
 *
 * Temporal runs an activity at least once, and sometimes twice at the same time: an attempt the server has
 * given up on (its heartbeats stopped reaching a restarted server, or its host was declared lost) runs on
 * while the retry starts. Two attempts appending to one `<name>.part` interleave their bytes, and the one
 * that renames it publishes bytes its md5 never saw; the older one may even write into the file after the
 * newer renamed it to its final name. So each attempt writes a file of its own, `<name>.<pid>-<hex>-<n>.part`,
 * and only ever renames that one:
 * - `<name>.part` is a second hard link to the newest attempt's file: what a resume starts from, and what
 *   anyone watching the transfer sees grow;
 * - a new attempt copies those bytes into its own file (a reflink where the file system has them) and
 *   moves the link to it; the older attempt keeps writing into its own inode, now unnamed or nearly, and
 *   its other names are removed, so it can never rename anything into place;
 * - a retry in the same process whose earlier attempt is over takes its file back without a copy (the
 *   common case: a connection lost, Temporal retries on the same worker), and so does one whose earlier
 *   attempt's process is provably gone (same machine and boot, pid not alive: a worker killed -9 and
 *   restarted);
 * - a copy the disk has no room for starts the file over, rather than failing every attempt.
 */
import { constants } from 'node:fs';
import { copyFile, link, readdir, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { bootId } from '../run-lease.js';
import { pidAlive } from '../state-dir.js';

/** This machine and boot, as 8 hex digits of its boot id (random where there is none: never matches). */
const BOOT = /^[0-9a-f]{8}/.exec(bootId()?.replace(/-/g, '') ?? '')?.[0] ?? randomBytes(4).toString('hex');
/** This process's mark in its files' names: pid, boot, and a random part (a reused pid gets another). */
const PROCESS_TOKEN = `${process.pid}-${BOOT}${randomBytes(3).toString('hex')}`;

/** An attempt's own file, `<name>.<pid>-<boot><hex>-<n>.part`, or a link to it half made by a crash (`.link`). */
const OWN_SUFFIX = /\.(\d+)-([0-9a-f]+)-\d+\.part(\.link)?$/;

/** True when the file's writer was a process of this machine and boot that is gone. */
function writerGone(name: string): boolean {
  const m = OWN_SUFFIX.exec(name);
  return !!m && !m[3] && m[2]!.startsWith(BOOT) && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]));
}
/** `<name>.part`, not an attempt's own file: one per transfer, for those who watch transfers by name. */
export const isSharedPartName = (name: string): boolean => name.endsWith('.part') && !OWN_SUFFIX.test(name);

let serial = 0;
/** Own files of this process that an attempt is writing now. */
const writing = new Set<string>();

export interface PartFile {
  /** `<final>.part`: the newest attempt's bytes, by a second name */
  shared: string;
  /** this attempt's own file: the only one it writes, truncates, renames or deletes */
  own: string;
}

type Ident = { dev: number; ino: number };
const sameFile = (a: Ident | null, b: Ident | null) => !!a && !!b && a.dev === b.dev && a.ino === b.ino;
const statOf = (p: string) => stat(p).catch(() => null);

/** Every attempt's own file of `final` (and a link half made by a crash), by path. */
async function ownFilesOf(final: string): Promise<string[]> {
  const base = basename(final);
  const names = await readdir(dirname(final)).catch(() => [] as string[]);
  return names.filter((n) => OWN_SUFFIX.exec(n)?.index === base.length && n.startsWith(`${base}.`)).map((n) => join(dirname(final), n));
}

/**
 * This attempt's own partial file for `final`, holding the bytes the newest earlier attempt left (none when
 * it left more than `maxBytes`, which cannot be the file). The caller must end with publishPart, dropPart
 * or releasePart.
 */
export async function claimPart(final: string, maxBytes: number | null): Promise<{ part: PartFile; offset: number }> {
  const shared = `${final}.part`;
  const sharedSt = await statOf(shared);
  const others = await ownFilesOf(final);
  // The own file `shared` links, and whether it can be taken as it is: an earlier attempt of this process
  // that is over, or a writer provably gone.
  let newest: string | undefined;
  for (const p of others) if (!p.endsWith('.link') && sameFile(sharedSt, await statOf(p))) newest = p;
  const mine = newest !== undefined && basename(newest).startsWith(`${basename(final)}.${PROCESS_TOKEN}-`) && !writing.has(newest);
  let own: string;
  if (newest !== undefined && mine) {
    own = newest;
  } else if (newest !== undefined && writerGone(basename(newest))) {
    // Its writer is gone: nobody else can write into it, so it becomes ours by name (`shared` still links it).
    own = `${final}.${PROCESS_TOKEN}-${++serial}.part`;
    await rename(newest, own);
  } else {
    own = `${final}.${PROCESS_TOKEN}-${++serial}.part`;
    if (sharedSt && sharedSt.size > 0 && (maxBytes === null || sharedSt.size <= maxBytes)) {
      // Another process's bytes (it may still be writing them): a copy of our own, never its inode.
      await copyFile(shared, own, constants.COPYFILE_FICLONE).catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOSPC') throw err;
        await writeFile(own, ''); // no room for a copy: the bytes are fetched again
      });
    } else {
      await writeFile(own, '');
    }
    const tmp = `${own}.link`;
    await rm(tmp, { force: true });
    await link(own, tmp);
    await rename(tmp, shared);
  }
  writing.add(own);
  // Older attempts' files: without their names they can publish nothing.
  await Promise.all(others.filter((p) => p !== own).map((p) => rm(p, { force: true })));
  let offset = (await stat(own)).size;
  if (maxBytes !== null && offset > maxBytes) {
    await truncate(own, 0);
    offset = 0;
  }
  return { part: { shared, own }, offset };
}

/** Removes `shared` while it still names this attempt's file (a newer attempt may have moved it). */
async function unlinkShared(part: PartFile, ownSt: Ident | null): Promise<void> {
  if (ownSt && sameFile(ownSt, await statOf(part.shared))) await rm(part.shared, { force: true });
}

/** False once a newer attempt has removed this attempt's file by name: it must then publish nothing. */
export async function partStillOwn(part: PartFile): Promise<boolean> {
  return (await statOf(part.own)) !== null;
}

/** Renames this attempt's whole, verified file to `final` and drops the shared name. */
export async function publishPart(part: PartFile, final: string): Promise<void> {
  const st = await statOf(part.own);
  await rename(part.own, final);
  await unlinkShared(part, st);
  writing.delete(part.own);
}

/** Deletes this attempt's bytes (wrong bytes: resuming them is futile). */
export async function dropPart(part: PartFile): Promise<void> {
  const st = await statOf(part.own);
  await rm(part.own, { force: true });
  await unlinkShared(part, st);
  writing.delete(part.own);
}

/** This attempt is over and keeps its bytes for the next one (a broken connection, a stall, a cancel). */
export function releasePart(part: PartFile): void {
  writing.delete(part.own);
}

/**
 * A new own file for an attempt that never resumes (the first bases of a run, ./downsample.ts): older
 * attempts' files and the shared name go, so none of them can be renamed into place after this one.
 */
export async function freshPart(final: string): Promise<string> {
  await Promise.all([...(await ownFilesOf(final)), `${final}.part`].map((p) => rm(p, { force: true })));
  return `${final}.${PROCESS_TOKEN}-${++serial}.part`;
}
