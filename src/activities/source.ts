/**
 * resolveSource: ask each configured archive, in order, whether it has the run, and plan the download.
 * ENA gives ready FASTQ (size + md5 per mate); SRA gives one .sra that needs converting, so it reserves
 * ~3x its size (sra + fastq + fasterq-dump temp, docs/architecture.md §5.5).
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Source } from '../config/schema.js';
import { archivesOf, RUN_ACCESSION } from '../config/schema.js';
import { FailureType, NOT_YET_AVAILABLE } from '../failures.js';
import { chooseFastqFiles, fetchFilereport, layoutOf, readCountOf } from '../tools/ena.js';
import type { HttpClient } from '../tools/http.js';
import { locateRun } from '../tools/sra.js';
import type { Layout, RunMeta, SampleOptions, SourcePlan } from '../types.js';
import type { Activities } from './contract.js';

/** SRA runs reserve this many times the .sra size. */
export const SRA_RESERVE_FACTOR = 3;

export type Answer = { plan: SourcePlan } | { notFound: string } | { error: ApplicationFailure };

function cancellationSignal(): AbortSignal | undefined {
  try {
    return Context.current().cancellationSignal;
  } catch {
    return undefined; // called outside an activity (unit use)
  }
}

async function askEna(run: RunMeta, o: SampleOptions, http: HttpClient, signal?: AbortSignal): Promise<Answer & { layout?: Layout }> {
  const a = await fetchFilereport({ portalUrl: o.enaPortalUrl, run: run.run, http, signal });
  if (!a.found) return { notFound: a.answer };
  const layout = layoutOf(a.row.library_layout);
  const choice = chooseFastqFiles(a.row, run.run, o.enaFileScheme);
  if (!choice) return { notFound: `no usable FASTQ listed (fastq_ftp=${JSON.stringify(a.row.fastq_ftp ?? '')})`, layout };
  const reserveBytes = choice.files.reduce((s, f) => s + (f.bytes ?? 0), 0);
  const plan: SourcePlan = { source: 'ena', run: run.run, layout: choice.layout, files: choice.files, expectedReads: readCountOf(a.row), reserveBytes };
  const notes: string[] = [];
  if (choice.unpaired) {
    plan.unpaired = choice.unpaired;
    notes.push(`ENA also lists ${choice.unpaired.name} (unpaired reads, ${choice.unpaired.bytes ?? 'unknown'} bytes): not downloaded, not quantified; read_count ${plan.expectedReads ?? 'unknown'} counts them`);
  }
  if (choice.ignored) notes.push(`ENA also lists ${choice.ignored.join(', ')} (technical, index or extra reads): not downloaded, not quantified`);
  if (notes.length) plan.notes = notes;
  return { plan };
}

async function askSra(run: RunMeta, o: SampleOptions, http: HttpClient, layoutHint: Layout | undefined, signal?: AbortSignal): Promise<Answer> {
  const a = await locateRun({ locateUrl: o.sraLocateUrl, run: run.run, http, signal, ...(o.sraServices ? { services: o.sraServices } : {}) });
  if (!a.found) return { notFound: a.answer };
  const notes = a.noqual
    ? [`SRA Lite copy (${a.remoteName}, noqual): quality scores are not the original ones (fasterq-dump writes a constant quality)`]
    : undefined;
  return {
    plan: {
      ...(notes ? { notes } : {}),
      source: 'sra',
      ...(a.service ? { service: a.service } : {}),
      run: run.run,
      // Only a hint: fasterq-dump --split-3 decides the real layout from the reads themselves.
      layout: run.layout ?? layoutHint ?? 'single',
      files: [a.file],
      expectedReads: run.spots ?? null,
      reserveBytes: (a.file.bytes ?? 0) * SRA_RESERVE_FACTOR,
    },
  };
}

/**
 * One source's answer about one run: a plan, "not found here" (with the reason), or a retryable error (the
 * source could not answer now). Non-retryable failures (ENA refusing our request, a bad accession) and
 * cancellation are thrown. Shared by the download path (resolveSource) and `fetchquant plan`.
 */
export async function askSource(
  source: Source, run: RunMeta, o: SampleOptions, http: HttpClient, layoutHint?: Layout, signal?: AbortSignal,
): Promise<Answer & { layout?: Layout }> {
  try {
    return source === 'ena' ? await askEna(run, o, http, signal) : await askSra(run, o, http, layoutHint, signal);
  } catch (err) {
    if (signal?.aborted) throw err;
    if (!(err instanceof ApplicationFailure) || err.nonRetryable) throw err;
    // A source that is down does not stop us asking the next one; but it is not "unknown" either.
    return { error: err };
  }
}

/**
 * deps.order: the sources in the order to ask them now. The source pacer (src/pacing.ts) puts a saturated
 * source (every permit in use, or paused after a 429) after one with room: the run spills to the next
 * allowed source instead of queueing (docs/pacing.md).
 */
export function createSourceActivities(deps: { http: HttpClient; order?: (sources: Source[]) => Promise<Source[]> }): Pick<Activities, 'resolveSource'> {
  return {
    async resolveSource({ run, options }) {
      if (typeof run?.run !== 'string' || !RUN_ACCESSION.test(run.run)) {
        throw ApplicationFailure.create({
          type: FailureType.InvalidInput,
          message: `invalid run accession ${JSON.stringify(run?.run)} (expected ${RUN_ACCESSION.source})`,
          nonRetryable: true,
        });
      }
      const signal = cancellationSignal();
      const asked: string[] = [];
      const errors: ApplicationFailure[] = [];
      let layoutHint: Layout | undefined;
      const configured = archivesOf(options.sources);
      const sources = deps.order ? await deps.order(configured) : configured;
      for (const source of sources) {
        const answer = await askSource(source, run, options, deps.http, layoutHint, signal);
        if ('layout' in answer && answer.layout) layoutHint = answer.layout;
        if ('plan' in answer) {
          if (answer.plan.source !== configured[0] && sources[0] !== configured[0]) {
            answer.plan.notes = [...(answer.plan.notes ?? []), `${configured[0]} was saturated (source pacer): spilled to ${answer.plan.source}`];
          }
          // A source that could not answer (down past the client's own retries) is why the reads come from this
          // one: the provenance says so (a source that answered "not found" needs no note: the run is not there).
          if (errors.length > 0) {
            answer.plan.notes = [...(answer.plan.notes ?? []), `asked ${answer.plan.source} because ${errors.map((e) => e.message).join('; ')}`];
          }
          return answer.plan;
        }
        if ('notFound' in answer) asked.push(`${source}: ${answer.notFound}`);
        else {
          asked.push(`${source}: ${answer.error.message}`);
          errors.push(answer.error);
        }
      }
      const summary = `run ${run.run}: ${asked.join('; ')}`;
      if (errors.length > 0) {
        // At least one source could not answer: retry later rather than declare the run unknown.
        throw ApplicationFailure.create({
          type: errors[0]!.type ?? FailureType.ServerError,
          message: `could not resolve ${summary}`,
          nonRetryable: false,
          nextRetryDelay: errors[0]!.nextRetryDelay ?? undefined,
        });
      }
      // Not at the allowed sources: if another archive has it, it is on its way (the archives exchange runs
      // daily): park it rather than call it unknown (docs/park.md). Only samples that can park ask.
      if (options.parkWaitSec !== undefined) {
        // An archive the species' config switched off (steps.getfastq.aws/gcp/ncbi all no) is never asked;
        // one only --sources leaves out is looked up (any service the config allows), never fetched from.
        const services = options.sraProbeServices ?? options.sraServices;
        const off = (x: Source) => x === 'sra' && services !== undefined && services.length === 0;
        for (const other of (['ena', 'sra'] as Source[]).filter((x) => !configured.includes(x) && !off(x))) {
          const probe = await askSource(other, run, { ...options, ...(services ? { sraServices: services } : {}) }, deps.http, layoutHint, signal).catch(() => null);
          if (probe && 'plan' in probe) {
            throw ApplicationFailure.create({
              type: NOT_YET_AVAILABLE,
              nonRetryable: true,
              message: `run ${run.run} is at ${other} but not (yet) at ${configured.join(', ')}: ${asked.join('; ')}`,
            });
          }
        }
      }
      throw ApplicationFailure.create({ type: FailureType.RunNotFound, message: `not found at any source, ${summary}`, nonRetryable: true });
    },
  };
}
