/** What the benchmark ran on: figures from different machines are not comparable, so each result says. */
import { execFileSync } from 'node:child_process';
import { cpus, freemem, loadavg, platform, release, totalmem } from 'node:os';
import { statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { findTemporalCli } from '../src/server/temporal-cli.js';

function firstLine(cmd: string, args: string[]): string {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
    return out.split('\n').find((l) => l.trim())?.trim() ?? '';
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return (e.stdout || e.stderr || 'not found').split('\n').find((l) => l.trim())?.trim() ?? 'not found';
  }
}

export interface Machine {
  /** anything unusual about the run (a profiler attached, say) */
  note?: string;
  date: string;
  commit: string;
  os: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  freeMemoryGiB: number;
  loadAverage1m: number;
  tmpFreeGiB: number;
  node: string;
  temporal: string;
  kallisto: string;
  fasterqDump: string;
}

export function describeMachine(): Machine {
  const fs = statfsSync(tmpdir());
  const temporal = findTemporalCli();
  return {
    date: new Date().toISOString(),
    commit: firstLine('git', ['rev-parse', '--short', 'HEAD']),
    os: `${platform()} ${release()}`,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    freeMemoryGiB: Math.round((freemem() / 2 ** 30) * 10) / 10,
    loadAverage1m: Math.round(loadavg()[0]! * 100) / 100,
    tmpFreeGiB: Math.round(((fs.bavail * fs.bsize) / 2 ** 30) * 10) / 10,
    node: process.version,
    temporal: temporal ? firstLine(temporal, ['--version']) : 'not found',
    kallisto: firstLine('kallisto', ['version']),
    fasterqDump: firstLine('fasterq-dump', ['--version']),
  };
}
