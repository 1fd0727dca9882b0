/**
 * The arithmetic behind bench/results/real.json (bench/real/figures.ts) and B5's idle/steal accounting: a wrong percentile, overlap or
 * gap would silently mislead every benchmark reading, so it is pinned here on hand-made timelines.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { coreTimes, cpuShort, medianPair, warmPageCache } from '../../bench/b5.js';
import { idlePhases, isKallistoQuant, ownCpuSec, type IdleSample } from '../../bench/b5/cpu.js';
import { describe, expect, it } from '@jest/globals';
import { linkFigures, maxOverlap, percentile, reactionFigures, union, utilisation } from '../../bench/real/figures.js';
import { stepTimes, type BatchTimes, type SignalAt } from '../../bench/real/histories.js';
import { historyFromJSON } from '../helpers/histories.js';
import { parseSampleHistory } from '../../src/report/audit.js';

describe('bench figures', () => {
  it('nearest-rank percentiles', () => {
    const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted on purpose
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile(xs, 100)).toBe(100);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNull();
  });

  it('overlap counts a slot handed over at the same instant once, and the union leaves the gaps', () => {
    expect(maxOverlap([[0, 10], [10, 20], [5, 15]])).toBe(2);
    expect(maxOverlap([[0, 10], [1, 9], [2, 8]])).toBe(3);
    expect(union([[5, 8], [0, 3], [2, 4], [8, 9]])).toEqual([[0, 4], [5, 9]]);
  });

  it('utilisation and link figures: busy slot time over threads x phase; idle link before, inside and after', () => {
    // two slots, phase 1000..5000 ms; slot A busy 1000..3000, slot B 1000..2000 and 4000..5000 (idle 3000..4000)
    const spans: [number, number][] = [[1000, 3000], [1000, 2000], [4000, 5000]];
    expect(utilisation(spans, 2)).toEqual({ downloadPhaseSec: 4, busyDownloadSec: 4, slotUtilisation: 0.5 });
    // 3 MB at 1 MB/s would take 3 s of the 4 s phase; the process ran 0..6000 ms
    const link = linkFigures(spans, 0, 6000, 3_000_000, 1_000_000);
    expect(link).toMatchObject({ toFirstDownloadSec: 1, lastDownloadToExitSec: 1, inPhaseLinkLossSec: 1, noDownloadRunningSec: 1, linkUtilisation: 0.5 });
    expect(link.noDownloadGaps).toEqual([{ atSec: 3, sec: 1 }]);
  });

  it('reaction: a small species frees its last slots -> the first setThreads another species receives', () => {
    const sig = (name: string, at: number, ...args: unknown[]): SignalAt => ({ name, at, args });
    const sample = (speciesId: string, run: string, start: number) => ({ speciesId, run, start, workflowTasks: { waitMs: [], runMs: [], timeouts: 0, failures: 0, timeoutList: [] } });
    const t = {
      start: 0,
      samples: [sample('small', 'SRR1', 100), sample('small', 'SRR2', 200), sample('big', 'SRR3', 100)],
      speciesSignals: new Map([
        // readsVerified at 150 is before the last small sample started (200): not a tail release
        ['small', [sig('readsVerified', 150), sig('readsVerified', 1000), sig('readsVerified', 2000)]],
        ['big', [sig('setThreads', 1300, 3), sig('setThreads', 2250, 4)]],
        ['other', [sig('setThreads', 2260, 2), sig('setThreads', 9000, 1)]],
      ]),
      speciesClose: new Map([['small', 2500]]),
      parentWorkflowTasks: { waitMs: [], runMs: [], timeouts: 0, failures: 0, timeoutList: [] },
    } as unknown as BatchTimes;
    const r = reactionFigures(t, 'small');
    expect(r.tailSlotFreedToSetThreadsMs).toMatchObject({ n: 2, p50: 250, max: 300 });
    expect(r.lastSlotFreedToSetThreadsMs).toEqual({ big: 250, other: 260 });
    expect(r.smallSpeciesLastSlotFreedSec).toBe(2);
    expect(r.smallSpeciesClosedSec).toBe(2.5);
  });
});

describe('B5: idle and steal of the cores used (bench/b5.ts coreTimes)', () => {
  const stat = [
    'cpu  300 0 100 900 50 0 10 7 0 0',
    'cpu0 100 0 40 400 20 0 5 3 0 0',
    'cpu1 200 0 60 500 30 0 5 4 0 0',
    'intr 12345',
  ].join('\n');
  it('sums the per-core lines of the cores in use, in seconds of USER_HZ 100', () => {
    expect(coreTimes(1, stat)).toEqual({ idleSec: 4.2, stealSec: 0.03, busySec: 1.45 });
    expect(coreTimes(2, stat)).toEqual({ idleSec: 9.5, stealSec: 0.07, busySec: 4.1 });
  });
  it('says nothing when /proc/stat has no per-core lines', () => {
    expect(coreTimes(2, 'intr 1\n')).toBeNull();
  });
});

describe('B5: where the idle core-seconds fell (bench/b5/cpu.ts idlePhases)', () => {
  // t, idle so far, kallisto running: 2 cores; start-up idle, then two kallisto, then the last one alone
  const s = (t: number, idleSec: number, kallisto: number): IdleSample => ({ t, idleSec, kallisto });
  it('splits at the first kallisto and at the last moment the cores were all running it', () => {
    const samples = [s(0, 10, 0), s(1, 11.5, 0), s(2, 12.2, 1), s(3, 12.2, 2), s(4, 12.3, 2), s(5, 13.3, 1), s(6, 14.3, 0)];
    // a reading's count stands until the next reading: the second 4-5 is still the middle
    expect(idlePhases(samples, 2)).toEqual({ startSec: 2.2, middleSec: 1.1, endSec: 1, firstKallistoAt: 2, endFrom: 5 });
  });
  it('more kallisto than cores (the baseline) counts as full; a side that never fills the cores is start and end only', () => {
    expect(idlePhases([s(0, 0, 0), s(1, 0.2, 4), s(2, 0.2, 3), s(3, 0.9, 1), s(4, 1.5, 0)], 2)).toEqual({ startSec: 0.2, middleSec: 0.7, endSec: 0.6, firstKallistoAt: 1, endFrom: 3 });
    expect(idlePhases([s(0, 0, 0), s(1, 0.5, 1), s(2, 1.5, 1), s(3, 2, 0)], 2)).toEqual({ startSec: 0.5, middleSec: 0, endSec: 1.5, firstKallistoAt: 1, endFrom: 1 });
  });
  it('counts kallisto quant, not the kallisto version fetchquant runs at start-up and beside each quant', () => {
    expect(isKallistoQuant('kallisto\n', 'kallisto\0quant\0-i\0/x.idx\0')).toBe(true);
    expect(isKallistoQuant('kallisto\n', 'kallisto\0version\0')).toBe(false);
    expect(isKallistoQuant('bash\n', 'bash\0-c\0kallisto quant\0')).toBe(false);
  });
  it('no kallisto at all: every idle second is start-up; one reading says nothing', () => {
    expect(idlePhases([s(0, 0, 0), s(1, 0.7, 0), s(2, 1.1, 0)], 2)).toEqual({ startSec: 1.1, middleSec: 0, endSec: 0, firstKallistoAt: null, endFrom: null });
    expect(idlePhases([s(0, 3, 1)], 2)).toEqual({ startSec: 0, middleSec: 0, endSec: 0, firstKallistoAt: null, endFrom: null });
  });
});

describe("B5: each side's own CPU (bench/b5/cpu.ts ownCpuSec)", () => {
  it('is the total less kallisto, fasterq-dump and what the poller could not place (b5-2cores-36runs, median pair)', () => {
    const fq = {
      'fetchquant: main thread': 10.06,
      'tool: igzip': 9.37,
      'tool: fasterq-dump': 25.98,
      'tool: kallisto': 180.03,
      'tool: vdb-validate': 0.74,
      'tools: not seen by the poller (short-lived)': 5.85,
      'Temporal server': 9.37,
      'mirror (the network)': 4.88,
    };
    expect(ownCpuSec(fq, 260.12)).toBe(48.26);
    const baseline = { 'tool: curl': 2.92, 'tool: fasterq-dump': 23, 'tool: kallisto': 196.41, 'bash, xargs, date, rm': 1.63, 'mirror (the network)': 4.08 };
    expect(ownCpuSec(baseline, 223.96)).toBe(4.55);
  });
});

describe("B5's README rows name the CPU (bench/b5.ts cpuShort): runs on different machines are told apart", () => {
  it('keeps the vendor and family, as the machine lines of bench/results hold them', () => {
    expect(cpuShort('AMD EPYC')).toBe('AMD EPYC');
    expect(cpuShort('Intel(R) Xeon(R) Processor')).toBe('Intel Xeon');
    expect(cpuShort('AMD EPYC 7B13 64-Core Processor')).toBe('AMD EPYC');
    expect(cpuShort('')).toBe('unknown CPU');
  });
});

describe('B5 --repeat reports the pair of the median ratio (bench/b5.ts medianPair)', () => {
  const pair = (r: number, first: string) => ({ fetchquantOverBaseline: r, first });
  it('takes the middle ratio, not the first or the best pair', () => {
    expect(medianPair([pair(1.17, 'a'), pair(1.04, 'b'), pair(1.1, 'c')]).first).toBe('c');
    expect(medianPair([pair(1.3, 'a')]).first).toBe('a');
  });
  it('of an even count, the upper middle one: the less flattering to fetchquant', () => {
    expect(medianPair([pair(1.2, 'a'), pair(1.0, 'b'), pair(1.1, 'c'), pair(1.3, 'd')]).first).toBe('a');
  });
  it('refuses no pairs', () => {
    expect(() => medianPair([])).toThrow('no pairs');
  });
});

describe('B5 warms the page cache before either side runs (bench/b5.ts warmPageCache)', () => {
  it('reads every file once, through symbolic links (the dataset links the index and transcriptome)', () => {
    const d = mkdtempSync(join(tmpdir(), 'fq-warm-'));
    try {
      mkdirSync(join(d, 'runs'));
      mkdirSync(join(d, 'tx'));
      writeFileSync(join(d, 'runs', 'a.fastq.gz'), Buffer.alloc(9 << 20, 1)); // more than one 8 MiB read
      writeFileSync(join(d, 'tx', 'index.idx'), 'x'.repeat(1000));
      symlinkSync(join(d, 'tx'), join(d, 'index'));
      symlinkSync(join(d, 'runs', 'a.fastq.gz'), join(d, 'again.fastq.gz'));
      expect(warmPageCache(d).bytes).toBe((9 << 20) + 1000);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('B1/B2 read when reads were verified, quantified and deleted from each sample (bench/real/histories.ts stepTimes)', () => {
  const HIST = join(process.cwd(), 'test', 'replay', 'histories');
  const audit = (name: string) => {
    const { workflowId, history } = JSON.parse(readFileSync(join(HIST, `${name}.json`), 'utf8'));
    const events = historyFromJSON(history).events ?? [];
    return parseSampleHistory(events, { workflowId, runId: name, status: 'COMPLETED', start: new Date(0).toISOString(), close: new Date(0).toISOString() });
  };
  it('an older sample with a publish step: reads gone when it ended', () => {
    const a = audit('v5-sample-verified-in-step');
    const publish = a.activities.filter((x) => x.activity === 'publish' || x.activity === 'deleteReads').at(-1)!;
    expect(stepTimes(a).deletedAt).toBe(Date.parse(publish.endedAt!));
  });
  it('a sample that quantified in the step that verified its reads: verified when the step said so, reads gone when it ended', () => {
    for (const name of ['v11-sample-quant-chained', 'v11-sample-sra-quant-chained']) {
      const a = audit(name);
      const step = a.activities.at(-2)!;
      const inStep = a.activities.at(-1)!;
      const t = stepTimes(a);
      expect(t.quantInStep).toBe(true);
      // not the step's end (which includes kallisto and the publish), nor the .sra's download before a conversion
      expect(t.verifiedAt).toBe(Date.parse(inStep.scheduledAt!));
      expect(t.verifiedAt!).toBeLessThan(Date.parse(step.endedAt!));
      expect(t.verifiedAt!).toBeGreaterThanOrEqual(Date.parse(step.startedAt!));
      expect(t.deletedAt).toBe(Date.parse(step.endedAt!));
      // when its quant slot was granted is not recorded: no reaction time is made up for it
      expect(t.quantStartedAt).toBeUndefined();
    }
  });
  it('a sample with a quant step of its own, which publishes: verified when the download ended, quant started when its task started, reads gone when it ended', () => {
    const a = audit('v10-sample-one-first-upsert');
    const t = stepTimes(a);
    const quant = a.activities.find((x) => x.activity === 'quant')!;
    const download = a.activities.find((x) => x.activity === 'download')!;
    expect(t.quantInStep).toBe(false);
    expect(t.verifiedAt).toBe(Date.parse(download.endedAt!));
    expect(t.quantStartedAt).toBe(Date.parse(quant.startedAt!));
    expect(a.activities.map((x) => x.activity)).not.toContain('publish');
    expect(t.deletedAt).toBe(Date.parse(quant.endedAt!));
  });
});
