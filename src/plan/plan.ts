/**
 * The plan: every run of a batch resolved at its allowed sources before any bandwidth is spent, with the disk
 * it needs and a time estimate. It asks the archives through the download path's own code (askSource in
 * src/activities/source.ts: the same filereport and locator parsing) and the same HttpClient, so the same
 * per-archive rate limits (src/tools/http.ts rateDefaults) hold. Nothing is downloaded or written.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { ApplicationFailure } from '@temporalio/common';
import { askSource } from '../activities/source.js';
import { freeBytesOf, nearestDir } from '../activities/disk.js';
import { isRunDone } from '../config/discover.js';
import type { BatchOptions, Source } from '../config/schema.js';
import { provenancePath } from '../ids.js';
import type { HttpClient } from '../tools/http.js';
import type { Layout, Provenance, RunMeta, SampleOptions, SourcePlan } from '../types.js';

export interface PlanSpecies {
  speciesId: string;
  readsDir: string;
  quantDir: string;
  runs: RunMeta[];
  /** sources this species may use, in order (batch --sources filtered by its config) */
  sources: Source[];
  /** SRA Data Locator services allowed, in the order they are preferred */
  sraServices?: string[];
}

export interface SourceAnswer {
  source: Source;
  plan?: SourcePlan;
  /** "not here", with the archive's answer */
  notFound?: string;
  /** the source could not answer (5xx beyond retries, a refused request) */
  error?: string;
}

export interface RunVerdict {
  speciesId: string;
  run: string;
  answers: SourceAnswer[];
  /** the copy the download path would take (first allowed source that has one) */
  chosen: SourcePlan | null;
  /** why the run cannot be had now, or null */
  problem: string | null;
  /** what a user should know: 3-file runs, technical reads, SRA Lite only, layout disagreements */
  notes: string[];
}

export interface DiskVerdict {
  /** the reads dirs on this filesystem */
  dirs: string[];
  runs: number;
  totalBytes: number;
  largestBytes: number;
  /** bytes reserved at once when --total-threads downloads run together (the largest runs) */
  peakBytes: number;
  freeBytes: number;
  floorBytes: number;
  problem: string | null;
  warning: string | null;
}

export interface SpeedBasis {
  /** past downloads measured */
  samples: number;
  /** median bytes per second of one download, or null without measurements */
  bytesPerSec: number | null;
  basis: string;
}

export interface PlanReport {
  runs: RunVerdict[];
  /** runs already done on disk (not asked about) */
  done: number;
  /** one line per run listed by more than one species */
  duplicates: string[];
  disks: DiskVerdict[];
  totalBytes: number;
  bySource: Record<string, { runs: number; bytes: number }>;
  speed: SpeedBasis;
  estimateSec: number | null;
  /** one line per problem (runs that cannot be had, disks too small); empty = everything can be had */
  problems: string[];
}

export interface PlanInput {
  species: PlanSpecies[];
  options: BatchOptions;
  http: HttpClient;
  /** ask every allowed source about every run (`plan`); false: stop at the first that has it (`run`'s summary) */
  askAll: boolean;
  /** requests in flight at once; the rate limiters decide the pace (default 8) */
  concurrency?: number;
  /** how many past provenance files to read for speeds (default 2000) */
  maxSpeedSamples?: number;
}

function sampleOptions(o: BatchOptions, sp: PlanSpecies): SampleOptions {
  return {
    maxRetries: o.maxRetries, processTimeoutSec: o.processTimeoutSec, minFreeGb: o.minFreeGb, kallistoThreads: o.kallistoThreads,
    quantThreads: o.quantThreads, sources: sp.sources, enaPortalUrl: o.enaPortalUrl, enaFileScheme: o.enaFileScheme,
    sraLocateUrl: o.sraLocateUrl, hostLostTimeoutSec: o.hostLostTimeoutSec, diskWaitSec: o.diskWaitSec,
    retryInitialSec: o.retryInitialSec, stallTimeoutSec: o.stallTimeoutSec,
    ...(sp.sraServices ? { sraServices: sp.sraServices } : {}),
  };
}

async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

/** Asks the species' sources in order about one run, as resolveSource does; with askAll, every source. */
async function resolveRun(sp: PlanSpecies, run: RunMeta, o: BatchOptions, http: HttpClient, askAll: boolean): Promise<RunVerdict> {
  const answers: SourceAnswer[] = [];
  let layoutHint: Layout | undefined;
  let chosen: SourcePlan | null = null;
  for (const source of sp.sources) {
    if (chosen && !askAll) break;
    let a;
    try {
      a = await askSource(source, run, sampleOptions(o, sp), http, layoutHint);
    } catch (err) {
      // Non-retryable: ENA refused the request itself (a renamed field), a bad accession.
      answers.push({ source, error: err instanceof ApplicationFailure || err instanceof Error ? err.message : String(err) });
      continue;
    }
    if (a.layout) layoutHint = a.layout;
    if ('plan' in a) {
      answers.push({ source, plan: a.plan });
      chosen ??= a.plan;
    } else if ('notFound' in a) answers.push({ source, notFound: a.notFound });
    else answers.push({ source, error: a.error.message });
  }
  return verdict(sp.speciesId, run, answers, chosen);
}

function verdict(speciesId: string, run: RunMeta, answers: SourceAnswer[], chosen: SourcePlan | null): RunVerdict {
  const notes: string[] = [];
  let problem: string | null = null;
  const said = answers.map((a) => `${a.source}: ${a.plan ? 'has it' : (a.notFound ?? a.error)}`).join('; ');
  if (answers.length === 0) problem = 'no source allowed (--sources and steps.getfastq.ena/aws/gcp/ncbi leave none)';
  else if (!chosen) {
    problem = answers.some((a) => a.error)
      ? `no source can serve it now (${said})`
      : `missing everywhere (${said})`;
  } else {
    for (const n of chosen.notes ?? []) notes.push(n);
    const lite = answers.find((a) => a.plan?.source === 'sra' && a.plan.notes?.some((n) => n.startsWith('SRA Lite')));
    const fullElsewhere = answers.some((a) => a.plan && a !== lite);
    if (lite && !fullElsewhere) notes.push('only an SRA Lite copy exists (no original quality scores)');
    const layouts = new Set(answers.filter((a) => a.plan?.source === 'ena').map((a) => a.plan!.layout));
    if (run.layout && layouts.size === 1 && !layouts.has(run.layout)) {
      notes.push(`the run table says ${run.layout} but ENA lists ${[...layouts][0]} reads`);
    }
    if (chosen.files.some((f) => f.bytes === null)) notes.push(`${chosen.source} does not give every file's size: disk need is a lower bound`);
    const unavailable = answers.filter((a) => a.error);
    if (unavailable.length) notes.push(`could not ask ${unavailable.map((a) => `${a.source} (${a.error})`).join('; ')}`);
  }
  return { speciesId, run: run.run, answers, chosen, problem, notes };
}

/** Median per-download speed from finished runs' provenance (bytes of the copy fetched / time downloading). */
export async function pastSpeeds(quantDirs: string[], max = 2000): Promise<SpeedBasis> {
  const speeds: number[] = [];
  let read = 0;
  for (const dir of new Set(quantDirs)) {
    const entries = await readdir(dir).catch(() => [] as string[]);
    for (const run of entries) {
      if (read >= max) break;
      const text = await readFile(provenancePath(dir, run), 'utf8').catch(() => null);
      if (text === null) continue;
      read++;
      let p: Provenance;
      try {
        p = JSON.parse(text) as Provenance;
      } catch {
        continue;
      }
      const bytes = p.downsampling?.bytesFetched ?? (p.source?.files ?? []).reduce((s, f) => s + (f.bytes ?? 0), 0);
      let ms = 0;
      for (const st of p.stages ?? []) {
        if (st.stage !== 'downloading' || !st.endedAt) continue;
        const d = Date.parse(st.endedAt) - Date.parse(st.startedAt);
        if (Number.isFinite(d) && d > 0) ms += d;
      }
      if (bytes > 0 && ms > 0) speeds.push(bytes / (ms / 1000));
    }
  }
  if (speeds.length === 0) {
    return { samples: 0, bytesPerSec: null, basis: 'no finished run with a timed download in the quant dirs yet, so no measured speed to estimate from' };
  }
  speeds.sort((a, b) => a - b);
  const median = speeds[Math.floor(speeds.length / 2)]!;
  return { samples: speeds.length, bytesPerSec: median, basis: `median speed of ${speeds.length} past download(s) recorded in the quant dirs' provenance` };
}

async function deviceOf(dir: string): Promise<number> {
  return (await stat(await nearestDir(dir))).dev;
}

async function diskVerdicts(species: PlanSpecies[], verdicts: RunVerdict[], o: BatchOptions): Promise<DiskVerdict[]> {
  const dirOf = new Map(species.map((s) => [s.speciesId, s.readsDir]));
  const groups = new Map<number, { dirs: Set<string>; sizes: number[] }>();
  for (const sp of species) {
    const dev = await deviceOf(sp.readsDir);
    const g = groups.get(dev) ?? { dirs: new Set<string>(), sizes: [] };
    g.dirs.add(sp.readsDir);
    groups.set(dev, g);
  }
  const devOfDir = new Map<string, number>();
  for (const [dev, g] of groups) for (const d of g.dirs) devOfDir.set(d, dev);
  for (const v of verdicts) {
    if (!v.chosen) continue;
    groups.get(devOfDir.get(dirOf.get(v.speciesId)!)!)!.sizes.push(v.chosen.reserveBytes);
  }
  const floor = o.minFreeGb * 1e9;
  const out: DiskVerdict[] = [];
  for (const g of groups.values()) {
    const dirs = [...g.dirs];
    const sizes = g.sizes.sort((a, b) => b - a);
    const free = await freeBytesOf(dirs[0]!);
    const usable = free - floor;
    const largest = sizes[0] ?? 0;
    const peak = sizes.slice(0, o.totalThreads).reduce((s, b) => s + b, 0);
    const total = sizes.reduce((s, b) => s + b, 0);
    const where = dirs.join(', ');
    const problem = largest > usable
      ? `disk of ${where}: the largest run needs ${largest} bytes but only ${Math.max(0, usable)} are free above the --min-free-gb ${o.minFreeGb} floor (${free} free): it would wait for disk forever`
      : null;
    const warning = !problem && peak > usable
      ? `disk of ${where}: ${o.totalThreads} downloads at once could reserve ${peak} bytes but ${Math.max(0, usable)} are free above the floor: downloads will wait for disk (slower, not failing)`
      : null;
    out.push({ dirs, runs: sizes.length, totalBytes: total, largestBytes: largest, peakBytes: peak, freeBytes: free, floorBytes: floor, problem, warning });
  }
  return out;
}

export async function planBatch(input: PlanInput): Promise<PlanReport> {
  const { options: o, http } = input;
  // Done runs are not asked about: a re-run's plan covers only what is left.
  const todo: { sp: PlanSpecies; run: RunMeta }[] = [];
  let done = 0;
  const listedBy = new Map<string, string[]>();
  for (const sp of input.species) {
    const present = new Set(await readdir(sp.quantDir).catch(() => [] as string[]));
    for (const run of sp.runs) {
      listedBy.set(run.run, [...(listedBy.get(run.run) ?? []), sp.speciesId]);
      if (present.has(run.run) && (await isRunDone(sp.quantDir, run.run))) done++;
      else todo.push({ sp, run });
    }
  }
  const duplicates = [...listedBy].filter(([, ids]) => ids.length > 1).map(([run, ids]) => `${run} is listed by ${ids.join(', ')}: downloaded and quantified once for each`);
  // One question per run and set of sources, even when several species list it.
  const cache = new Map<string, Promise<RunVerdict>>();
  const verdicts: RunVerdict[] = new Array(todo.length);
  await pool([...todo.keys()], input.concurrency ?? 8, async (i) => {
    const { sp, run } = todo[i]!;
    const key = `${run.run}\0${sp.sources.join(',')}\0${(sp.sraServices ?? []).join(',')}`;
    let p = cache.get(key);
    if (!p) {
      p = resolveRun(sp, run, o, http, input.askAll);
      cache.set(key, p);
    }
    verdicts[i] = { ...(await p), speciesId: sp.speciesId };
  });
  const disks = await diskVerdicts(input.species, verdicts, o);
  const bySource: Record<string, { runs: number; bytes: number }> = {};
  let totalBytes = 0;
  for (const v of verdicts) {
    if (!v.chosen) continue;
    const b = v.chosen.files.reduce((s, f) => s + (f.bytes ?? 0), 0);
    const key = v.chosen.service ? `${v.chosen.source} (${v.chosen.service})` : v.chosen.source;
    const s = (bySource[key] ??= { runs: 0, bytes: 0 });
    s.runs++;
    s.bytes += b;
    totalBytes += b;
  }
  const speed = await pastSpeeds(input.species.map((s) => s.quantDir), input.maxSpeedSamples);
  const parallel = Math.min(o.totalThreads, verdicts.filter((v) => v.chosen).length);
  const estimateSec = speed.bytesPerSec && parallel > 0 ? totalBytes / (speed.bytesPerSec * parallel) : totalBytes === 0 ? 0 : null;
  const problems = [
    ...verdicts.filter((v) => v.problem).map((v) => `${v.run}  ${v.speciesId}  ${v.problem}`),
    ...disks.filter((d) => d.problem).map((d) => d.problem!),
  ];
  return { runs: verdicts, done, duplicates, disks, totalBytes, bySource, speed, estimateSec, problems };
}
