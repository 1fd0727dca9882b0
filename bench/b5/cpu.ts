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
