// steps.quant.keep_fastq: yes / clean_fastq: no — deleteReads keeps the reads, and the janitor's and
// `fetchquant cleanup`'s orphan search never takes them for an abandoned download.
import { afterAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findOrphans, KEPT_READS_MARK } from '../../src/activities/disk.js';
import { createQuantActivities } from '../../src/activities/quant.js';
import { act, cleanTempDirs, quiet, tempDir } from './util.js';

afterAll(cleanTempDirs);

describe('reads kept after quant', () => {
  it('stay on disk, marked, and are never an orphan; reads not kept are removed', async () => {
    const readsDir = tempDir('fq-keep-');
    const kept = join(readsDir, 'getfastq', 'SRR7700001');
    const gone = join(readsDir, 'getfastq', 'SRR7700002');
    const abandoned = join(readsDir, 'getfastq', 'SRR7700003');
    for (const d of [kept, gone, abandoned]) {
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, `${d.slice(-10)}.fastq.gz`), 'reads');
    }
    const { deleteReads } = createQuantActivities({});
    expect(await act(quiet(), deleteReads, { run: 'SRR7700001', runDir: kept, keep: true })).toEqual({ removedBytes: 0 });
    expect(readdirSync(kept).sort()).toEqual([KEPT_READS_MARK, 'SRR7700001.fastq.gz']);
    await act(quiet(), deleteReads, { run: 'SRR7700002', runDir: gone });
    expect(existsSync(gone)).toBe(false);
    expect((await findOrphans([readsDir], [])).map((o) => o.run)).toEqual(['SRR7700003']);
  });
});
