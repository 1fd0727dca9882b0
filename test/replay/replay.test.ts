/**
 * Determinism across releases: histories recorded from real runs (test/replay/histories, regenerate with
 * FQ_RECORD_HISTORIES=1 npm test) must replay against the current workflow code. A change that would break
 * running workflows fails here; guard such changes with patched().
 */
import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { WORKFLOWS_PATH } from '../../src/worker.js';

const DIR = join(process.cwd(), 'test', 'replay', 'histories');
const files = readdirSync(DIR).filter((f) => f.endsWith('.json'));

describe('replay of recorded histories', () => {
  it('has recorded histories to replay', () => {
    expect(files.length).toBeGreaterThanOrEqual(4);
  });
  it('replays every recorded history without nondeterminism', async () => {
    const histories = files.map((f) => {
      // runReplayHistories takes Temporal's history JSON as it is (the SDK converts it)
      const { workflowId, history } = JSON.parse(readFileSync(join(DIR, f), 'utf8'));
      return { workflowId, history };
    });
    const failures: string[] = [];
    for await (const r of Worker.runReplayHistories({ workflowsPath: WORKFLOWS_PATH, replayName: 'fetchquant-replay' }, histories)) {
      if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
    }
    expect(failures).toEqual([]);
  });
});
