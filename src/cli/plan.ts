/**
 * `fetchquant plan` and the first step of `run`: the batch's runs resolved at their sources (src/plan/plan.ts),
 * printed for people — one line per problem, a summary. `plan` exits 0 when every run can be had, 1 otherwise.
 */
import { hostname } from 'node:os';
import { archivesOf, type BatchOptions } from '../config/schema.js';
import { planBatch, type PlanReport, type PlanSpecies } from '../plan/plan.js';
import { HttpClient } from '../tools/http.js';
import type { RunMeta } from '../types.js';
import { EXIT, type Values } from './args.js';
import { humanBytes, humanDuration } from './progress.js';
import { discoverDry, validateConfigs } from './validate.js';

/** Discovery (dry) plus each species' runs and allowed sources, ready for planBatch. */
export async function planInput(options: BatchOptions, opts: { checkTools: boolean }): Promise<PlanSpecies[]> {
  const runs = new Map<string, RunMeta[]>();
  const onRuns = (id: string, r: RunMeta[]) => void runs.set(id, r);
  const plan = opts.checkTools ? await validateConfigs(options, process.cwd(), onRuns) : await discoverDry(options, process.cwd(), onRuns);
  return plan.species.map((s) => ({
    speciesId: s.speciesId,
    readsDir: s.readsDir,
    quantDir: s.quantDir,
    runs: runs.get(s.speciesId) ?? [],
    sources: s.amalgkit?.sources ?? archivesOf(options.sources),
    ...(s.amalgkit ? { sraServices: s.amalgkit.sraServices } : {}),
  }));
}

/** The summary lines (plain text, for people). `full` adds one line per noted run. */
export function planLines(r: PlanReport, options: BatchOptions, full: boolean): string[] {
  const lines: string[] = [];
  const asked = r.runs.length;
  const had = r.runs.filter((v) => v.chosen).length;
  lines.push(`plan: ${asked + r.done} run(s), ${r.done} already done, ${asked} to fetch; ${had} can be had now, ${asked - had} cannot`);
  for (const [source, s] of Object.entries(r.bySource)) lines.push(`  from ${source}: ${s.runs} run(s), ${humanBytes(s.bytes)}`);
  const counts = new Map<string, number>();
  const kinds: [string, RegExp][] = [
    ['three-file runs (unpaired reads listed, not fetched)', /unpaired reads/],
    ['runs with technical or extra read files (not fetched)', /technical, index or extra reads/],
    ['runs with only an SRA Lite copy (no original qualities)', /only an SRA Lite copy/],
    ['runs whose layout differs between the run table and ENA', /the run table says/],
    ['runs whose size is not given in full', /does not give every file's size/],
    ['runs a source could not be asked about', /could not ask/],
  ];
  for (const v of r.runs) for (const n of v.notes) for (const [k, re] of kinds) if (re.test(n)) counts.set(k, (counts.get(k) ?? 0) + 1);
  for (const [k, n] of counts) lines.push(`  ${n} ${k}`);
  if (r.duplicates.length) lines.push(`  ${r.duplicates.length} run(s) listed by more than one species`);
  for (const d of r.disks) {
    const state = d.problem ? 'TOO SMALL' : d.warning ? 'tight' : 'ok';
    lines.push(
      `disk (${hostname()}) ${d.dirs.join(', ')}: ${d.runs} run(s), ${humanBytes(d.totalBytes)} in all; up to ${humanBytes(d.peakBytes)} at once ` +
        `(${options.totalThreads} downloads, SRA x3 for conversion), largest ${humanBytes(d.largestBytes)}; free ${humanBytes(d.freeBytes)}, floor ${humanBytes(d.floorBytes)}: ${state}`,
    );
    if (d.warning) lines.push(`  ${d.warning}`);
  }
  const parallel = Math.min(options.totalThreads, had);
  lines.push(
    r.estimateSec === null
      ? `time: no estimate: ${r.speed.basis}`
      : r.speed.bytesPerSec === null
        ? 'time: nothing to download'
        : `time: about ${humanDuration(r.estimateSec)} for ${humanBytes(r.totalBytes)}: ${r.speed.basis} (${humanBytes(r.speed.bytesPerSec)}/s each), ` +
          `${parallel} at once, assuming each keeps that speed (a shared link makes it longer); quant time not included`,
  );
  if (full) {
    for (const v of r.runs) for (const n of v.notes) lines.push(`note  ${v.run}  ${v.speciesId}  ${n}`);
    for (const d of r.duplicates) lines.push(`note  ${d}`);
  }
  for (const p of r.problems) lines.push(`PROBLEM  ${p}`);
  return lines;
}

export async function cmdPlan(values: Values, options: BatchOptions, out: (l: string) => void): Promise<number> {
  const species = await planInput(options, { checkTools: false });
  const report = await planBatch({ species, options, http: new HttpClient(), askAll: true });
  if (values.json) out(JSON.stringify(report, null, 2));
  else for (const l of planLines(report, options, true)) out(l);
  return report.problems.length ? EXIT.samplesFailed : EXIT.ok;
}

/**
 * `run`'s plan summary: each run asked at its first source that has it, through `http` (the worker's client,
 * so the asks share its per-archive rate limits and source pacing). `run` prints it while the batch already
 * runs: it was the start-up pause (7.75 s for B1's 100 runs, 20 of them SRA-only at NCBI's 3 requests/s; minutes
 * for thousands of runs, on every restart), and the samples ask their sources themselves anyway. Never throws:
 * a plan that cannot be made is one line, the batch goes on.
 */
export async function planSummaryLines(species: PlanSpecies[], options: BatchOptions, http: HttpClient): Promise<string[]> {
  try {
    const report = await planBatch({ species, options, http, askAll: false });
    const lines = planLines(report, options, false).slice(0, 40);
    if (report.problems.length > 37) lines.push(`… ${report.problems.length} problems in all: \`fetchquant plan\` lists every one`);
    return lines;
  } catch (err) {
    return [`plan: the runs could not be asked at their sources (${(err as Error).message}); the batch runs regardless`];
  }
}
