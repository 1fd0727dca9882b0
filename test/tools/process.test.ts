// runTool against real processes: exit codes, missing tools, and killing whole process trees.
import { afterAll, describe, expect, it } from '@jest/globals';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { reapOrphanTools, runTool, toolVersion, ToolFailedError, ToolMissingError, toToolFailure } from '../../src/tools/process.js';
import { pidAlive } from '../../src/state-dir.js';
import { cleanTempDirs, errorOf, eventually, pidGone, tempDir } from './util.js';

afterAll(cleanTempDirs);

/** A shell that starts a grandchild `sleep 100`, records its pid, and waits on it. */
function treeScript(pidFile: string, ignoreTerm = false): string[] {
  return ['-c', `${ignoreTerm ? 'trap "" TERM; ' : ''}sleep 100 & echo $! > "$1"; wait`, 'sh', pidFile];
}

async function grandchildPid(pidFile: string): Promise<number> {
  expect(await eventually(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim().length > 0)).toBe(true);
  return Number(readFileSync(pidFile, 'utf8').trim());
}

describe('runTool', () => {
  it('returns exit code, stdout and the stderr tail of a successful run', async () => {
    const beats: number[] = [];
    const r = await runTool('sh', ['-c', 'echo out; echo err >&2'], { timeoutSec: 30, onHeartbeat: () => beats.push(1) });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toBe('err\n');
    expect(r.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('keeps only the tail of a chatty stream', async () => {
    const r = await runTool('sh', ['-c', 'i=0; while [ $i -lt 3000 ]; do echo line$i >&2; i=$((i+1)); done'], { timeoutSec: 30, tailChars: 100 });
    expect(r.stderr.length).toBeLessThanOrEqual(100);
    expect(r.stderr.endsWith('line2999\n')).toBe(true);
  });

  it('non-zero exit -> ToolFailed with the command line and stderr; accepted codes are results', async () => {
    const err = await errorOf(runTool('sh', ['-c', 'echo broken input >&2; exit 3', 'x y'], { timeoutSec: 30 }));
    expect(err).toBeInstanceOf(ToolFailedError);
    expect(err.message).toBe(`sh -c 'echo broken input >&2; exit 3' 'x y': exited with code 3; stderr: broken input`);
    expect((err as ToolFailedError).exitCode).toBe(3);
    const ok = await runTool('sh', ['-c', 'exit 3'], { timeoutSec: 30, okExitCodes: [0, 3] });
    expect(ok.exitCode).toBe(3);
    const f = toToolFailure(err, 'run SRR1000001: converting') as ApplicationFailure;
    expect(f).toBeInstanceOf(ApplicationFailure);
    expect([f.type, f.nonRetryable]).toEqual(['ToolFailed', false]);
    expect(f.message).toMatch(/^run SRR1000001: converting: sh -c/);
  });

  it('a missing tool -> ToolMissing naming the Debian package, not retried', async () => {
    const env = { PATH: tempDir() };
    const k = await errorOf(runTool('kallisto', ['version'], { timeoutSec: 10, env }));
    expect(k).toBeInstanceOf(ToolMissingError);
    expect(k.message).toBe('kallisto is not installed or not on PATH; install it with: apt-get install -y kallisto');
    const f = await errorOf(runTool('fasterq-dump', ['--version'], { timeoutSec: 10, env }));
    expect(f.message).toMatch(/install it with: apt-get install -y sra-toolkit$/);
    const v = await errorOf(runTool('vdb-validate', ['x'], { timeoutSec: 10, env }));
    expect(v.message).toMatch(/apt-get install -y sra-toolkit$/);
    const af = toToolFailure(k, 'index') as ApplicationFailure;
    expect([af.type, af.nonRetryable]).toEqual(['ToolMissing', true]);
  });

  it('a timeout kills the whole process tree, grandchildren included', async () => {
    const pidFile = join(tempDir(), 'pid');
    const run = runTool('sh', treeScript(pidFile), { timeoutSec: 1 });
    const err = await errorOf(run);
    const pid = await grandchildPid(pidFile);
    expect(err).toBeInstanceOf(ToolFailedError);
    expect((err as ToolFailedError).timedOut).toBe(true);
    expect(err.message).toMatch(/^sh -c .*: timed out after 1 s; its process group was killed/);
    expect(await eventually(() => pidGone(pid))).toBe(true);
  });

  it('a tree that ignores SIGTERM is SIGKILLed after the grace', async () => {
    const pidFile = join(tempDir(), 'pid');
    const err = await errorOf(runTool('sh', treeScript(pidFile, true), { timeoutSec: 1, killGraceMs: 200 }));
    const pid = await grandchildPid(pidFile);
    expect((err as ToolFailedError).timedOut).toBe(true);
    expect(await eventually(() => pidGone(pid))).toBe(true);
  });

  it('cancellation kills the tree and rejects with the signal reason', async () => {
    const pidFile = join(tempDir(), 'pid');
    const ac = new AbortController();
    const run = runTool('sh', treeScript(pidFile), { timeoutSec: 600, signal: ac.signal });
    const pid = await grandchildPid(pidFile);
    expect(pidGone(pid)).toBe(false);
    const reason = new Error('activity cancelled');
    ac.abort(reason);
    expect(await errorOf(run)).toBe(reason);
    expect(await eventually(() => pidGone(pid))).toBe(true);
  });

  it('heartbeats while the tool runs', async () => {
    let beats = 0;
    await runTool('sleep', ['1.2'], { timeoutSec: 30, onHeartbeat: () => beats++, heartbeatMs: 100 });
    expect(beats).toBeGreaterThan(0);
  });

  it('toolVersion reads the real tools (cached per process)', async () => {
    expect(await toolVersion('kallisto')).toBe('0.48.0');
    expect(await toolVersion('fasterq-dump')).toMatch(/^3\.\d+\.\d+$/);
    expect(toolVersion('kallisto')).toBe(toolVersion('kallisto'));
  });
});

describe('tools left running by a worker killed with -9', () => {
  const processModule = fileURLToPath(new URL('../../src/tools/process.js', import.meta.url));

  it('are killed by the next worker on the machine; live workers\' tools and reused pids are left alone', async () => {
    const state = tempDir();
    const env = { ...process.env, FETCHQUANT_STATE_DIR: state };
    const groups = join(state, 'tool-groups');
    // A stand-in worker: runs a tool through runTool, then is killed -9 mid-run (no exit hook runs).
    const worker = spawn(process.execPath, ['--input-type=module', '-e', `const { runTool } = await import(${JSON.stringify(processModule)}); await runTool('sleep', ['300'], { timeoutSec: 600 });`], { env, stdio: 'ignore' });
    expect(await eventually(() => existsSync(groups) && readdirSync(groups).length === 1)).toBe(true);
    const [name] = readdirSync(groups);
    const record = JSON.parse(readFileSync(join(groups, name!), 'utf8')) as { workerPid: number; pgid: number; cmd: string };
    expect(record).toEqual({ workerPid: worker.pid, pgid: expect.any(Number), cmd: 'sleep' });
    worker.kill('SIGKILL');
    expect(await eventually(() => !pidAlive(worker.pid!))).toBe(true);
    expect(pidAlive(record.pgid)).toBe(true); // the orphan runs on

    // Records that must not lead to a kill: this (live) process's own, and a dead worker's whose pgid now
    // belongs to another program (pid reuse: here, the test process itself).
    writeFileSync(join(groups, `${process.pid}-${record.pgid}.json`), JSON.stringify({ workerPid: process.pid, pgid: record.pgid, cmd: 'sleep' }));
    writeFileSync(join(groups, `${worker.pid}-${process.pid}.json`), JSON.stringify({ workerPid: worker.pid, pgid: process.pid, cmd: 'kallisto' }));

    const reaped = reapOrphanTools(env);
    expect(reaped).toEqual([{ pgid: record.pgid, cmd: 'sleep', workerPid: worker.pid }]);
    expect(await eventually(() => pidGone(record.pgid))).toBe(true);
    expect(pidAlive(process.pid)).toBe(true);
    // The dead worker's records are gone; the live one's stays.
    expect(readdirSync(groups).sort()).toEqual([`${process.pid}-${record.pgid}.json`]);
  });

  it('a tool that ends normally leaves no record behind', async () => {
    const state = tempDir();
    const saved = process.env.FETCHQUANT_STATE_DIR;
    process.env.FETCHQUANT_STATE_DIR = state;
    try {
      await runTool('sh', ['-c', 'exit 0'], { timeoutSec: 30 });
      await runTool('sh', ['-c', 'exit 3'], { timeoutSec: 30 }).catch(() => undefined);
      expect(readdirSync(join(state, 'tool-groups'))).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env.FETCHQUANT_STATE_DIR;
      else process.env.FETCHQUANT_STATE_DIR = saved;
    }
  });
});
