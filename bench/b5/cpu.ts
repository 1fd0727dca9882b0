/**
 * CPU by process kind and by thread, from /proc (Linux): a poller walks a process tree every `everyMs`
 * and keeps each process's and each of the root's threads' last utime + stime. A process that lives less
 * than one poll is missed and the last poll of each one short by up to `everyMs`; callers reconcile with
 * an exact total (the root's cutime/cstime, bash `times`) and report the difference as unattributed.
 */
import { readdirSync, readFileSync } from 'node:fs';

const TICK = 100; // USER_HZ

export interface ProcStat {
  comm: string;
  ppid: number;
  /** user + system, seconds */
  cpuSec: number;
  /** user + system of its children that have ended and been waited for (cutime + cstime), seconds */
  childrenCpuSec: number;
  startTicks: number;
}

/** /proc/<pid>[/task/<tid>]/stat, or null when it is gone. */
export function readStat(path: string): ProcStat | null {
  let s: string;
  try {
    s = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  const open = s.indexOf('(');
  const close = s.lastIndexOf(')');
  const f = s.slice(close + 2).split(' ');
  return { comm: s.slice(open + 1, close), ppid: Number(f[1]), cpuSec: (Number(f[11]) + Number(f[12])) / TICK, childrenCpuSec: (Number(f[13]) + Number(f[14])) / TICK, startTicks: Number(f[19]) };
}

/** CPU seconds of a live process (all its threads), or null. */
export function cpuOf(pid: number): number | null {
  return readStat(`/proc/${pid}/stat`)?.cpuSec ?? null;
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tids) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/)) if (c) out.push(Number(c));
    } catch {
      /* gone */
    }
  }
  return out;
}

export interface TreeCpu {
  /** the root's threads by tid (from /proc/<pid>/task/<tid>/stat): name and last CPU seen */
  threads: Map<number, { comm: string; cpuSec: number }>;
  /** descendants by comm -> CPU s, and how many processes */
  children: Record<string, { cpuSec: number; processes: number }>;
}

export function pollTree(rootPid: () => number | null, everyMs = 200): { stop(): TreeCpu } {
  const procs = new Map<string, { comm: string; cpuSec: number }>();
  const threads = new Map<number, { comm: string; cpuSec: number }>();
  const tick = () => {
    const root = rootPid();
    if (root === null) return;
    try {
      for (const t of readdirSync(`/proc/${root}/task`)) {
        const st = readStat(`/proc/${root}/task/${t}/stat`);
        if (st) threads.set(Number(t), { comm: st.comm, cpuSec: st.cpuSec });
      }
    } catch {
      /* exited */
    }
    const stack = childrenOf(root);
    while (stack.length) {
      const pid = stack.pop()!;
      const st = readStat(`/proc/${pid}/stat`);
      if (st) procs.set(`${pid}:${st.startTicks}`, { comm: st.comm, cpuSec: st.cpuSec });
      stack.push(...childrenOf(pid));
    }
  };
  const timer = setInterval(tick, everyMs);
  tick();
  return {
    stop() {
      clearInterval(timer);
      const out: TreeCpu = { threads, children: {} };
      for (const p of procs.values()) {
        const c = (out.children[p.comm] ??= { cpuSec: 0, processes: 0 });
        c.cpuSec += p.cpuSec;
        c.processes++;
      }
      return out;
    },
  };
}

/** `times` output of bash: "0m1.234s 0m0.056s" -> seconds (user + system). */
export function parseTimesLine(line: string): number {
  const m = [...line.matchAll(/(\d+)m([\d.]+)s/g)];
  return m.reduce((n, x) => n + Number(x[1]) * 60 + Number(x[2]), 0);
}

/** One reading of the idle sampler: seconds since the side started, the cores' idle seconds so far, kallisto processes running. */
export interface IdleSample {
  t: number;
  idleSec: number;
  kallisto: number;
}

export interface IdlePhases {
  /** idle core-seconds until the first kallisto ran */
  startSec: number;
  /** from then until the last moment `cores` or more kallisto ran */
  middleSec: number;
  /** after that: fewer kallisto than cores, to the side's end */
  endSec: number;
  /** when the first kallisto was seen and when the end phase began, seconds since the side started */
  firstKallistoAt: number | null;
  endFrom: number | null;
}

/**
 * Where a side's idle core-seconds fell (issue 15's start-up and tail): before the first kallisto, while
 * kallisto could fill the cores, and after the last moment it did. Pure, over the sampler's readings; a
 * reading's kallisto count stands until the next reading (at 0.1 s apart, a boundary is off by at most 0.2 core-s).
 */
export function idlePhases(samples: IdleSample[], cores: number): IdlePhases {
  const out: IdlePhases = { startSec: 0, middleSec: 0, endSec: 0, firstKallistoAt: null, endFrom: null };
  if (samples.length < 2) return out;
  const first = samples.findIndex((s) => s.kallisto > 0);
  let lastFull = -1;
  for (let i = samples.length - 1; i >= 0; i--) {
    if (samples[i]!.kallisto >= cores) {
      lastFull = i;
      break;
    }
  }
  // No kallisto at all: everything is start-up. Never all cores: the end begins with the first kallisto.
  const endFrom = first < 0 ? samples.length - 1 : Math.max(first, lastFull + 1);
  const startTo = first < 0 ? samples.length - 1 : first;
  const idleAt = (i: number) => samples[i]!.idleSec - samples[0]!.idleSec;
  const last = samples.length - 1;
  out.startSec = r2(idleAt(startTo));
  out.middleSec = r2(idleAt(endFrom) - idleAt(startTo));
  out.endSec = r2(idleAt(last) - idleAt(endFrom));
  out.firstKallistoAt = first < 0 ? null : r2(samples[first]!.t);
  out.endFrom = first < 0 ? null : r2(samples[endFrom]!.t);
  return out;
}

/** Rounded to hundredths, as B5 reports every figure. */
export function r2(x: number): number {
  return Math.round(x * 100) / 100;
}

/** The work both sides do: the tools that turn the same reads into the same estimates. */
const SHARED_WORK = ['tool: kallisto', 'tool: fasterq-dump'];
/** The row of CPU the poller could not place (bench/b5.ts writes it): on fetchquant's side mostly kallisto's last moments (issue 15, session 26). */
export const UNPLACED = 'tools: not seen by the poller (short-lived)';

/**
 * A side's own CPU-seconds: its total (without the mirror) less kallisto, fasterq-dump and what the poller could
 * not place. For fetchquant: its process, igzip, vdb-validate and the Temporal server; for the baseline: curl,
 * bash, xargs, rm. The figure to cut (B5 at 12 and 36 runs: ~9.5 CPU-s per GB of FASTQ against ~0.9).
 */
export function ownCpuSec(cpu: Record<string, number>, totalSec: number): number {
  const shared = Object.entries(cpu)
    .filter(([k]) => SHARED_WORK.includes(k) || k === UNPLACED)
    .reduce((sum, [, v]) => sum + v, 0);
  return r2(totalSec - shared);
}

/**
 * A `kallisto quant` by its /proc comm and cmdline (NUL-separated argv): fetchquant also runs `kallisto version`
 * (its tool check at start-up, its provenance beside each quant), which must not count as quantifying.
 */
export function isKallistoQuant(comm: string, cmdline: string): boolean {
  return comm.trimEnd() === 'kallisto' && cmdline.split('\0')[1] === 'quant';
}

/** `kallisto quant` processes on the machine (B5's sides run one at a time, so these are the running side's). */
export function countKallisto(): number {
  let n = 0;
  let pids: string[];
  try {
    pids = readdirSync('/proc');
  } catch {
    return 0;
  }
  for (const p of pids) {
    if (p.charCodeAt(0) < 48 || p.charCodeAt(0) > 57) continue;
    try {
      const comm = readFileSync(`/proc/${p}/comm`, 'utf8');
      if (comm.startsWith('kallisto') && isKallistoQuant(comm, readFileSync(`/proc/${p}/cmdline`, 'utf8'))) n++;
    } catch {
      /* gone */
    }
  }
  return n;
}

/** Samples idle core time (`idleOf`) and running kallisto every `everyMs` until stopped; `first` is the reading taken at once. */
export function sampleIdle(idleOf: () => number | null, everyMs = 100): { first: IdleSample | undefined; stop(): IdleSample[] } {
  const t0 = Date.now();
  const samples: IdleSample[] = [];
  const tick = () => {
    const idle = idleOf();
    if (idle !== null) samples.push({ t: (Date.now() - t0) / 1000, idleSec: idle, kallisto: countKallisto() });
  };
  tick();
  const timer = setInterval(tick, everyMs);
  return {
    first: samples[0],
    stop() {
      clearInterval(timer);
      tick();
      return samples;
    },
  };
}
