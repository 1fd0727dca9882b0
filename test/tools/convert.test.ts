// convertSra with the real sra-toolkit on .sra files made by latf-load + kar from simulated reads.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { createConvertActivities } from '../../src/activities/convert.js';
import { makeSra, makeTranscriptome, simulateReads } from '../../src/mirror/fixtures.js';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { DiskLedger } from '../../src/activities/disk.js';
import { createReadActivities } from '../../src/activities/reads.js';
import { countFastqGz, countFastqPlain, readCheckRecord } from '../../src/tools/fastq.js';
import { fasterqDump } from '../../src/tools/fasterq-dump.js';
import { vdbValidate } from '../../src/tools/vdb-validate.js';
import { act, cleanTempDirs, failureOf, livePids, quiet, tempDir } from './util.js';

// No ledger: no reservation is known, so the outputs are gzipped (the conservative path).
const { convertSra } = createConvertActivities();
/** The check records a conversion leaves beside its outputs (the counts verifyReads takes). */
const withRecords = (names: string[]) => [...names, ...names.map((n) => `.${n}.checked`)].sort();
let root: string;
let seqs: string[];
const sras = new Map<string, string>();

/** A real .sra of `reads` spots, kept outside the run dirs so each test copies a fresh one in. */
async function sraFor(run: string, paired: boolean, reads: number): Promise<string> {
  const dir = join(root, 'src', run);
  const sim = await simulateReads(seqs, { dir, run, reads, readLength: 80, paired, fragmentLength: 220, seed: Number(run.slice(3)) });
  const sra = await makeSra(run, sim.fastqPlain, join(dir, `${run}.sra`));
  sras.set(run, sra.path);
  return sra.path;
}

/** A real paired .sra with `unpaired` spots of one read beside its `pairs` (a 3-file run at ENA), kept as sraFor's. */
async function sraWithUnpaired(run: string, pairs: number, unpaired: number, seed: number): Promise<void> {
  const dir = join(root, 'src', run);
  const sim = await simulateReads(seqs, { dir, run, reads: pairs, readLength: 80, paired: true, fragmentLength: 220, seed });
  const lone = await simulateReads(seqs, { dir: join(dir, 'u'), run, reads: unpaired, readLength: 80, paired: false, fragmentLength: 80, seed: seed + 1, firstRead: pairs + 1 });
  sras.set(run, (await makeSra(run, sim.fastqPlain, join(dir, `${run}.sra`), lone.fastqPlain[0])).path);
}

function runDirWith(run: string): { runDir: string; sraPath: string } {
  const runDir = join(root, 'fastq', 'getfastq', run);
  mkdirSync(runDir, { recursive: true });
  const sraPath = join(runDir, `${run}.sra`);
  copyFileSync(sras.get(run)!, sraPath);
  return { runDir, sraPath };
}

/** A fresh run dir with its .sra, and a ledger holding the run's reservation (as admission would leave it). */
function admitted(run: string, bytes: number, floorGb: number): { runDir: string; sraPath: string; ledger: DiskLedger; granted: boolean } {
  const { runDir, sraPath } = runDirWith(run);
  const ledger = new DiskLedger();
  const granted = ledger.reserve(run, runDir, bytes, floorGb, 1e15).granted;
  return { runDir, sraPath, ledger, granted };
}

beforeAll(async () => {
  root = tempDir('fq-convert-');
  seqs = await makeTranscriptome(join(root, 'tx.fa'), { transcripts: 5, length: 800, seed: 3 });
  await Promise.all([sraFor('SRR7300001', false, 300), sraFor('SRR7300002', true, 400)]);
});
afterAll(cleanTempDirs);

describe('convertSra (real vdb-validate + fasterq-dump)', () => {
  it('single-end .sra -> <RUN>.fastq.gz with every read; .sra, plain fastq and tmp removed', async () => {
    const run = 'SRR7300001';
    const { runDir, sraPath } = runDirWith(run);
    const r = await act(quiet(), convertSra, { run, sraPath, runDir, threads: 2, timeoutSec: 120 });
    expect(r).toEqual({ layout: 'single', files: [join(runDir, `${run}.fastq.gz`)] });
    expect(readdirSync(runDir).sort()).toEqual(withRecords([`${run}.fastq.gz`]));
    expect(await countFastqGz(r.files[0]!)).toBe(300);
    expect(await readCheckRecord(r.files[0]!)).toMatchObject({ records: 300, by: 'convert' });
  });

  it('a paired .sra with unpaired spots (a 3-file run): mates kept, the unpaired reads counted, not kept', async () => {
    const run = 'SRR7300003';
    await sraWithUnpaired(run, 200, 7, 31);
    const { runDir, sraPath } = runDirWith(run);
    const r = await act(quiet(), convertSra, { run, sraPath, runDir, threads: 2, timeoutSec: 120 });
    expect(r).toEqual({ layout: 'paired', files: [join(runDir, `${run}_1.fastq.gz`), join(runDir, `${run}_2.fastq.gz`)], unpairedReads: 7 });
    expect(readdirSync(runDir).sort()).toEqual(withRecords([`${run}_1.fastq.gz`, `${run}_2.fastq.gz`]));
    expect(await Promise.all(r.files.map((f) => countFastqGz(f)))).toEqual([200, 200]);
    // A retry after a worker died between deleting the .sra and reporting (the crash test's SRR9000004 in
    // session 10's CI): the finished outputs come back with the unpaired count, and the reads check in the
    // step passes against the run's 207 spots instead of calling 200 pairs truncated.
    mkdirSync(join(runDir, '.convert-999-deadbeef', 'tmp'), { recursive: true });
    const again = await act(quiet(), convertSra, { run, sraPath, runDir, threads: 2, timeoutSec: 120, verify: { expectedReads: 207 } });
    expect(again).toEqual({ ...r, verified: { layout: 'paired', files: r.files, reads: 200, unpairedReads: 7 } });
    expect(readdirSync(runDir).sort()).toEqual(withRecords([`${run}_1.fastq.gz`, `${run}_2.fastq.gz`]));
  });

  it('paired .sra -> _1/_2.fastq.gz with equal counts', async () => {
    const run = 'SRR7300002';
    const { runDir, sraPath } = runDirWith(run);
    const r = await act(quiet(), convertSra, { run, sraPath, runDir, threads: 2, timeoutSec: 120 });
    expect(r).toEqual({ layout: 'paired', files: [join(runDir, `${run}_1.fastq.gz`), join(runDir, `${run}_2.fastq.gz`)] });
    expect(readdirSync(runDir).sort()).toEqual(withRecords([`${run}_1.fastq.gz`, `${run}_2.fastq.gz`]));
    expect(await Promise.all(r.files.map((f) => countFastqGz(f)))).toEqual([400, 400]);
    // A retry after the .sra was already converted and removed returns the finished outputs.
    expect(await act(quiet(), convertSra, { run, sraPath, runDir, threads: 2, timeoutSec: 120 })).toEqual(r);
  });

  it('an admitted run keeps plain FASTQ (no gzip), counted in one pass; verifyReads takes the count and re-counts a file changed since', async () => {
    const run = 'SRR7300004';
    await sraFor(run, true, 300);
    const { runDir, sraPath, ledger, granted } = admitted(run, 100e6, 0);
    expect(granted).toBe(true);
    const logs: string[] = [];
    const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('INFO', (e) => logs.push(e.message)) });
    const r = await act(env, createConvertActivities({ ledger, freeBytes: async () => 1e15 }).convertSra, { run, sraPath, runDir, threads: 2, timeoutSec: 120 });
    expect(r).toEqual({ layout: 'paired', files: [join(runDir, `${run}_1.fastq`), join(runDir, `${run}_2.fastq`)] });
    expect(readdirSync(runDir).sort()).toEqual(withRecords([`${run}_1.fastq`, `${run}_2.fastq`]));
    expect(logs.some((l) => l.includes(`keeping ${run}_1.fastq and ${run}_2.fastq plain`))).toBe(true);
    expect(readFileSync(r.files[0]!, 'latin1').startsWith('@')).toBe(true);
    expect(await Promise.all(r.files.map((f) => readCheckRecord(f)))).toMatchObject([{ records: 300 }, { records: 300 }]);
    const verify = (files: string[]) => act(quiet(), createReadActivities().verifyReads, { run, files, layout: 'paired', expectedReads: 300 });
    expect(await verify(r.files)).toEqual({ layout: 'paired', files: r.files, reads: 300 });
    // The record names the file's identity: a file rewritten since (one record cut off) is counted again.
    const text = readFileSync(r.files[1]!, 'latin1').split('\n');
    writeFileSync(r.files[1]!, `${text.slice(0, -5).join('\n')}\n`);
    const f = await failureOf(verify(r.files));
    expect(f.type).toBe('TruncatedReads');
    expect(f.message).toMatch(/mates differ: .*_1.fastq has 300 reads, .*_2.fastq has 299/);
    // A retry after the .sra was converted and removed returns the plain outputs.
    expect((await act(quiet(), convertSra, { run, sraPath, runDir, threads: 2, timeoutSec: 120 })).files).toEqual(r.files);
  });

  it('FASTQ bigger than its reservation stays plain when the disk has room, and the reservation grows to it', async () => {
    const run = 'SRR7300006';
    await sraFor(run, false, 200);
    const { runDir, sraPath, ledger } = admitted(run, 1000, 5);
    const logs: string[] = [];
    const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('INFO', (e) => logs.push(e.message)) });
    const r = await act(env, createConvertActivities({ ledger, freeBytes: async () => 1e15 }).convertSra, { run, sraPath, runDir, threads: 1, timeoutSec: 120 });
    expect(r.files).toEqual([join(runDir, `${run}.fastq`)]);
    const plain = statSync(r.files[0]!).size;
    expect(ledger.reservation(run)?.bytes).toBe(plain);
    expect(logs.find((l) => l.includes('more than the 1000 bytes reserved'))).toMatch(/the disk has room, so the reservation grows/);
    expect(logs.some((l) => l.includes('gzipping'))).toBe(false);
  });

  it('reads deleted after quant (fastaReads) come out as FASTA: half the bytes, the same counts, the same kallisto results; cut or gzipped, still checked', async () => {
    const run = 'SRR7300010';
    await sraWithUnpaired(run, 300, 9, 101);
    const convert = (fastaReads: boolean, free = 1e15, floorGb = 0) => {
      const { runDir, sraPath, ledger } = admitted(run, 100e6, floorGb);
      return { runDir, r: act(quiet(), createConvertActivities({ ledger, freeBytes: async () => free }).convertSra, { run, sraPath, runDir, threads: 1, timeoutSec: 120, ...(fastaReads ? { fastaReads } : {}), verify: { expectedReads: 309 } }) };
    };
    // FASTQ first, kept aside for the comparison (the next conversion finds them stale and removes them).
    const fq = convert(false);
    const asFastq = await fq.r;
    const fastqDir = join(root, 'fastq-kept', run);
    mkdirSync(fastqDir, { recursive: true });
    const fastqs = asFastq.files.map((f) => {
      const to = join(fastqDir, f.slice(f.lastIndexOf('/') + 1));
      copyFileSync(f, to);
      return to;
    });
    const { runDir, r: pending } = convert(true);
    const r = await pending;
    const files = [join(runDir, `${run}_1.fasta`), join(runDir, `${run}_2.fasta`)];
    expect(r).toEqual({ layout: 'paired', files, unpairedReads: 9, verified: { layout: 'paired', files, reads: 300, unpairedReads: 9 } });
    expect(readdirSync(runDir).sort()).toEqual(withRecords([`${run}_1.fasta`, `${run}_2.fasta`]));
    const lines = readFileSync(files[0]!, 'latin1').split('\n');
    expect(lines[0]).toMatch(new RegExp(`^>${run}\\.1 `));
    expect(lines[1]).toMatch(/^[ACGTN]{80}$/);
    expect(lines).toHaveLength(2 * 300 + 1);
    // The same bases as the FASTQ's second lines, in the same order; about half the bytes.
    const fqLines = readFileSync(fastqs[0]!, 'latin1').split('\n');
    expect(lines.filter((_, i) => i % 2 === 1)).toEqual(fqLines.filter((_, i) => i % 4 === 1));
    expect(statSync(files[0]!).size).toBeLessThan(0.6 * statSync(fastqs[0]!).size);
    // kallisto 0.48 reads no qualities: the same abundance.tsv, byte for byte, and the same counts.
    const idx = join(root, 'tx.idx');
    if (!existsSync(idx)) expect(spawnSync('kallisto', ['index', '-i', idx, join(root, 'tx.fa')]).status).toBe(0);
    const quant = (out: string, reads: string[]) => {
      expect(spawnSync('kallisto', ['quant', '-t', '1', '-i', idx, '-o', out, ...reads]).status).toBe(0);
      return { abundance: readFileSync(join(out, 'abundance.tsv'), 'utf8'), processed: (JSON.parse(readFileSync(join(out, 'run_info.json'), 'utf8')) as { n_processed: number }).n_processed };
    };
    const a = quant(join(root, 'kq-fasta'), files);
    expect(a.processed).toBe(300);
    expect(a).toEqual(quant(join(root, 'kq-fastq'), fastqs));
    // A retry after the .sra is gone returns the finished FASTA, with the unpaired count from the first mate's record.
    const again = await act(quiet(), convertSra, { run, sraPath: join(runDir, `${run}.sra`), runDir, threads: 1, timeoutSec: 120 });
    expect(again).toEqual({ layout: 'paired', files, unpairedReads: 9 });
    // A FASTA cut inside a record fails the gate (2 lines a record), as a cut FASTQ does.
    const verify = () => act(quiet(), createReadActivities().verifyReads, { run, files, layout: 'paired', expectedReads: 309, unpairedReads: 9 });
    expect(await verify()).toEqual({ layout: 'paired', files, reads: 300, unpairedReads: 9 });
    writeFileSync(files[1]!, `${lines.slice(0, -2).join('\n')}\n`);
    const f = await failureOf(verify());
    expect(f.type).toBe('TruncatedReads');
    expect(f.message).toMatch(/_2\.fasta: 599 lines is not a whole number of FASTA records \(2 lines each\)/);
    // Below the floor the FASTA is gzipped, and counted as FASTA.
    const low = convert(true, 0, 5);
    const gz = await low.r;
    expect(gz.files).toEqual([join(low.runDir, `${run}_1.fasta.gz`), join(low.runDir, `${run}_2.fasta.gz`)]);
    expect(await Promise.all(gz.files.map((p) => countFastqGz(p)))).toEqual([300, 300]);
    expect(await countFastqPlain(join(fastqDir, `${run}_1.fastq`))).toBe(300);
  });

  it('gzips only when the disk needs it, and the log says why (below the floor, whatever the reservation)', async () => {
    const run = 'SRR7300005';
    await sraFor(run, false, 200);
    for (const [reserved, free, why] of [
      [1000, 5e9 + 50e6, /below the --min-free-gb 5 floor/],
      [100e6, 5e9 + 50e6, /below the --min-free-gb 5 floor/],
    ] as const) {
      const { runDir, sraPath, ledger } = admitted(run, reserved, 5);
      ledger.reserve('SRR7300099', runDir, 100e6, 5, 1e15); // another run's reservation eats into the free space
      const logs: string[] = [];
      const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('INFO', (e) => logs.push(e.message)) });
      const r = await act(env, createConvertActivities({ ledger, freeBytes: async () => free }).convertSra, { run, sraPath, runDir, threads: 1, timeoutSec: 120 });
      expect(r.files).toEqual([join(runDir, `${run}.fastq.gz`)]);
      expect(readdirSync(runDir).sort()).toEqual(withRecords([`${run}.fastq.gz`]));
      expect(logs.find((l) => l.includes(`gzipping ${run}.fastq`))).toMatch(why);
      expect(await countFastqGz(r.files[0]!)).toBe(200);
    }
  });

  it('a corrupted .sra converts with rc 0 (the trap), but vdb-validate catches it and the .sra is deleted', async () => {
    const run = 'SRR7300001';
    // The run dir still holds the .fastq.gz of the first test: a new .sra makes them stale.
    const { runDir, sraPath } = runDirWith(run);
    expect(readdirSync(runDir)).toContain(`${run}.fastq.gz`);
    const data = readFileSync(sraPath);
    // Early in the archive lie the read columns: flipped bytes there still parse, as altered reads.
    const at = Math.floor(data.length * 0.05);
    for (let i = at; i < at + 16; i++) data[i] = data[i]! ^ 0xff;
    writeFileSync(sraPath, data);

    const trapOut = join(root, 'trap');
    mkdirSync(trapOut, { recursive: true });
    const tool = await fasterqDump({ sraPath, outDir: trapOut, tmpDir: join(trapOut, 'tmp'), threads: 1 }, { timeoutSec: 60 });
    expect(tool.exitCode).toBe(0);
    expect((await vdbValidate(sraPath, { timeoutSec: 60 })).consistent).toBe(false);

    const f = await failureOf(act(quiet(), convertSra, { run, sraPath, runDir, threads: 1, timeoutSec: 120 }));
    expect([f.type, f.nonRetryable]).toEqual(['ChecksumMismatch', false]);
    expect(f.message).toMatch(new RegExp(`^run ${run}: vdb-validate .*${run}.sra found bad data \\(exit 3: .*\\); deleted it so the next attempt downloads it again`));
    expect(readdirSync(runDir)).toEqual([]);
    // The retry without a download says what is needed.
    const again = await failureOf(act(quiet(), convertSra, { run, sraPath, runDir, threads: 1, timeoutSec: 120 }));
    expect(again.message).toMatch(/is missing .* download it again/);
  });

  it('a file that is not an archive at all (vdb-validate exits 0 silently) is rejected too', async () => {
    const run = 'SRR7300009';
    const runDir = join(root, 'fastq', 'getfastq', run);
    mkdirSync(runDir, { recursive: true });
    const sraPath = join(runDir, `${run}.sra`);
    writeFileSync(sraPath, '<html>not found</html>\n');
    const f = await failureOf(act(quiet(), convertSra, { run, sraPath, runDir, threads: 1, timeoutSec: 60 }));
    expect(f.type).toBe('ChecksumMismatch');
    expect(f.message).toMatch(/without "is consistent"/);
  });

  it('an older attempt that wakes up after a newer one finished (a host cut off from the server) never leaves a reader a partial file', async () => {
    // The cluster test's failure: kallisto read 13,830 of the 15,000 reads the conversion had counted. An
    // attempt the server had given up on converted on; fasterq-dump ends by renaming its first part onto the
    // output name and appending the rest by path, so its late output replaced the checked reads with a
    // growing file. Here the older attempt is held (SIGSTOP) in vdb-validate while a newer one converts, then
    // let go while a reader polls the files the newer attempt returned, as kallisto would open them.
    const run = 'SRR7300010';
    await sraFor(run, false, 60_000);
    const { runDir, sraPath, ledger } = admitted(run, 100e6, 0);
    const { convertSra: convertPlain } = createConvertActivities({ ledger, freeBytes: async () => 1e15 });
    const older = act(quiet(), convertPlain, { run, sraPath, runDir, threads: 2, timeoutSec: 120 }).then(
      (r) => r,
      (e: unknown) => e,
    );
    const validating = (): number | null => livePids((argv) => !!argv[0]?.endsWith('vdb-validate') && argv.includes(sraPath))[0] ?? null;
    let pid: number | null = null;
    for (let i = 0; i < 2000 && pid === null; i++) {
      pid = validating();
      if (pid === null) await new Promise((res) => setTimeout(res, 5));
    }
    expect(pid).not.toBeNull();
    process.kill(-pid!, 'SIGSTOP'); // runTool makes each tool lead its own process group
    const newer = await act(quiet(), convertPlain, { run, sraPath: join(runDir, `${run}.sra`), runDir, threads: 2, timeoutSec: 120 }).catch(async (e: unknown) => {
      process.kill(-pid!, 'SIGCONT');
      throw e;
    });
    expect(newer.files).toEqual([join(runDir, `${run}.fastq`)]);
    const whole = statSync(newer.files[0]!).size;
    // The .sra is gone once the newer attempt is done: the older one, held before fasterq-dump, gets a copy back
    // (as on a host whose fasterq-dump had opened it before the newer attempt deleted it).
    copyFileSync(sras.get(run)!, sraPath);
    const seen = new Set<number>();
    let polling = true;
    const poll = (async () => {
      while (polling) {
        try {
          seen.add(statSync(newer.files[0]!).size);
        } catch {
          seen.add(-1);
        }
        await new Promise((res) => setImmediate(res));
      }
    })();
    process.kill(-pid!, 'SIGCONT');
    await older;
    polling = false;
    await poll;
    expect([...seen]).toEqual([whole]);
    expect(await countFastqPlain(newer.files[0]!)).toBe(60_000);
    expect(readdirSync(runDir).filter((n) => !n.startsWith('.') || n.startsWith('.convert-'))).toEqual([`${run}.fastq`]);
  }, 120_000);

  it('refuses an .sra path outside the run dir', async () => {
    const run = 'SRR7300001';
    const runDir = join(root, 'fastq', 'getfastq', run);
    const f = await failureOf(act(quiet(), convertSra, { run, sraPath: '/etc/passwd', runDir, threads: 1, timeoutSec: 60 }));
    expect([f.type, f.nonRetryable]).toEqual(['InvalidInput', true]);
  });
});
