/**
 * The bad-input corpus at the edges users touch: every case of test/corpus/cli.txt through the real CLI in a
 * child process (exit 2, the flag or field and the value named, nothing started, nothing written), and bad
 * batch inputs started on a real Temporal server the way the Temporal CLI does (the batch fails at once with
 * the same messages, starts no species and writes nothing).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { execa } from 'execa';
import { causeChain } from '../../src/failures.js';
import { batchWorkflowId } from '../../src/ids.js';
import { findTemporalCli } from '../../src/server/temporal-cli.js';
import { startWorker, type RunningWorker } from '../../src/worker.js';
import { testTemporal, type TestTemporal } from '../helpers/temporal.js';
import { CLI } from '../helpers/e2e.js';

const CORPUS = join(process.cwd(), 'test', 'corpus');

interface Case {
  line: number;
  args: string[];
  env: Record<string, string>;
  expect: string[];
}

/** `"…"` tokens are JSON strings (spaces, empty values, \u escapes); anything else splits on whitespace. */
function tokens(text: string): string[] {
  return (text.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? []).map((t) => (t.startsWith('"') ? (JSON.parse(t) as string) : t));
}

function readCases(vars: Record<string, string>): Case[] {
  const fill = (s: string) => Object.entries(vars).reduce((acc, [k, v]) => acc.replaceAll(`{${k}}`, v), s);
  const cases: Case[] = [];
  let env: Record<string, string> = {};
  readFileSync(join(CORPUS, 'cli.txt'), 'utf8')
    .split('\n')
    .forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      if (line.startsWith('% ')) {
        const [k, ...v] = line.slice(2).split('=');
        env[k as string] = v.join('=');
      } else if (line.startsWith('$ ')) {
        cases.push({ line: i + 1, args: tokens(fill(line.slice(2))), env, expect: [] });
        env = {};
      } else if (line.startsWith('! ')) {
        const c = cases.at(-1);
        if (!c) throw new Error(`cli.txt:${i + 1}: an expectation before any case`);
        c.expect.push(fill(line.slice(2)));
      } else throw new Error(`cli.txt:${i + 1}: not a case ($), an expectation (!), an env line (%) or a comment: ${line}`);
    });
  return cases;
}

describe('bad command lines (test/corpus/cli.txt) through the real CLI', () => {
  const root = mkdtempSync(join(tmpdir(), 'fq-bad-cli-'));
  const file = join(root, 'a-file');
  writeFileSync(file, 'a file where a directory is expected\n');
  const cases = readCases({ corpus: CORPUS, tmp: join(root, 'cwd'), file });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('has cases for every batch flag, the other commands and accessions', () => {
    expect(cases.length).toBeGreaterThanOrEqual(100);
    for (const c of cases) if (c.expect.length === 0) throw new Error(`cli.txt:${c.line}: a case without expectations`);
    const text = readFileSync(join(CORPUS, 'cli.txt'), 'utf8');
    // the options declared before the schema became one declaration each have a hand-written case; every option,
    // new ones included, gets generated bad values in test/config/options.test.ts
    for (const f of ['--total-threads', '--sources', '--ena-file-scheme', '--batch-id', '--max-history-events']) {
      if (!new RegExp(`^\\$ run .*${f}[ =]`, 'm').test(text)) throw new Error(`no "$ run … ${f}" case in cli.txt`);
    }
  });

  it('the help an unknown-option message points to lists every option the command takes', async () => {
    const { COMMAND_OPTIONS } = await import('../../src/cli/args.js');
    for (const [cmd, opts] of Object.entries(COMMAND_OPTIONS)) {
      const r = await execa(process.execPath, [CLI, cmd, '--help'], { reject: false });
      expect(r.exitCode).toBe(0);
      for (const flag of Object.keys(opts)) if (!r.stdout.includes(`--${flag} `)) throw new Error(`fetchquant ${cmd} --help does not list --${flag}:\n${r.stdout}`);
    }
  }, 120_000);

  // Two at a time: each is a node process; the machine is shared.
  const batches: Case[][] = [];
  for (let i = 0; i < cases.length; i += 2) batches.push(cases.slice(i, i + 2));
  for (const batch of batches) {
    const name = batch.map((c) => `cli.txt:${c.line} fetchquant ${c.args.map((a) => (/^[\w./=,:-]+$/.test(a) ? a : JSON.stringify(a))).join(' ')}`).join('  |  ');
    it(name, async () => {
      await Promise.all(
        batch.map(async (c) => {
          const cwd = join(root, 'cwd');
          const home = join(root, `home-${c.line}`);
          mkdirSync(cwd, { recursive: true });
          mkdirSync(home, { recursive: true });
          // An unreachable server: a case that slipped through validation fails with exit 3, not a hang.
          const r = await execa(process.execPath, [CLI, ...c.args], {
            cwd,
            env: { HOME: home, TEMPORAL_ADDRESS: '127.0.0.1:1', TEMPORAL_NAMESPACE: 'default', FETCHQUANT_HOST_ID: 'bad-input-host', ...c.env },
            reject: false,
            timeout: 90_000,
          });
          const where = `cli.txt:${c.line}: fetchquant ${c.args.join(' ')}\nexit ${r.exitCode}\nstderr:\n${r.stderr}\nstdout:\n${r.stdout}`;
          if (r.exitCode !== 2) throw new Error(`expected exit 2\n${where}`);
          const lines = r.stderr.split('\n');
          const unmatched = [...lines];
          for (const want of c.expect) {
            const i = unmatched.findIndex((l) => l.includes(want));
            if (i < 0) throw new Error(`no stderr line contains ${JSON.stringify(want)}\n${where}`);
            unmatched.splice(i, 1);
          }
          // a list of problems holds exactly the expected ones
          if (lines[0]?.includes('invalid input, nothing was started')) {
            const problems = lines.slice(1).filter((l) => l.trim() !== '');
            if (problems.length !== c.expect.length) throw new Error(`expected ${c.expect.length} problem(s), got ${problems.length}\n${where}`);
          } else if (lines.filter((l) => l.trim() !== '').length !== 1) throw new Error(`expected one usage line\n${where}`);
          expect(r.stdout).toBe('');
          expect(r.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
          // nothing written: not in the working dir (default output dir), not in HOME (host state)
          expect(readdirSync(cwd)).toEqual([]);
          expect(readdirSync(home)).toEqual([]);
        }),
      );
    }, 120_000);
  }
});

describe('bad batch inputs started on a real Temporal server (as with the Temporal CLI)', () => {
  let t: TestTemporal;
  let worker: RunningWorker;
  const root = mkdtempSync(join(tmpdir(), 'fq-bad-wf-'));
  const out = join(root, 'out');
  const configDir = join(root, 'config');

  beforeAll(async () => {
    t = await testTemporal('bad-input');
    mkdirSync(out);
    cpSync(join(CORPUS, 'run-table-accession-injection'), configDir, { recursive: true });
    // the real activities: discovery reads the configs from disk (relative paths against the worker's cwd)
    worker = await startWorker({ connection: t.native, client: t.client, namespace: t.namespace, hostId: 'bad-input', cwd: configDir, janitor: false });
  });
  afterAll(async () => {
    await worker?.shutdown();
    await t?.close();
    rmSync(root, { recursive: true, force: true });
  });

  async function failure(workflowId: string, input: unknown): Promise<string> {
    const h = await t.client.workflow.start('batchWorkflow', { taskQueue: 'fetchquant', workflowId, args: [input] });
    const err = await h.result().then(
      () => null,
      (e: unknown) => e,
    );
    if (!(err instanceof WorkflowFailedError)) throw new Error(`expected the batch to fail, got ${String(err)}`);
    // the workflow's own check fails it directly; discovery fails its activity, which fails the workflow
    const cause = causeChain(err.cause).find((c) => (c as { type?: string }).type !== undefined) as { message?: string; type?: string; nonRetryable?: boolean } | undefined;
    expect(cause?.type).toBe('InvalidInput');
    expect(cause?.nonRetryable).toBe(true);
    return cause?.message ?? '';
  }

  async function nothingStarted(): Promise<void> {
    const { count } = await t.client.workflow.count(`WorkflowType = 'speciesWorkflow' OR WorkflowType = 'sampleWorkflow'`);
    expect(count).toBe(0);
    expect(readdirSync(out)).toEqual([]);
  }

  it('bad option values, unknown fields and wrong types fail the batch at its first task, every problem named', async () => {
    const msg = await failure(batchWorkflowId('bad-options'), {
      configDir,
      outputDir: out,
      totalThreads: 0,
      quantThreads: '4x',
      sources: ['ena', 'ftp'],
      enaFileScheme: 'ftp',
      processTimeoutSec: 3_000_000,
      enaPortalUrl: 'file:///etc/passwd',
      species: [],
      totalTreads: 8,
    });
    const lines = msg.split('\n');
    expect(lines).toEqual([
      'batch input: totalThreads = 0: must be at least 1',
      'batch input: quantThreads = "4x": must be a whole number',
      'batch input: sources = ["ena","ftp"]: must be a non-empty list of distinct "ena", "sra", "aws", "gcp", "ncbi"',
      'batch input: enaFileScheme = "ftp": must be https or http (ftp is not supported; ENA serves the same paths over https)',
      'batch input: processTimeoutSec = 3000000: must be at most 2147483',
      'batch input: enaPortalUrl = "file:///etc/passwd": must be an http(s) URL without query or fragment',
      'batch input: species = []: must be a non-empty list of species names or ids',
      expect.stringMatching(/^batch input: totalTreads = 8: unknown option \(known: configDir, outputDir, totalThreads, /),
    ]);
    await nothingStarted();
  });

  it('an input that is not an object, and a batch id that would escape its directory, are refused', async () => {
    expect(await failure(batchWorkflowId('bad-root'), ['configDir', configDir])).toBe('batch input: (root) = ["configDir","' + configDir + '"]: must be a JSON object');
    expect(await failure(batchWorkflowId('bad-batch-id'), { configDir, outputDir: out, batchId: '../../x' })).toBe(
      'batch input: batchId = "../../x": must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$',
    );
    // no batchId: it derives from the workflow id, which must then be a usable one
    expect(await failure('fetchquant/../../x', { configDir, outputDir: out })).toContain('input: batchId = "../../x": must match');
    await nothingStarted();
  });

  it('configs with injected accessions fail the batch with every row named, before any species starts', async () => {
    const msg = await failure(batchWorkflowId('bad-configs'), { configDir, outputDir: out });
    expect(msg).toContain(`${configDir}/runs.tsv: row 2 column run = "SRR000001;rm -rf /": must be a run accession`);
    expect(msg).toContain(`${configDir}/runs.tsv: row 14 column run = "SRR000011\\u200b"`);
    expect(msg.split('\n').filter((l) => l.includes('column run'))).toHaveLength(13);
    await nothingStarted();
  });

  it('the Temporal CLI: a bad --input fails the started batch at once with the same message', async () => {
    const temporal = findTemporalCli();
    if (!temporal) throw new Error('test setup: the temporal CLI is not installed (npm run setup)');
    const conn = ['--address', t.address, '--namespace', t.namespace];
    const input = JSON.stringify({ configDir, outputDir: out, totalThreads: -1, enaFileScheme: 'ftp' });
    await execa(temporal, ['workflow', 'start', ...conn, '--type', 'batchWorkflow', '--task-queue', 'fetchquant', '--workflow-id', 'fetchquant/tcli-bad', '--input', input]);
    const r = await execa(temporal, ['workflow', 'result', ...conn, '--workflow-id', 'fetchquant/tcli-bad'], { reject: false, timeout: 60_000 });
    const text = `${r.stdout}\n${r.stderr}`;
    expect(text).toMatch(/batch input: totalThreads = -1: must be at least 1/);
    expect(text).toMatch(/batch input: enaFileScheme = "ftp": must be https or http/);
    await nothingStarted();
  });
});
