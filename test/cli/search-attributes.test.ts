/**
 * run, start, demo and worker on a configured server check the namespace's search attributes first (issue
 * 14: on a namespace without them a batch hung with no message, every workflow task failing with
 * BAD_SEARCH_ATTRIBUTES). Missing ones are registered where the server allows it; where it does not — here
 * the real limit of SQL visibility, 10 custom Keyword attributes per namespace, already used up by someone
 * else's — the command exits 3 naming the namespace and `fetchquant setup`, and starts nothing.
 * Real dev server, real CLI processes; each namespace is created bare, as a user's would be.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { daysDuration } from '../../src/server/duration.js';
import proto from '@temporalio/proto';
import { execa } from 'execa';
import { batchWorkflowId } from '../../src/ids.js';
import { generateDataset, type Dataset } from '../../src/mirror/fixtures.js';
import { SEARCH_ATTRIBUTE_NAMES } from '../../src/search-attributes.js';
import { CLI } from '../helpers/e2e.js';
import { eventually } from '../helpers/temporal.js';

const KEYWORD = proto.temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;

describe('search attributes checked before run/start/demo/worker on a configured server', () => {
  let conn: Connection;
  let dir: string;
  let dataset: Dataset;
  const address = () => process.env.FQ_TEST_TEMPORAL_ADDRESS!;
  const suffix = randomBytes(3).toString('hex');
  const bare = `sa-bare-${suffix}`;
  const full = `sa-full-${suffix}`;

  async function bareNamespace(namespace: string): Promise<void> {
    await conn.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: daysDuration(1) });
    await eventually(async () => conn.operatorService.listSearchAttributes({ namespace }).then(() => true), 30_000, 200);
  }
  const custom = async (namespace: string) => Object.keys((await conn.operatorService.listSearchAttributes({ namespace })).customAttributes ?? {}).sort();
  const cli = (namespace: string, args: string[]) =>
    execa(process.execPath, [CLI, ...args], { env: { TEMPORAL_ADDRESS: address(), TEMPORAL_NAMESPACE: namespace, FETCHQUANT_HOST_ID: 'sahost' }, reject: false, timeout: 60_000 });
  const batchArgs = (batchId: string) => ['--config-dir', dataset.configDir, '--output-dir', dataset.outputDir, '--batch-id', batchId, '--min-free-gb', '0.01'];

  beforeAll(async () => {
    conn = await Connection.connect({ address: address() });
    dir = mkdtempSync(join(tmpdir(), 'fq-sa-'));
    dataset = await generateDataset({ root: dir, species: [{ name: 'Attributus alpha', runs: 1, readsPerRun: 500 }] });
    await bareNamespace(bare);
    await bareNamespace(full);
    // someone else's ten Keyword attributes: the SQL visibility store allows no eleventh
    const others: Record<string, typeof KEYWORD> = {};
    for (let i = 1; i <= 10; i++) others[`OtherKeyword${i}`] = KEYWORD;
    await conn.operatorService.addSearchAttributes({ namespace: full, searchAttributes: others });
  }, 120_000);

  afterAll(async () => {
    await conn?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('start registers the missing attributes, says so, and starts the batch; a second start registers nothing', async () => {
    expect(await custom(bare)).toEqual([]);
    const r = await cli(bare, ['start', ...batchArgs('sa1')]);
    expect([r.exitCode, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toContain(`registered search attributes ${SEARCH_ATTRIBUTE_NAMES.join(', ')} (Keyword) on namespace ${bare}`);
    expect(r.stdout).toContain(batchWorkflowId('sa1'));
    expect(await custom(bare)).toEqual([...SEARCH_ATTRIBUTE_NAMES].sort());
    const client = new Client({ connection: conn, namespace: bare });
    const handle = client.workflow.getHandle(batchWorkflowId('sa1'));
    expect((await handle.describe()).status.name).toBe('RUNNING');

    const again = await cli(bare, ['start', ...batchArgs('sa1')]);
    expect(again.exitCode).toBe(0);
    expect(again.stdout).not.toContain('registered search attributes');
    await handle.terminate('test over');
  });

  it('worker, start, run and demo exit 3 where the attributes cannot be registered, naming the namespace and `fetchquant setup`; nothing starts', async () => {
    const runs = {
      worker: ['worker'],
      start: ['start', ...batchArgs('sa2')],
      run: ['run', ...batchArgs('sa2')],
      demo: ['demo', '--dir', join(dir, 'demo')],
    };
    for (const [name, args] of Object.entries(runs)) {
      const r = await cli(full, args);
      expect([name, r.exitCode]).toEqual([name, 3]);
      expect([name, r.stderr]).toEqual([
        name,
        expect.stringContaining(`namespace ${full} on ${address()} lacks fetchquant's search attributes ${SEARCH_ATTRIBUTE_NAMES.join(', ')}`),
      ]);
      expect([name, r.stderr]).toEqual([name, expect.stringMatching(/cannot have more than 10 search attribute of type Keyword[\s\S]*`fetchquant setup` \(TEMPORAL_NAMESPACE=sa-full-/)]);
      expect([name, r.stdout]).toEqual([name, expect.not.stringMatching(/polling|running/)]);
    }
    // nothing was started, nothing was registered
    const client = new Client({ connection: conn, namespace: full });
    const started: string[] = [];
    for await (const wf of client.workflow.list()) started.push(wf.workflowId);
    expect(started).toEqual([]);
    expect(await custom(full)).toEqual(Array.from({ length: 10 }, (_, i) => `OtherKeyword${i + 1}`).sort());
  }, 120_000);
});
