// The read gate and quant with the real kallisto on simulated reads: single and paired verified end to end,
// and the three kallisto traps (truncated .gz, corrupted .gz, unequal mates) stopped before quant.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { createIndexActivities } from '../../src/activities/index-build.js';
import { createActivities } from '../../src/activities/index.js';
import { KnownDirs } from '../../src/activities/known-dirs.js';
import { createQuantActivities } from '../../src/activities/quant.js';
import { createReadActivities } from '../../src/activities/reads.js';
import { makeTranscriptome, simulateReads } from '../../src/mirror/fixtures.js';
import { gzipFile } from '../../src/tools/fastq.js';
import { kallistoQuant } from '../../src/tools/kallisto.js';
import type { Provenance, ProvenanceDraft, ReadSet } from '../../src/types.js';
import { act, cleanTempDirs, failureOf, quiet, tempDir } from './util.js';

const READS = 2000;
let root: string;
let indexPath: string;
let seqs: string[];
const reads = createReadActivities();
const quant = createQuantActivities({});

beforeAll(async () => {
  root = tempDir('fq-quant-');
  seqs = await makeTranscriptome(join(root, 'fasta', 'Synthetica_alpha.fa'), { transcripts: 10, length: 1000, seed: 11 });
  indexPath = join(root, 'index', 'Synthetica_alpha.idx');
  await act(quiet(), createIndexActivities().ensureIndex, { indexPath, fastaPaths: [join(root, 'fasta', 'Synthetica_alpha.fa')], timeoutSec: 120 });
});
afterAll(cleanTempDirs);

async function simulate(run: string, paired: boolean, n = READS) {
  const dir = join(root, 'fastq', 'getfastq', run);
  return simulateReads(seqs, { dir, run, reads: n, readLength: 100, paired, fragmentLength: 250, seed: Number(run.slice(3)) });
}

const quantInput = (run: string, rs: ReadSet) => ({
  run, indexPath, reads: rs, quantDir: join(root, 'quant'), fragmentLength: 200, fragmentSd: 20,
  kallistoThreads: 1, quantThreads: 2, timeoutSec: 120,
});

describe('verifyReads + quant (real kallisto)', () => {
  for (const paired of [false, true]) {
    const layout = paired ? 'paired' : 'single';
    it(`${layout}: verified counts, quantified into the temp dir under amalgkit's names`, async () => {
      const run = paired ? 'SRR7100002' : 'SRR7100001';
      const sim = await simulate(run, paired);
      const files = sim.fastqGz.map((f) => f.path);
      const rs = await act(quiet(), reads.verifyReads, { run, files, layout, expectedReads: READS });
      expect(rs).toEqual({ layout, files, reads: READS });

      const q = await act(quiet(), quant.quant, quantInput(run, rs));
      expect(q.tmpDir).toBe(join(root, 'quant', `.${run}.tmp`));
      expect(readdirSync(q.tmpDir).sort()).toEqual([`${run}_abundance.tsv`, `${run}_run_info.json`]);
      expect(q.nProcessed).toBe(READS);
      expect(q.nPseudoaligned).toBeGreaterThan(READS * 0.8);
      expect(q.kallistoVersion).toBe('0.48.0');
      // amalgkit quant's own spelling: -i for paired, --index for single-end
      // kallisto's -o: a dir of this attempt's own inside the temp dir (an older attempt's kallisto cannot write beside it)
      expect(q.command.slice(0, 8)).toEqual(['kallisto', 'quant', '--threads', '1', paired ? '-i' : '--index', indexPath, '-o', expect.stringMatching(new RegExp(`^${q.tmpDir}/\\.kallisto-\\d+-[0-9a-f]{8}$`))]);
      expect(q.command.slice(-files.length)).toEqual(files);
      expect(q.command.includes('--single')).toBe(!paired);
      const info = JSON.parse(readFileSync(join(q.tmpDir, `${run}_run_info.json`), 'utf8')) as { n_processed: number };
      expect(info.n_processed).toBe(READS);
      const abundance = readFileSync(join(q.tmpDir, `${run}_abundance.tsv`), 'utf8').trim().split('\n');
      expect(abundance[0]).toBe('target_id\tlength\teff_length\test_counts\ttpm');
      expect(abundance).toHaveLength(1 + seqs.length);
      expect(existsSync(join(root, 'quant', run))).toBe(false); // only finalize puts it in place
    });
  }

  it('plain FASTQ (an SRA run kept plain, issue 15): counted by verifyReads, quantified by kallisto with every read processed', async () => {
    const run = 'SRR7100005';
    const sim = await simulate(run, true, 800);
    const files = sim.fastqPlain;
    expect(files.every((f) => f.endsWith('.fastq'))).toBe(true);
    const rs = await act(quiet(), reads.verifyReads, { run, files, layout: 'paired', expectedReads: 800 });
    expect(rs).toEqual({ layout: 'paired', files, reads: 800 });
    const q = await act(quiet(), quant.quant, quantInput(run, rs));
    expect(q.nProcessed).toBe(800);
    expect(q.command.slice(-2)).toEqual(files);
    // a plain file cut inside a record fails the gate like a cut .gz
    const text = readFileSync(files[1]!, 'latin1').split('\n');
    writeFileSync(files[1]!, text.slice(0, -3).join('\n'));
    const f = await failureOf(act(quiet(), reads.verifyReads, { run, files, layout: 'paired', expectedReads: 800 }));
    expect([f.type, f.message]).toEqual(['TruncatedReads', expect.stringMatching(/SRR7100005_2.fastq: \d+ lines is not a whole number of FASTQ records/)]);
  });

  it('quant with publish (the real activity set): outputs in place, reads gone; a retry after it answers from the provenance, no kallisto', async () => {
    const run = 'SRR7100009';
    const sim = await simulate(run, false);
    const files = sim.fastqGz.map((f) => f.path);
    const rs = await act(quiet(), reads.verifyReads, { run, files, layout: 'single', expectedReads: READS });
    const acts = createActivities({ hostId: 'quant-test', cwd: root, pacer: null, knownDirs: new KnownDirs(join(root, 'state', 'reads-dirs.json')) });
    const runDir = join(root, 'fastq', 'getfastq', run);
    const provenance: ProvenanceDraft = {
      run, species: 'Synthetica alpha', source: { source: 'ena', run, layout: 'single', files: [], expectedReads: READS, reserveBytes: 1 },
      files: [], reads: READS, host: 'quant-test', stages: [], restarts: 0, workflowId: 'w', runId: 'r',
    };
    const input = { ...quantInput(run, rs), publish: { provenance, runDir } };
    const q = await act(quiet(), acts.quant, input);
    const dir = join(root, 'quant', run);
    expect(q.published).toEqual({ dir, removedBytes: expect.any(Number) });
    expect(q.published!.removedBytes).toBeGreaterThan(0);
    expect(readdirSync(dir).sort()).toEqual([`${run}_abundance.tsv`, `${run}_fetchquant.json`, `${run}_run_info.json`]);
    expect(existsSync(runDir)).toBe(false);
    expect(existsSync(q.tmpDir)).toBe(false);
    const prov = JSON.parse(readFileSync(join(dir, `${run}_fetchquant.json`), 'utf8')) as Provenance;
    expect(prov).toMatchObject({ run, reads: READS, quant: { nProcessed: READS, kallistoVersion: '0.48.0' }, tools: { kallisto: '0.48.0' } });
    // As if the worker died after publishing, before reporting: the retry finds the run done, its reads gone.
    const again = await act(quiet(), acts.quant, input);
    expect(again.published).toEqual({ dir, removedBytes: 0, earlier: true });
    expect(again.nProcessed).toBe(READS);
    expect(again.command).toEqual(q.command);
    expect(readFileSync(join(dir, `${run}_fetchquant.json`), 'utf8')).toBe(JSON.stringify(prov, null, 2) + '\n');
  });

  it('a retried quant clears the previous attempt\'s leftovers', async () => {
    const run = 'SRR7100003';
    const sim = await simulate(run, false, 500);
    const rs: ReadSet = { layout: 'single', files: [sim.fastqGz[0]!.path], reads: 500 };
    const tmp = join(root, 'quant', `.${run}.tmp`);
    await act(quiet(), quant.quant, quantInput(run, rs));
    writeFileSync(join(tmp, 'stale.txt'), 'from an attempt killed mid-run');
    await act(quiet(), quant.quant, quantInput(run, rs));
    expect(readdirSync(tmp).sort()).toEqual([`${run}_abundance.tsv`, `${run}_run_info.json`]);
  });

  it("an older attempt's kallisto left running (its worker killed -9) writes nothing beside a newer attempt's outputs", async () => {
    const run = 'SRR7100006';
    const sim = await simulate(run, false, 100_000);
    const rs: ReadSet = { layout: 'single', files: [sim.fastqGz[0]!.path], reads: 100_000 };
    const tmp = join(root, 'quant', `.${run}.tmp`);
    const first = await act(quiet(), quant.quant, quantInput(run, rs));
    // The older attempt's kallisto, exactly as it ran, held just after start-up (its output dir made)...
    const outArg = first.command[first.command.indexOf('-o') + 1]!;
    const orphan = execa(first.command[0]!, first.command.slice(1), { reject: false, detached: true });
    while (!existsSync(outArg)) await new Promise((r) => setTimeout(r, 1));
    process.kill(orphan.pid!, 'SIGSTOP');
    // ...while the retry runs, then let go to write its outputs by path.
    await act(quiet(), quant.quant, quantInput(run, rs));
    process.kill(orphan.pid!, 'SIGCONT');
    await orphan;
    expect(readdirSync(tmp).sort()).toEqual([`${run}_abundance.tsv`, `${run}_run_info.json`]);
  }, 120_000);

  it('reads that do not belong to the index: QuantInvalid saying nothing pseudoaligned', async () => {
    const run = 'SRR7100004';
    const other = await makeTranscriptome(join(root, 'other.fa'), { transcripts: 5, length: 1000, seed: 999 });
    const sim = await simulateReads(other, { dir: join(root, 'fastq', 'getfastq', run), run, reads: 300, readLength: 100, paired: false, fragmentLength: 200, seed: 4 });
    const rs: ReadSet = { layout: 'single', files: [sim.fastqGz[0]!.path], reads: 300 };
    const f = await failureOf(act(quiet(), quant.quant, quantInput(run, rs)));
    expect(f.type).toBe('QuantInvalid');
    expect(f.message).toMatch(/run SRR7100004: kallisto pseudoaligned 0 of 300 reads/);
  });
});

describe('the traps kallisto does not catch are caught by verifyReads', () => {
  it('truncated .gz: kallisto itself exits 0 on it, verifyReads names the file', async () => {
    const run = 'SRR7200001';
    const sim = await simulate(run, false);
    const gz = sim.fastqGz[0]!;
    const cut = readFileSync(gz.path).subarray(0, Math.floor(gz.bytes / 2));
    writeFileSync(gz.path, cut);
    // The trap is real: kallisto quantifies the half it could read and reports success.
    const out = join(root, 'trap-truncated');
    const r = await kallistoQuant({ index: indexPath, outDir: out, threads: 1, reads: [gz.path], layout: 'single', fragmentLength: 200, fragmentSd: 20 }, { timeoutSec: 60 });
    expect(r.exitCode).toBe(0);
    expect((JSON.parse(readFileSync(join(out, 'run_info.json'), 'utf8')) as { n_processed: number }).n_processed).toBeLessThan(READS);

    const f = await failureOf(act(quiet(), reads.verifyReads, { run, files: [gz.path], layout: 'single', expectedReads: READS }));
    expect([f.type, f.nonRetryable]).toEqual(['TruncatedReads', false]);
    expect(f.message).toMatch(new RegExp(`^run ${run}: ${run}.fastq.gz: gzip integrity test failed .*unexpected end of file`));
    // And if such reads ever reached quant, n_processed != reads stops them from being published.
    const q = await failureOf(act(quiet(), quant.quant, quantInput(run, { layout: 'single', files: [gz.path], reads: READS })));
    expect(q.type).toBe('QuantInvalid');
    expect(q.message).toMatch(new RegExp(`run ${run}: kallisto processed \\d+ reads, expected ${READS}`));
  });

  it('corrupted .gz (kallisto would spin forever): caught as a gzip error', async () => {
    const run = 'SRR7200002';
    const sim = await simulate(run, true);
    const gz = sim.fastqGz[1]!;
    const data = readFileSync(gz.path);
    for (let i = Math.floor(data.length / 2); i < Math.floor(data.length / 2) + 64; i++) data[i] = data[i]! ^ 0x5a;
    writeFileSync(gz.path, data);
    const f = await failureOf(act(quiet(), reads.verifyReads, { run, files: sim.fastqGz.map((x) => x.path), layout: 'paired', expectedReads: null }));
    expect(f.type).toBe('TruncatedReads');
    expect(f.message).toMatch(new RegExp(`^run ${run}: ${run}_2.fastq.gz: gzip integrity test failed`));
    // Only the trailer's CRC wrong (every byte of data intact): still caught.
    const gz1 = sim.fastqGz[0]!.path;
    const d1 = readFileSync(gz1);
    d1[d1.length - 8] = d1[d1.length - 8]! ^ 0xff;
    writeFileSync(gz1, d1);
    const crc = await failureOf(act(quiet(), reads.verifyReads, { run, files: [gz1], layout: 'single', expectedReads: null }));
    expect(crc.message).toMatch(new RegExp(`^run ${run}: ${run}_1.fastq.gz: gzip integrity test failed .*incorrect data check`));
  });

  it('unequal mates: both files and both counts named', async () => {
    const run = 'SRR7200003';
    const sim = await simulate(run, true);
    const plain2 = sim.fastqPlain[1]!;
    writeFileSync(plain2, readFileSync(plain2, 'utf8').split('\n').slice(0, 1500 * 4).join('\n') + '\n');
    await gzipFile(plain2, sim.fastqGz[1]!.path);
    const f = await failureOf(act(quiet(), reads.verifyReads, { run, files: sim.fastqGz.map((x) => x.path), layout: 'paired', expectedReads: null }));
    expect(f.type).toBe('TruncatedReads');
    expect(f.message).toBe(`run ${run}: mates differ: ${run}_1.fastq.gz has ${READS} reads, ${run}_2.fastq.gz has 1500`);
  });

  it('a count different from the source\'s, a missing file, a cut record', async () => {
    const run = 'SRR7200004';
    const sim = await simulate(run, false, 100);
    const file = sim.fastqGz[0]!.path;
    const f = await failureOf(act(quiet(), reads.verifyReads, { run, files: [file], layout: 'single', expectedReads: 120 }));
    expect(f.message).toBe(`run ${run}: ${run}.fastq.gz holds 100 reads, the source reports 120`);
    const missing = await failureOf(act(quiet(), reads.verifyReads, { run, files: [join(root, 'nope.fastq.gz')], layout: 'single', expectedReads: null }));
    expect(missing.message).toMatch(/nope.fastq.gz: file is missing/);
    writeFileSync(sim.fastqPlain[0]!, readFileSync(sim.fastqPlain[0]!, 'utf8').split('\n').slice(0, 6).join('\n') + '\n');
    await gzipFile(sim.fastqPlain[0]!, file);
    const cut = await failureOf(act(quiet(), reads.verifyReads, { run, files: [file], layout: 'single', expectedReads: null }));
    expect(cut.message).toMatch(/6 lines is not a whole number of FASTQ records/);
  });
});

describe('spots of a paired run with unpaired reads (a 3-file run)', () => {
  it('ENA listed unpaired reads it was not asked for: pairs <= spots, the rest recorded as unpaired', async () => {
    const run = 'SRR7200005';
    const sim = await simulate(run, true, 200);
    const files = sim.fastqGz.map((x) => x.path);
    // ENA's read_count (spots) is 207: 200 pairs + 7 unpaired reads in RUN.fastq.gz, which is not fetched.
    expect(await act(quiet(), reads.verifyReads, { run, files, layout: 'paired', expectedReads: 207, unpairedReads: null })).toEqual({
      layout: 'paired', files, reads: 200, unpairedReads: 7,
    });
    // Without the unpaired file in the listing the count must be exact, as before.
    const exact = await failureOf(act(quiet(), reads.verifyReads, { run, files, layout: 'paired', expectedReads: 207 }));
    expect(exact.message).toBe(`run ${run}: ${run}_1.fastq.gz and ${run}_2.fastq.gz hold 200 reads per mate, the source reports 207`);
    // More pairs than spots is impossible: the copy is not the run ENA describes.
    const over = await failureOf(act(quiet(), reads.verifyReads, { run, files, layout: 'paired', expectedReads: 150, unpairedReads: null }));
    expect(over.type).toBe('TruncatedReads');
    expect(over.message).toBe(`run ${run}: ${run}_1.fastq.gz and ${run}_2.fastq.gz hold 200 reads per mate, more than the 150 spots the source reports (unpaired reads included)`);
  });

  it('fasterq-dump counted the unpaired reads: pairs + unpaired must equal spots', async () => {
    const run = 'SRR7200006';
    const sim = await simulate(run, true, 200);
    const files = sim.fastqGz.map((x) => x.path);
    expect(await act(quiet(), reads.verifyReads, { run, files, layout: 'paired', expectedReads: 205, unpairedReads: 5 })).toEqual({
      layout: 'paired', files, reads: 200, unpairedReads: 5,
    });
    const f = await failureOf(act(quiet(), reads.verifyReads, { run, files, layout: 'paired', expectedReads: 207, unpairedReads: 5 }));
    expect(f.message).toBe(`run ${run}: ${run}_1.fastq.gz and ${run}_2.fastq.gz hold 200 reads per mate plus 5 unpaired = 205 spots, the source reports 207`);
  });
});
