/**
 * Download-path CPU (issue 15 item 3): one large .fastq.gz from the loopback mirror, uncapped, fetched by
 * curl and by the download activity, CPU-seconds each (user + system of the whole process: main thread,
 * libuv's pool, GC, and the processes it waited for: igzip, src/tools/inflate.ts). The activity runs in a
 * child process so the mirror's CPU is not counted; its figure is process.cpuUsage() around the activity call
 * only (module loading excluded), plus its children's CPU over the same span (/proc/self/stat). The current
 * tree is measured three ways: the .gz kept as fetched (inflated by zlib for the checks only), and kept plain
 * (the inflated copy written too, as the sample asks when the disk has room) inflated by zlib
 * (FETCHQUANT_INFLATE=zlib) and by igzip.
 *
 *   node dist/bench/download-cpu.js [--mb 150] [--reps 3]
 *
 * Baselines: `curl -o FILE` (transfer and write only) and `curl | tee FILE | md5sum` + `gzip -t FILE`
 * (what the activity also does: md5 and the gzip test with a record count).
 */
import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { tmpdir, loadavg, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateDataset } from '../src/mirror/fixtures.js';
import { startMirror } from '../src/mirror/server.js';
import { createSourceActivities } from '../src/activities/source.js';
import { createDownloadActivities } from '../src/activities/download.js';
import { createReadActivities } from '../src/activities/reads.js';
import { DEFAULTS } from '../src/config/schema.js';
import { HttpClient } from '../src/tools/http.js';
import { DiskLedger } from '../src/activities/disk.js';
import { readStat } from './b5/cpu.js';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { DownloadResult, SampleOptions, SourcePlan } from '../src/types.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};

/** A gzipped FASTQ of about `mb` MB: 100 bp reads of a seeded random genome, compressed with gzip -1. */
async function bigFastqGz(path: string, mb: number): Promise<void> {
  if (existsSync(path)) return;
  const tmp = `${path}.plain`;
  const out = createWriteStream(tmp);
  let x = 12345;
  const rnd = () => ((x = (x * 1103515245 + 12345) & 0x7fffffff), x);
  const bases = 'ACGT';
  const qual = 'IIIIHHHGGFFEEDD@@?>=<;:98';
  // gzip -1 of such reads is ~1/6 of the text
  const target = mb * 1e6 * 6;
  let written = 0;
  for (let r = 0; written < target; r++) {
    let seq = '';
    let q = '';
    for (let i = 0; i < 100; i++) {
      const v = rnd();
      seq += bases[v & 3];
      q += qual[(v >> 4) % qual.length];
    }
    const rec = `@r${r} len=100\n${seq}\n+\n${q}\n`;
    written += rec.length;
    if (!out.write(rec)) await new Promise<void>((res) => out.once('drain', () => res()));
  }
  await new Promise<void>((res) => out.end(res));
  execFileSync('sh', ['-c', `gzip -1 -c '${tmp}' > '${path}.tmp' && mv '${path}.tmp' '${path}'`]);
  await rm(tmp);
}

async function md5Of(path: string): Promise<string> {
  const h = createHash('md5');
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
  return h.digest('hex');
}

/** user+sys CPU seconds and wall seconds of a shell command, by /usr/bin/time. */
function timed(cmd: string): Promise<{ cpu: number; wall: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn('/usr/bin/time', ['-f', 'TIME %U %S %e', 'sh', '-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += String(d)));
    p.on('exit', (code) => {
      const m = /TIME ([\d.]+) ([\d.]+) ([\d.]+)/.exec(err);
      if (code !== 0 || !m) return reject(new Error(`${cmd}: exit ${code}: ${err}`));
      resolve({ cpu: Number(m[1]) + Number(m[2]), wall: Number(m[3]) });
    });
  });
}

interface ChildResult {
  /** the download activity: CPU (user + sys, the process's own and its children's), wall */
  cpu: number;
  user: number;
  sys: number;
  /** of cpu: the processes it started (igzip) */
  children: number;
  wall: number;
  /** then verifyReads on its files (the gate before quant) */
  verifyCpu: number;
}

/** CPU-s of this process's children that have ended and been waited for (igzip). */
const childrenCpu = (): number => readStat('/proc/self/stat')?.childrenCpuSec ?? 0;

/**
 * Child mode: run the download activity once, then verifyReads on what it wrote; print the CPU of each.
 * `impl`: a compiled tree whose src/activities/{download,reads}.js to use ('' = this one), so the code of
 * an older commit can be measured side by side on the same machine and load.
 */
async function child(planPath: string, runDir: string, impl: string): Promise<void> {
  const { readFile } = await import('node:fs/promises');
  const plan = JSON.parse(await readFile(planPath, 'utf8')) as SourcePlan;
  const dl = impl ? ((await import(join(impl, 'src/activities/download.js'))) as { createDownloadActivities: typeof createDownloadActivities }).createDownloadActivities : createDownloadActivities;
  const rd = impl ? ((await import(join(impl, 'src/activities/reads.js'))) as { createReadActivities: typeof createReadActivities }).createReadActivities : createReadActivities;
  // Kept plain needs the run admitted by this worker (its reservation in the ledger), as reserveDisk leaves it.
  const ledger = new DiskLedger();
  ledger.reserve(plan.run, runDir, plan.files[0]!.bytes ?? 0, 0, 1e15);
  const { download } = dl({ http: new HttpClient({ requestsPerSec: 1000 }), heartbeatEveryMs: 1000, ledger });
  const env = new MockActivityEnvironment();
  const c0 = process.cpuUsage();
  const k0 = childrenCpu();
  const t0 = performance.now();
  // BENCH_MIN_FREE_GB=none: no disk floor, so no statfs while writing (to measure what the floor check costs)
  const floor = process.env.BENCH_MIN_FREE_GB === 'none' ? {} : { minFreeGb: Number(process.env.BENCH_MIN_FREE_GB ?? 1) };
  // BENCH_PLAIN=1: kept plain as the sample asks when the disk has room (the inflated copy is written; igzip's case)
  const plainReads = process.env.BENCH_PLAIN === '1' ? { plainReads: true } : {};
  const r: DownloadResult = await env.run(download, { plan, runDir, stallTimeoutSec: 60, ...floor, ...plainReads });
  const c = process.cpuUsage(c0);
  const kids = childrenCpu() - k0;
  const wall = (performance.now() - t0) / 1000;
  let verifyCpu = 0;
  if (plan.files[0]!.name.endsWith('.fastq.gz')) {
    const v0 = process.cpuUsage();
    await env.run(rd().verifyReads, { run: plan.run, files: r.files.map((f) => f.path), layout: plan.layout, expectedReads: plan.expectedReads });
    const v = process.cpuUsage(v0);
    verifyCpu = (v.user + v.system) / 1e6;
  }
  process.stdout.write(`${JSON.stringify({ cpu: (c.user + c.system) / 1e6 + kids, user: c.user / 1e6, sys: c.system / 1e6, children: kids, wall, verifyCpu })}\n`);
}

function runChild(planPath: string, runDir: string, impl = '', env: Record<string, string> = {}): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', planPath, runDir, impl], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
    let out = '';
    p.stdout.on('data', (d) => (out += String(d)));
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!)) : reject(new Error(`child exit ${code}`))));
  });
}

async function main(): Promise<void> {
  const mb = arg('mb', 150);
  const reps = arg('reps', 3);
  const cache = join(tmpdir(), 'fq-dlbench-cache');
  await mkdir(cache, { recursive: true });
  const big = join(cache, `big-${mb}.fastq.gz`);
  process.stderr.write(`generating ${big} ...\n`);
  await bigFastqGz(big, mb);
  const root = await mkdtemp(join(tmpdir(), 'fq-dlbench-'));
  try {
    const dataset = await generateDataset({ root, seed: 3, species: [{ name: 'Singulus bench', runs: 1, pairedFraction: 0, readsPerRun: 100 }] });
    const run = dataset.species[0]!.runs[0]!;
    const f = run.fastq[0]!;
    await copyFile(big, f.path);
    f.bytes = (await stat(f.path)).size;
    f.md5 = await md5Of(f.path);
    const plainLines = Number(execFileSync('sh', ['-c', `gzip -dc '${f.path}' | wc -l`]).toString().trim());
    run.reads = plainLines / 4;
    const mirror = await startMirror({ dataset });
    try {
      const options: SampleOptions = { ...DEFAULTS, sources: ['ena'], enaPortalUrl: mirror.enaPortalUrl, enaFileScheme: mirror.enaFileScheme, sraLocateUrl: mirror.sraLocateUrl };
      const { resolveSource } = createSourceActivities({ http: new HttpClient({ requestsPerSec: 1000 }) });
      const plan: SourcePlan = await new MockActivityEnvironment().run(resolveSource, { run: { run: run.run, layout: 'single' as const, nominalLength: 200, spots: run.reads }, options });
      const planPath = join(root, 'plan.json');
      await writeFile(planPath, JSON.stringify(plan));
      const url = plan.files[0]!.url;
      if (process.argv.includes('--serve')) {
        // keep the mirror up for experiments by hand: print the URL and the plan, wait for SIGINT
        process.stdout.write(`${url}\n${planPath}\n`);
        await new Promise<void>((r) => process.once('SIGINT', () => r()));
        return;
      }
      const rows: string[] = [];
      const machine = `${cpus().length} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`;
      process.stderr.write(`${machine}\nfile ${f.bytes} bytes, ${run.reads} reads\n`);
      // the same bytes under a name that is not FASTQ: the transfer with md5 only, no gzip test or count
      const rawPlanPath = join(root, 'plan-raw.json');
      await writeFile(rawPlanPath, JSON.stringify({ ...plan, files: [{ ...plan.files[0]!, name: `${run.run}.bin` }] }));
      const before = process.argv.includes('--before') ? process.argv[process.argv.indexOf('--before') + 1]! : '';
      const md5Cpu = (() => {
        const buf = readFileSync(f.path);
        const c0 = process.cpuUsage();
        createHash('md5').update(buf).digest('hex');
        const c = process.cpuUsage(c0);
        return (c.user + c.system) / 1e6;
      })();
      process.stdout.write(`md5 of the file in memory: ${md5Cpu.toFixed(2)} CPU-s\n`);
      const fmt = (x: number) => x.toFixed(2);
      for (let i = 0; i < reps; i++) {
        const out = join(root, `curl-${i}.fastq.gz`);
        const c = await timed(`curl -s -o '${out}' '${url}'`);
        await rm(out, { force: true });
        const cm = await timed(`curl -s '${url}' | tee '${out}' | md5sum >/dev/null && gzip -t '${out}'`);
        await rm(out, { force: true });
        const cells = [`rep ${i + 1}`, `curl ${fmt(c.cpu)} (${fmt(c.wall)} s)`, `curl|tee|md5sum + gzip -t ${fmt(cm.cpu)}`];
        const sides: [string, string, Record<string, string>][] = [
          ['before', before, {}],
          ['kept .gz (zlib)', '', {}],
          ['kept plain, zlib', '', { FETCHQUANT_INFLATE: 'zlib', BENCH_PLAIN: '1' }],
          ['kept plain, igzip', '', { BENCH_PLAIN: '1' }],
        ];
        for (const [label, impl, env] of sides) {
          if (label === 'before' && !before) continue;
          const dir = join(root, `dl-${label.replace(/\W+/g, '-')}-${i}`);
          const raw = await runChild(rawPlanPath, join(dir, 'raw', 'getfastq', run.run), impl, env);
          const full = await runChild(planPath, join(dir, 'full', 'getfastq', run.run), impl, env);
          await rm(dir, { recursive: true, force: true });
          cells.push(
            `${label}: transfer+md5 ${fmt(raw.cpu)} (x${fmt(raw.cpu / c.cpu)} curl; less md5 x${fmt((raw.cpu - md5Cpu) / c.cpu)}) | .fastq.gz download ${fmt(full.cpu)} (children ${fmt(full.children)}) + verifyReads ${fmt(full.verifyCpu)} = ${fmt(full.cpu + full.verifyCpu)} (x${fmt((full.cpu + full.verifyCpu) / cm.cpu)} curl+checks, ${fmt(full.wall)} s)`,
          );
        }
        const line = `${cells.join(' | ')} | load ${loadavg()[0]!.toFixed(2)}`;
        rows.push(line);
        process.stdout.write(`${line}\n`);
      }
    } finally {
      await mirror.stop();
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') await child(process.argv[3]!, process.argv[4]!, process.argv[5] ?? '');
else await main();
