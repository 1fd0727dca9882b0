/**
 * Preloaded into the fetchquant CLI by B5 (`node -r bench/b5/probe.cjs <checkout>/dist/src/cli.js run …`),
 * from outside the product so it measures any checkout the same way. CommonJS and preloaded with -r so it
 * runs before Node loads any ES module, which lets it tell Node's threads apart (Node 20 leaves them all
 * named "node"): those alive now are the main thread and the V8 platform's (concurrent GC, JIT); the ones
 * the first thread-pool request starts are libuv's pool (fs, zlib, crypto); "node" threads born later are
 * worker_threads (the Temporal SDK runs workflow code in them).
 * At exit it writes, to $FQ_B5_PROBE_OUT: the process's own CPU (all threads, getrusage), each live
 * thread's CPU with its class, its reaped children's CPU (/proc/self/stat cutime + cstime: every tool it
 * ran, exactly), the main thread's garbage-collection pauses and its event-loop utilisation.
 */
'use strict';
const { readdirSync, readFileSync, writeFileSync, stat } = require('node:fs');
const { PerformanceObserver, performance } = require('node:perf_hooks');
const { isMainThread } = require('node:worker_threads');

const out = process.env.FQ_B5_PROBE_OUT;
const TICK = 100; // USER_HZ
function statOf(path) {
  try {
    const s = readFileSync(path, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { comm: s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')), f };
  } catch {
    return null;
  }
}
const tids = () => readdirSync('/proc/self/task').map(Number);

if (isMainThread && out) {
  const platform = new Set(tids().filter((t) => t !== process.pid));
  const pool = new Set();
  // The first thread-pool request starts libuv's pool (UV_THREADPOOL_SIZE threads).
  stat('/', () => {
    for (const t of tids()) if (t !== process.pid && !platform.has(t)) pool.add(t);
  });
  const gc = { count: 0, ms: 0 };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gc.count++;
      gc.ms += e.duration;
    }
  }).observe({ entryTypes: ['gc'] });
  const started = Date.now();
  process.on('exit', () => {
    const ru = process.resourceUsage();
    const self = statOf('/proc/self/stat');
    const threads = [];
    for (const t of tids()) {
      const s = statOf(`/proc/self/task/${t}/stat`);
      if (s) threads.push({ tid: t, comm: s.comm, cpuSec: (Number(s.f[11]) + Number(s.f[12])) / TICK });
    }
    writeFileSync(
      out,
      JSON.stringify({
        pid: process.pid,
        wallSec: (Date.now() - started) / 1000,
        selfUserSec: ru.userCPUTime / 1e6,
        selfSystemSec: ru.systemCPUTime / 1e6,
        childrenUserSec: self ? Number(self.f[13]) / TICK : null,
        childrenSystemSec: self ? Number(self.f[14]) / TICK : null,
        maxRssMB: ru.maxRSS / 1024,
        gc,
        eventLoopUtilization: performance.eventLoopUtilization().utilization,
        platformTids: [...platform],
        poolTids: [...pool],
        threads,
      }) + '\n',
    );
  });
}
