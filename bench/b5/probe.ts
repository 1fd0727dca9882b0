/**
 * Preloaded into the fetchquant CLI by B5 (`node --import <this> cli.js run …`), from outside the product so
 * it measures any checkout the same way: at exit it writes, to $FQ_B5_PROBE_OUT, the process's own CPU
 * (all threads), its reaped children's CPU (/proc/self/stat cutime + cstime: every tool it ran), the
 * main thread's garbage-collection pauses and its event-loop utilisation.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';

const out = process.env.FQ_B5_PROBE_OUT;
if (isMainThread && out) {
  const gc = { count: 0, ms: 0, byKind: {} as Record<string, { count: number; ms: number }> };
  const kinds: Record<number, string> = { 1: 'scavenge', 2: 'mark-sweep-compact', 4: 'incremental', 8: 'weak-callbacks', 16: 'minor-mark-sweep' };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gc.count++;
      gc.ms += e.duration;
      const k = kinds[(e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0] ?? 'other';
      const slot = (gc.byKind[k] ??= { count: 0, ms: 0 });
      slot.count++;
      slot.ms += e.duration;
    }
  }).observe({ entryTypes: ['gc'] });
  const started = Date.now();
  process.on('exit', () => {
    const ru = process.resourceUsage();
    // /proc/<pid>/stat: fields after the ")" of comm; cutime and cstime are the 16th and 17th fields overall.
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const tick = 100; // USER_HZ on Linux
    const elu = performance.eventLoopUtilization();
    writeFileSync(
      out,
      JSON.stringify({
        pid: process.pid,
        wallSec: (Date.now() - started) / 1000,
        selfUserSec: ru.userCPUTime / 1e6,
        selfSystemSec: ru.systemCPUTime / 1e6,
        childrenUserSec: Number(f[13]) / tick,
        childrenSystemSec: Number(f[14]) / tick,
        maxRssMB: ru.maxRSS / 1024,
        gc,
        eventLoopUtilization: elu.utilization,
      }) + '\n',
    );
  });
}
