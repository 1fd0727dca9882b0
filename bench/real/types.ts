/** The shape of bench/results/real.json: plain numbers and strings, units in the key names. */
import type { dist, LinkFigures, ReactionFigures, UtilisationFigures } from './figures.js';

export type Dist = ReturnType<typeof dist>;

export interface Anomaly {
  run: string;
  activity: string;
  outcome: string;
  attempt: number;
  error?: string;
  sec?: number;
}

export interface RealFigures {
  quick: boolean;
  /** 1-minute load average before/after each scenario: the 2 cores are shared, so read ratios with it */
  loadAvg1m: { clean: [number, number]; baseline: [number, number]; crash: [number, number] };
  /** logs of the fetchquant runs (gitignored), for a post-mortem of anomalies */
  logs: string[];
  workload: {
    species: number;
    runsPerSpecies: number[];
    runs: number;
    pairedRuns: number;
    sraOnlyRuns: number;
    spotsPerRun: number;
    neededBytes: number;
    largestDownloadBytes: number;
    bandwidthCapBytesPerSec: number;
    latencyMs: number;
    totalThreads: number;
    kallistoThreads: number;
    /** flags given to `fetchquant run` besides config/output/mirror URLs */
    extraFlags: string[];
  };
  b1: {
    lowerBoundSec: number;
    /** kallisto alone for the run downloaded last (baseline timestamps) */
    lastQuantSec: number;
    fetchquant: UtilisationFigures & LinkFigures & {
      /** activities of the clean run that did not simply complete (a clean run should have none) */
      anomalies: Anomaly[];
      /** workflow tasks of every workflow of the batch: wait = scheduled -> picked up, run = picked up -> completed */
      workflowTaskWaitMs: Dist;
      workflowTaskRunMs: Dist;
      workflowTaskTimeouts: number;
      /** each workflow task timeout: seconds after the batch started, type, and which workflow kind */
      workflowTaskTimeoutList: { atSec: number; type: string; workflow: 'sample' | 'species/batch' }[];
      /** after the last byte: last download end -> last quant end -> last sample closed -> batch closed -> CLI exit */
      tailSec: { toLastQuantEnd: number; toLastSampleClosed: number; toBatchClosed: number; toExit: number };
      makespanSec: number;
      startupSec: number | null;
      exitCode: number | null;
      samplesDone: number;
      makespanOverLowerBound: number;
      makespanOverBaseline: number;
      /** sample start -> reads verified, summed / (threads x (first sample start -> last reads verified)) */
      slotHeldUtilisation: number;
      fileBytesServed: number;
      peakReadsBytes: number;
      /** (threads + most samples verified but not yet deleted) x largest run on disk */
      peakReadsBoundBytes: number;
      maxQuantBacklog: number;
      largestRunOnDiskBytes: number;
      quantActivitySec: Dist;
      convertActivitySec: Dist;
      verifyActivitySec: Dist;
      downloadActivitySec: Dist;
    };
    baseline: UtilisationFigures & LinkFigures & {
      makespanSec: number;
      exitCode: number;
      failedRuns: number;
      makespanOverLowerBound: number;
      fileBytesServed: number;
      peakReadsBytes: number;
      /** threads x largest run on disk: each xargs slot holds one run at a time */
      peakReadsBoundBytes: number;
      largestRunOnDiskBytes: number;
      quantSec: Dist;
    };
  };
  b2: ReactionFigures;
  b4: {
    kills: number;
    killAtSec: number[];
    killAtSamplesDone: number[];
    downloadsInProgressAtKills: number[];
    /** bytes of the partial files on disk at the kills (what a non-resuming download would fetch again) */
    partialBytesAtKills: number;
    /** whole sizes of the files in progress at the kills (what restarting files from scratch would cost) */
    wholeFileBytesInProgressAtKills: number;
    fileBytesServed: number;
    extraBytes: number;
    extraBytesOverPartialBytes: number;
    makespanSec: number;
    cleanMakespanSec: number;
    extraMakespanSec: number;
    extraMakespanPerKillSec: number;
    exitCode: number | null;
    samplesDone: number;
    samplesLost: number;
    samplesQuantifiedTwice: number;
    sampleWorkflowExecutions: number;
    quantActivityReruns: number;
    /** samples whose download activity retried (resume) or was scheduled again (reads deleted, fetched anew) */
    downloadRetries: number;
    samplesDownloadedAgain: number;
    /** whole download sizes of those samples: extra bytes not due to resuming */
    bytesOfSamplesDownloadedAgain: number;
    /** seconds from each (re)start of the CLI to its `batch … running` line */
    restartStartupSec: number[];
    workflowTaskTimeouts: number;
    /** heartbeat timeout of host activities: how long a dead worker's tasks wait before they are retried */
    heartbeatTimeoutSec: number;
  };
}

