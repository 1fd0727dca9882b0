/**
 * How many kallisto jobs run at once on a host and with how many threads each (`-t`), when the user did not
 * say: from the cores this host gives us, so a 2-core laptop and a 16-core server both keep every core busy
 * with quants without running more kallisto threads than cores (docs/benchmarks.md B5 shows it at 2 and 1).
 *
 * The rule (README "Threads and cores"), C = usable cores:
 *   neither set:            -t = floor(sqrt(C)), jobs = floor(C / -t)   (2 -> 1 x 2, 4 -> 2 x 2, 16 -> 4 x 4)
 *   only --kallisto-threads: jobs = max(1, floor(C / -t))
 *   only --quant-threads:    -t = max(1, floor(C / jobs))
 *   both:                    as given (the user's values always win)
 * Neither set, the host's last quant for now may still take every core (src/activities/quant.ts quantThreadsNow).
 * Few threads per job and several jobs beat one wide job: kallisto's index load and EM are single-threaded,
 * and while one job loads its index another's pseudoalignment keeps the cores busy; sqrt(C) threads bounds
 * the number of indexes in memory at once on big hosts. Download slots (--total-threads) are not counted:
 * downloads wait on the network, and their CPU (hashing, inflating) is small beside kallisto's.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

export interface QuantThreads {
  /** `-t` of each kallisto run (also fasterq-dump's `-e`) */
  kallistoThreads: number;
  /** kallisto runs at once on this host */
  quantThreads: number;
}

export function decideQuantThreads(cores: number, set: { kallistoThreads?: number | null; quantThreads?: number | null }): QuantThreads {
  const c = Math.max(1, Math.floor(Number.isFinite(cores) ? cores : 1));
  const t = set.kallistoThreads ?? null;
  const q = set.quantThreads ?? null;
  if (t !== null && q !== null) return { kallistoThreads: t, quantThreads: q };
  if (t !== null) return { kallistoThreads: t, quantThreads: Math.max(1, Math.floor(c / t)) };
  if (q !== null) return { kallistoThreads: Math.max(1, Math.floor(c / q)), quantThreads: q };
  const threads = Math.max(1, Math.floor(Math.sqrt(c)));
  return { kallistoThreads: threads, quantThreads: Math.max(1, Math.floor(c / threads)) };
}

/**
 * cgroup v2 `cpu.max` ("max 100000" or "<quota> <period>") as whole cores (rounded up), or null when
 * there is no quota. A container limited to 1.5 CPUs gets 2.
 */
export function cgroupCpuLimit(cpuMax: string | null): number | null {
  if (!cpuMax) return null;
  const [quota, period] = cpuMax.trim().split(/\s+/);
  if (!quota || quota === 'max') return null;
  const q = Number(quota);
  const p = Number(period ?? 100_000);
  if (!(q > 0) || !(p > 0)) return null;
  return Math.max(1, Math.ceil(q / p));
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/**
 * Cores this process may use: the CPU affinity mask (`taskset`, cpusets; what os.availableParallelism()
 * reports) and, where the container has one, the cgroup v2 CPU quota, whichever is smaller.
 */
export function hostCores(): number {
  const affinity = availableParallelism();
  const quota = cgroupCpuLimit(readOrNull('/sys/fs/cgroup/cpu.max'));
  return quota === null ? affinity : Math.min(affinity, quota);
}

let cached: number | undefined;
/** hostCores(), read once per process (affinity and quota do not change under a running worker). */
export function cachedHostCores(): number {
  return (cached ??= hostCores());
}
