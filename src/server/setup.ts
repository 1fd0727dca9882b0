/** `fetchquant setup`: make an existing namespace ready — exists, retention raised, search attributes registered. */
import type { Connection } from '@temporalio/client';
import { daysDuration } from './duration.js';
import proto from '@temporalio/proto';
import { SEARCH_ATTRIBUTE_NAMES } from '../search-attributes.js';

export interface SetupReport {
  namespace: string;
  created: boolean;
  retentionDays: number;
  added: string[];
  present: string[];
}

export async function setupNamespace(conn: Connection, namespace: string, retentionDays = 30): Promise<SetupReport> {
  let created = false;
  try {
    await conn.workflowService.describeNamespace({ namespace });
  } catch {
    await conn.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: daysDuration(retentionDays) });
    created = true;
    // Namespace registration propagates asynchronously; wait until it answers.
    for (let i = 0; i < 100; i++) {
      try {
        await conn.workflowService.describeNamespace({ namespace });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
  if (!created) {
    await conn.workflowService.updateNamespace({ namespace, config: { workflowExecutionRetentionTtl: daysDuration(retentionDays) } });
  }
  // A new namespace reaches every server component's cache only after a refresh (seconds on the dev server).
  const existing = await retryNotFound(() => conn.operatorService.listSearchAttributes({ namespace }));
  const have = new Set(Object.keys(existing.customAttributes ?? {}));
  const missing = SEARCH_ATTRIBUTE_NAMES.filter((n) => !have.has(n));
  if (missing.length) {
    const KEYWORD = proto.temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
    const searchAttributes: Record<string, typeof KEYWORD> = {};
    for (const n of missing) searchAttributes[n] = KEYWORD;
    await retryNotFound(() => conn.operatorService.addSearchAttributes({ namespace, searchAttributes }));
  }
  return { namespace, created, retentionDays, added: missing, present: SEARCH_ATTRIBUTE_NAMES.filter((n) => have.has(n)) };
}

async function retryNotFound<T>(fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!/not.?found/i.test((err as Error).message) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}
