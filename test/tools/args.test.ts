// Pure parts of the tool modules: argument builders, output classification, run_info checks.
import { describe, expect, it } from '@jest/globals';
import { ApplicationFailure } from '@temporalio/common';
import { classifySplit, fasterqDumpArgs, splitExt } from '../../src/tools/fasterq-dump.js';
import { indexArgs, indexKmers, kallistoEnv, kallistoIndex, kallistoQuant, parseRunInfo, quantArgs, verifyRunInfo } from '../../src/tools/kallisto.js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatCommand, parseVersion } from '../../src/tools/process.js';
import { amalgkitFragment } from '../../src/ids.js';
import { interpretValidate } from '../../src/tools/vdb-validate.js';

const typeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return err instanceof ApplicationFailure ? `${err.type}:${err.nonRetryable}:${err.message}` : `plain:${(err as Error).message}`;
  }
  return undefined;
};

describe('kallisto arguments', () => {
  it("kallisto's environment asks glibc for huge pages kept to the end, keeping the user's other tunables and any hugetlb they chose", () => {
    const ours = 'glibc.malloc.hugetlb=1:glibc.malloc.trim_threshold=1073741824';
    expect(kallistoEnv(undefined)).toEqual({ GLIBC_TUNABLES: ours });
    expect(kallistoEnv('')).toEqual({ GLIBC_TUNABLES: ours });
    expect(kallistoEnv('glibc.malloc.arena_max=2')).toEqual({ GLIBC_TUNABLES: `glibc.malloc.arena_max=2:${ours}` });
    expect(kallistoEnv('glibc.malloc.trim_threshold=4096')).toEqual({ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=4096:glibc.malloc.hugetlb=1' });
    // a user's own choice (0 turns it off) is theirs: nothing added
    expect(kallistoEnv('glibc.malloc.hugetlb=0')).toEqual({});
    expect(kallistoEnv('glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2')).toEqual({});
  });

  it('kallisto quant and index are started with that environment', async () => {
    // A stand-in kallisto first on PATH that writes down the GLIBC_TUNABLES it was started with.
    const dir = mkdtempSync(join(tmpdir(), 'fq-kenv-'));
    try {
      writeFileSync(join(dir, 'kallisto'), `#!/bin/sh\nprintf '%s' "$GLIBC_TUNABLES" > "${dir}/seen.$1"\n`, { mode: 0o755 });
      const env = { PATH: `${dir}:${process.env.PATH ?? ''}` };
      await kallistoQuant({ index: '/i', outDir: '/o', reads: ['/r_1.fastq', '/r_2.fastq'], layout: 'paired', threads: 1, fragmentLength: 200, fragmentSd: 20 }, { timeoutSec: 30, env });
      await kallistoIndex('/i', ['/t.fa'], { timeoutSec: 30, env });
      const want = kallistoEnv().GLIBC_TUNABLES ?? process.env.GLIBC_TUNABLES;
      expect(readFileSync(join(dir, 'seen.quant'), 'utf8')).toBe(want);
      expect(readFileSync(join(dir, 'seen.index'), 'utf8')).toBe(want);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('index: -i then every FASTA', () => {
    expect(indexArgs('/i/A_b.idx', ['/f/a.fa', '/f/b.fa.gz'])).toEqual(['index', '-i', '/i/A_b.idx', '/f/a.fa', '/f/b.fa.gz']);
    expect(typeOf(() => indexArgs('/i/x.idx', []))).toMatch(/^InvalidInput:true:.*no FASTA/);
    expect(indexKmers('[build] target de Bruijn graph has 0 contigs and contains 0 k-mers \n')).toBe(0);
    expect(indexKmers('[build] target de Bruijn graph has 12 contigs and contains 29412 k-mers')).toBe(29412);
    expect(indexKmers('something else')).toBeNull();
  });

  // amalgkit 0.16.71 quant.py build_kallisto_quant_command, flag for flag and in its order
  it('paired quant: two files, no fragment model (kallisto estimates it), as amalgkit quant runs it', () => {
    const a = quantArgs({ index: '/i.idx', outDir: '/q/.SRR1000001.tmp', threads: 2, reads: ['/r_1.fastq.gz', '/r_2.fastq.gz'], layout: 'paired', fragmentLength: 200, fragmentSd: 20 });
    expect(a).toEqual(['quant', '--threads', '2', '-i', '/i.idx', '-o', '/q/.SRR1000001.tmp', '/r_1.fastq.gz', '/r_2.fastq.gz']);
  });

  it("amalgkit's -l/-s: the nominal length, raised to 200, 200 when unknown; sd a tenth", () => {
    expect(amalgkitFragment(undefined)).toEqual({ length: 200, sd: 20 });
    expect(amalgkitFragment(0)).toEqual({ length: 200, sd: 20 });
    expect(amalgkitFragment(150)).toEqual({ length: 200, sd: 20 });
    expect(amalgkitFragment(350)).toEqual({ length: 350, sd: 35 });
  });

  it('single quant: --single with -l/-s, which must be positive', () => {
    const base = { index: '/i.idx', outDir: '/o', threads: 1, reads: ['/r.fastq.gz'], layout: 'single' as const, fragmentLength: 180, fragmentSd: 18 };
    expect(quantArgs(base)).toEqual(['quant', '--threads', '1', '--index', '/i.idx', '-o', '/o', '--single', '-l', '180', '-s', '18', '/r.fastq.gz']);
    expect(typeOf(() => quantArgs({ ...base, fragmentLength: 0 }))).toMatch(/^InvalidInput:true:.*fragment length > 0 \(got 0\)/);
    expect(typeOf(() => quantArgs({ ...base, fragmentSd: Number.NaN }))).toMatch(/^InvalidInput:true:.*sd > 0/);
  });

  it('rejects a file count that does not match the layout, and bad thread counts', () => {
    const base = { index: '/i.idx', outDir: '/o', threads: 1, fragmentLength: 200, fragmentSd: 20 };
    expect(typeOf(() => quantArgs({ ...base, layout: 'paired', reads: ['/r_1.fastq.gz'] }))).toMatch(/paired layout needs 2 read file\(s\), got 1/);
    expect(typeOf(() => quantArgs({ ...base, layout: 'single', reads: ['/a', '/b'] }))).toMatch(/single layout needs 1/);
    expect(typeOf(() => quantArgs({ ...base, layout: 'single', reads: ['/a'], threads: 0 }))).toMatch(/threads must be an integer >= 1/);
  });
});

describe('run_info.json', () => {
  const info = { n_targets: 5, n_processed: 2000, n_pseudoaligned: 1900, p_pseudoaligned: 95, kallisto_version: '0.48.0', call: 'kallisto quant ...' };

  it('parses the counts and accepts a matching run', () => {
    const r = parseRunInfo(JSON.stringify(info), '/q/run_info.json');
    expect(r).toEqual({ nProcessed: 2000, nPseudoaligned: 1900, pPseudoaligned: 95, kallistoVersion: '0.48.0', call: 'kallisto quant ...' });
    expect(() => verifyRunInfo(r, 2000, 'SRR1000001')).not.toThrow();
  });

  it('QuantInvalid (retryable) with both numbers when n_processed differs or nothing pseudoaligned', () => {
    const r = parseRunInfo(JSON.stringify(info), 'f');
    expect(typeOf(() => verifyRunInfo(r, 2500, 'SRR1000001'))).toBe(
      'QuantInvalid:false:run SRR1000001: kallisto processed 2000 reads, expected 2500 (the reads counted before quant)',
    );
    const zero = parseRunInfo(JSON.stringify({ ...info, n_pseudoaligned: 0 }), 'f');
    expect(typeOf(() => verifyRunInfo(zero, 2000, 'SRR1000001'))).toMatch(/^QuantInvalid:false:run SRR1000001: kallisto pseudoaligned 0 of 2000 reads/);
  });

  it('names the file when run_info is not JSON or lacks a count', () => {
    expect(typeOf(() => parseRunInfo('{"n_processed":', '/q/x/run_info.json'))).toMatch(/^QuantInvalid:false:\/q\/x\/run_info.json: not JSON/);
    expect(typeOf(() => parseRunInfo('{"n_processed":"12"}', '/q/run_info.json'))).toMatch(/field n_processed is "12", expected a number/);
  });
});

describe('sra-toolkit', () => {
  it('fasterq-dump always splits, uses the temp dir given and overwrites', () => {
    expect(fasterqDumpArgs({ sraPath: '/d/SRR1.sra', outDir: '/d', tmpDir: '/d/tmp', threads: 4 })).toEqual([
      '/d/SRR1.sra', '--split-3', '-e', '4', '-O', '/d', '-t', '/d/tmp', '-f',
    ]);
    // Reads deleted after quant: FASTA (no qualities), named .fasta
    expect(fasterqDumpArgs({ sraPath: '/d/SRR1.sra', outDir: '/d', tmpDir: '/d/tmp', threads: 1, fasta: true })).toEqual([
      '/d/SRR1.sra', '--split-3', '--fasta', '-e', '1', '-O', '/d', '-t', '/d/tmp', '-f',
    ]);
    expect([splitExt(true), splitExt(false), splitExt(undefined)]).toEqual(['.fasta', '.fastq', '.fastq']);
  });

  it('classifies --split-3 outputs by name: mates beat the unmated file, a lone mate is unusable', () => {
    const run = 'SRR1000001';
    expect(classifySplit(run, ['SRR1000001_2.fastq', 'SRR1000001.fastq', 'SRR1000001_1.fastq', 'tmp'])).toEqual({
      layout: 'paired', keep: ['SRR1000001_1.fastq', 'SRR1000001_2.fastq'], discard: ['SRR1000001.fastq'],
    });
    expect(classifySplit(run, ['SRR1000001.fastq', 'SRR1000001.sra'])).toEqual({ layout: 'single', keep: ['SRR1000001.fastq'], discard: [] });
    expect(classifySplit(run, ['SRR1000001_1.fastq'])).toBeNull();
    expect(classifySplit(run, ['SRR1000002.fastq'])).toBeNull();
    // --fasta's names; FASTQ names are not taken for FASTA ones, nor the other way round
    expect(classifySplit(run, ['SRR1000001_1.fasta', 'SRR1000001_2.fasta', 'SRR1000001.fasta'], '.fasta')).toEqual({
      layout: 'paired', keep: ['SRR1000001_1.fasta', 'SRR1000001_2.fasta'], discard: ['SRR1000001.fasta'],
    });
    expect(classifySplit(run, ['SRR1000001.fastq'], '.fasta')).toBeNull();
    expect(classifySplit(run, ['SRR1000001.fasta'])).toBeNull();
  });

  it('vdb-validate passes only rc 0 with "is consistent"', () => {
    const ok = interpretValidate(0, "2026-01-01T00:00:00 vdb-validate.3.0.3 info: Database 'X.sra' is consistent\n");
    expect(ok.consistent).toBe(true);
    const bad = interpretValidate(3, "2026-01-01T00:00:00 vdb-validate.3.0.3 err: file corrupt while reading file within file system module - Database 'X.sra' check failed\n");
    expect(bad).toEqual({ consistent: false, exitCode: 3, detail: "err: file corrupt while reading file within file system module - Database 'X.sra' check failed" });
    // A file that is not an archive at all: vdb-validate says nothing and exits 0.
    expect(interpretValidate(0, '\n')).toEqual({ consistent: false, exitCode: 0, detail: 'exit code 0 without "is consistent" (not an SRA archive?)' });
  });
});

describe('process helpers', () => {
  it('formats command lines shell-readably and parses versions', () => {
    expect(formatCommand('kallisto', ['quant', '-i', '/a b.idx', "it's"])).toBe(`kallisto quant -i '/a b.idx' 'it'\\''s'`);
    expect(parseVersion('kallisto, version 0.48.0\n')).toBe('0.48.0');
    expect(parseVersion('\nfasterq-dump : 3.0.3 ( 3.0.2 )\n')).toBe('3.0.3');
    expect(parseVersion('no digits')).toBeNull();
  });
});
