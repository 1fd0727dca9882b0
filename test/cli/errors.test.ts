/**
 * Exit codes and messages of the real CLI in child processes: bad input is 2 and names the file, field and
 * value (or the flag and value); a missing tool or an unreachable server is 3 and says what to do.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { CLI } from '../helpers/e2e.js';

const CORPUS = join(process.cwd(), 'test', 'corpus');

function cli(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  // No TEMPORAL_ADDRESS from the caller's shell: each case sets exactly what it means.
  return execa(process.execPath, [CLI, ...args], { cwd: opts.cwd, env: { TEMPORAL_ADDRESS: '', TEMPORAL_NAMESPACE: '', ...opts.env }, reject: false, timeout: 60_000 });
}

describe('fetchquant CLI errors', () => {
  const root = mkdtempSync(join(tmpdir(), 'fq-cli-errors-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('a bad config dir: exit 2, every problem named by file, field and value, nothing started', async () => {
    const dir = join(root, 'bad-config');
    cpSync(join(CORPUS, 'bad-numbers'), dir, { recursive: true });
    rmSync(join(dir, 'expected.txt'));
    // a second config with a wrong type in a field fetchquant reads
    writeFileSync(join(dir, 'amalgkit_camponotus_floridanus.yaml'), 'species_list: [Camponotus_floridanus]\nfetchquant:\n  runs: SRR000001\n');
    const out = join(root, 'bad-config-out');
    const r = await cli(['run', '--config-dir', dir, '--output-dir', out], { cwd: dir });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/invalid input, nothing was started/);
    expect(r.stderr).toMatch(/runs\.tsv.*row 2 column total_spots.*"12abc"/);
    expect(r.stderr).toMatch(/runs\.tsv.*row 4 column lib_layout.*"both".*single or paired/);
    expect(r.stderr).toMatch(/amalgkit_camponotus_floridanus\.yaml.*fetchquant\.runs.*"SRR000001"/);
    // nothing was started: no embedded server state, no snapshots
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
  });

  it('a bad flag value: exit 2 naming the flag and the value', async () => {
    const r = await cli(['run', '--total-threads', '0', '--config-dir', join(CORPUS, 'no-runs'), '--output-dir', join(root, 'flag-out')]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--total-threads = "0": must be at least 1/);
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/); // a message, not a stack trace
  });

  it('a non-numeric flag value and an unknown flag are usage errors (exit 2)', async () => {
    const a = await cli(['run', '--max-retries', 'lots', '--output-dir', join(root, 'flag-out2')]);
    expect(a.exitCode).toBe(2);
    expect(a.stderr).toMatch(/--max-retries = "lots"/);
    const b = await cli(['status', '--no-such-flag']);
    expect(b.exitCode).toBe(2);
    expect(b.stderr).toMatch(/--no-such-flag/);
  });

  it('an unknown command: exit 2 with the command list', async () => {
    const r = await cli(['frobnicate']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/unknown command "frobnicate"/);
    expect(r.stderr).toMatch(/report\s+summary TSV/);
  });

  it('kallisto missing from PATH: exit 3 naming the package to install', async () => {
    const bin = join(root, 'bin');
    mkdirSync(bin);
    // Every other tool is there, so only kallisto may be reported.
    for (const tool of ['fasterq-dump', 'vdb-validate', 'gzip']) {
      const found = ['/usr/bin', '/usr/local/bin', '/bin'].map((d) => join(d, tool)).find(existsSync);
      if (!found) throw new Error(`test setup: ${tool} not installed`);
      symlinkSync(found, join(bin, tool));
    }
    const r = await cli(['run', '--config-dir', join(CORPUS, 'no-runs'), '--output-dir', join(root, 'tool-out')], { env: { PATH: bin } });
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/missing tools: kallisto \(Debian package kallisto\)/);
    expect(r.stderr).toMatch(/apt-get install -y kallisto\b/);
    expect(r.stderr).not.toMatch(/fasterq-dump|vdb-validate/);
  });

  it('a Temporal server that is not there: exit 3 naming the address and `fetchquant server`', async () => {
    for (const cmd of [['status'], ['report', '--batch-id', 'b1']]) {
      const r = await cli(cmd, { env: { TEMPORAL_ADDRESS: '127.0.0.1:1' } });
      expect(r.exitCode).toBe(3);
      expect(r.stderr).toMatch(/cannot reach the Temporal server at 127\.0\.0\.1:1/);
      expect(r.stderr).toMatch(/`fetchquant server`/);
    }
  });
});
