/**
 * Activities over species discovery: discoverBatch (validate + snapshot) and listRuns (page a snapshot).
 * The plain discoverBatch is re-exported so the CLI can validate before it starts anything (exit 2).
 */
import { stat } from 'node:fs/promises';
import { ApplicationFailure } from '@temporalio/common';
import { discoverBatch, isRunDone, readSnapshot, type ExpandProject, type SearchRunsByTaxon } from '../config/discover.js';
import { formatProblem, InvalidInputError } from '../config/schema.js';
import { FailureType } from '../failures.js';
import type { RunMeta } from '../types.js';
import type { Activities } from './contract.js';

export { discoverBatch, type DiscoverDeps } from '../config/discover.js';

export interface DiscoverActivityDeps {
  /** directory relative config paths resolve against */
  cwd: string;
  searchRunsByTaxon?: SearchRunsByTaxon;
  expandProject?: ExpandProject;
}

function invalid(message: string, details?: unknown[]): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureType.InvalidInput, nonRetryable: true, message, details });
}

// A species workflow pages its snapshot 200 runs at a time; re-reading a 20,000-run file per page would be
// quadratic. Keyed by path, validated by mtime+size so a rewritten snapshot is read again.
const CACHE_LIMIT = 16;

export function createDiscoverActivities(deps: DiscoverActivityDeps): Pick<Activities, 'discoverBatch' | 'listRuns'> {
  const cache = new Map<string, { mtimeMs: number; size: number; runs: RunMeta[] }>();

  async function snapshot(path: string): Promise<RunMeta[]> {
    let st;
    try {
      st = await stat(path);
    } catch (err) {
      throw invalid(`run snapshot ${path} cannot be read (${(err as Error).message}); was the output directory removed during the batch?`);
    }
    const hit = cache.get(path);
    if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.runs;
    let runs: RunMeta[];
    try {
      runs = await readSnapshot(path);
    } catch (err) {
      throw invalid((err as Error).message);
    }
    cache.delete(path);
    cache.set(path, { mtimeMs: st.mtimeMs, size: st.size, runs });
    if (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value as string);
    return runs;
  }

  return {
    async discoverBatch({ options, batchId }) {
      try {
        return await discoverBatch(options, batchId, deps.cwd, { searchRunsByTaxon: deps.searchRunsByTaxon, ...(deps.expandProject ? { expandProject: deps.expandProject } : {}), amalgkitTables: true });
      } catch (err) {
        if (err instanceof InvalidInputError) {
          const lines = err.problems.map(formatProblem);
          throw invalid(`${lines.length} problem(s) in the batch input and species configs:\n${lines.join('\n')}`, [err.problems]);
        }
        throw err;
      }
    },

    async listRuns({ runListPath, quantDir, cursor, limit }) {
      if (!Number.isInteger(cursor) || cursor < 0 || !Number.isInteger(limit) || limit < 1) {
        throw invalid(`listRuns: cursor must be a whole number >= 0 and limit >= 1, got cursor ${cursor}, limit ${limit}`);
      }
      const all = await snapshot(runListPath);
      const page = all.slice(cursor, cursor + limit);
      const runs: RunMeta[] = [];
      const skipped: string[] = [];
      for (const r of page) {
        if (await isRunDone(quantDir, r.run)) skipped.push(r.run);
        else runs.push(r);
      }
      const next = cursor + page.length;
      return { runs, skipped, nextCursor: next < all.length ? next : null };
    },
  };
}
