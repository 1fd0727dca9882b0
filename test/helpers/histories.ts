/** Recording histories of real runs as replay fixtures (FQ_RECORD_HISTORIES=1 npm test), committed under test/replay/histories. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
// The SDK exports its history JSON converters only from this module (the one Worker.runReplayHistory uses
// on JSON input): the project's single deep import into the SDK, kept here so nothing else needs it.
import { historyFromJSON, historyToJSON } from '@temporalio/common/lib/proto-utils.js';

export { historyFromJSON };

export const HISTORY_DIR = join(process.cwd(), 'test', 'replay', 'histories');

/** The latest run of workflowId, or the run given. */
export async function maybeRecord(client: Client, workflowId: string, name: string, runId?: string): Promise<void> {
  if (!process.env.FQ_RECORD_HISTORIES) return;
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  mkdirSync(HISTORY_DIR, { recursive: true });
  // Temporal's canonical history JSON (what `temporal workflow show --output json` writes)
  writeFileSync(join(HISTORY_DIR, `${name}.json`), `{"workflowId":${JSON.stringify(workflowId)},"history":${historyToJSON(history)}}`);
}

/** The patch ids a history's markers record, in order (Temporal's core_patch markers). */
export function patchMarkers(history: Awaited<ReturnType<ReturnType<Client['workflow']['getHandle']>['fetchHistory']>>): string[] {
  const ids: string[] = [];
  for (const e of history.events ?? []) {
    const m = e.markerRecordedEventAttributes;
    if (m?.markerName !== 'core_patch') continue;
    const data = m.details?.['patch-data']?.payloads?.[0]?.data;
    if (data) ids.push((JSON.parse(new TextDecoder().decode(data)) as { id: string }).id);
  }
  return ids;
}
