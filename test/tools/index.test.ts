// ensureIndex with the real kallisto: built once under concurrency (in one process and across "processes"),
// stale locks taken over, clear non-retryable errors when there is nothing to build from.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { createIndexActivities } from '../../src/activities/index-build.js';
import { makeTranscriptome } from '../../src/mirror/fixtures.js';
import { act, cleanTempDirs, failureOf, quiet, tempDir } from './util.js';

let fasta: string;
beforeAll(async () => {
  fasta = join(tempDir('fq-fasta-'), 'Synthetica_alpha.fa');
  await makeTranscriptome(fasta, { transcripts: 30, length: 1500, seed: 5 });
});
afterAll(cleanTempDirs);

const input = (indexPath: string) => ({ indexPath, fastaPaths: [fasta], timeoutSec: 120 });

describe('ensureIndex', () => {
  it('two concurrent calls in one worker: one build, both see the index', async () => {
    const dir = tempDir();
    const idx = join(dir, 'index', 'Synthetica_alpha.idx');
    const acts = createIndexActivities();
    const results = await Promise.all([act(quiet(), acts.ensureIndex, input(idx)), act(quiet(), acts.ensureIndex, input(idx))]);
    expect(results.map((r) => r.built).sort()).toEqual([false, true]);
    expect(statSync(idx).size).toBeGreaterThan(0);
    expect(readdirSync(join(dir, 'index'))).toEqual(['Synthetica_alpha.idx']); // no lock, no temp left
    expect(await act(quiet(), acts.ensureIndex, input(idx))).toEqual({ indexPath: idx, built: false });
  });

  it('two workers (separate in-process maps) on one index: the lock file lets only one build', async () => {
    const idx = join(tempDir(), 'Synthetica_alpha.idx');
    const [a, b, c] = [createIndexActivities(), createIndexActivities(), createIndexActivities()];
    const results = await Promise.all([a, b, c].map((x) => act(quiet(), x.ensureIndex, input(idx))));
    expect(results.filter((r) => r.built)).toHaveLength(1);
    expect(existsSync(`${idx}.lock`)).toBe(false);
  });

  it('waits (heartbeating) while a live process holds the lock, then builds once it is gone', async () => {
    const idx = join(tempDir(), 'Synthetica_alpha.idx');
    writeFileSync(`${idx}.lock`, JSON.stringify({ pid: process.pid, host: hostname(), startedAt: new Date().toISOString() }));
    const env = quiet();
    let beats = 0;
    env.on('heartbeat', () => beats++);
    const pending = act(env, createIndexActivities().ensureIndex, input(idx));
    await new Promise((r) => setTimeout(r, 1500));
    expect(existsSync(idx)).toBe(false); // the holder is alive: nobody builds beside it
    expect(beats).toBeGreaterThan(0);
    const { rm } = await import('node:fs/promises');
    await rm(`${idx}.lock`);
    expect(await pending).toEqual({ indexPath: idx, built: true });
  });

  it('a lock left by a dead process on this host is stale and taken over', async () => {
    const idx = join(tempDir(), 'Synthetica_alpha.idx');
    const dead = await execa('sh', ['-c', 'echo $$']);
    writeFileSync(`${idx}.lock`, JSON.stringify({ pid: Number(dead.stdout.trim()), host: hostname(), startedAt: '2020-01-01T00:00:00Z' }));
    expect(await act(quiet(), createIndexActivities().ensureIndex, input(idx))).toEqual({ indexPath: idx, built: true });
    expect(existsSync(`${idx}.lock`)).toBe(false);
  });

  it('an empty index file is not an index: rebuilt', async () => {
    const idx = join(tempDir(), 'Synthetica_alpha.idx');
    writeFileSync(idx, '');
    expect((await act(quiet(), createIndexActivities().ensureIndex, input(idx))).built).toBe(true);
    expect(statSync(idx).size).toBeGreaterThan(0);
  });

  it('no FASTA, or a missing one: non-retryable IndexError naming the index and what was looked for', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'index'));
    const idx = join(dir, 'index', 'Apis_mellifera.idx');
    const none = await failureOf(act(quiet(), createIndexActivities().ensureIndex, { indexPath: idx, fastaPaths: [], timeoutSec: 60 }));
    expect([none.type, none.nonRetryable]).toEqual(['IndexError', true]);
    expect(none.message).toMatch(new RegExp(`^no kallisto index at ${idx} and no transcriptome FASTA to build it from`));
    const gone = join(dir, 'fasta', 'Apis_mellifera.fa');
    const missing = await failureOf(act(quiet(), createIndexActivities().ensureIndex, { indexPath: idx, fastaPaths: [gone], timeoutSec: 60 }));
    expect(missing.message).toBe(`no kallisto index at ${idx}, and the transcriptome FASTA to build it from is missing or empty: ${gone}`);
    expect(readdirSync(join(dir, 'index'))).toEqual([]);
  });

  it('not a FASTA (kallisto exits 0 with an empty index): IndexError, nothing left behind', async () => {
    const dir = tempDir();
    const bad = join(dir, 'bad.fa');
    writeFileSync(bad, 'this is not a fasta file\n');
    const idx = join(dir, 'X.idx');
    const f = await failureOf(act(quiet(), createIndexActivities().ensureIndex, { indexPath: idx, fastaPaths: [bad], timeoutSec: 60 }));
    expect([f.type, f.nonRetryable]).toEqual(['IndexError', true]);
    expect(f.message).toBe(`building ${idx}: kallisto found 0 k-mers in ${bad} (not a transcriptome FASTA, or every sequence shorter than 31 bases)`);
    expect(readdirSync(dir)).toEqual(['bad.fa']);
  });
});
