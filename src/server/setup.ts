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

export interface SearchAttributeCheck {
  /** registered by this check */
  added: string[];
  /** still missing: set when they could not be registered (then `error` says why) */
  missing: string[];
  error?: string;
}

/**
 * Before a batch runs or a worker polls on a configured server: are fetchquant's search attributes there?
 * Without them every workflow task of the batch fails with BAD_SEARCH_ATTRIBUTES and the batch hangs with
 * no message. Missing ones are registered where the caller may (OperatorService.AddSearchAttributes);
 * where it may not (Temporal Cloud API keys, restricted roles) `missing` and `error` say so.
 */
export async function ensureSearchAttributes(conn: Pick<Connection, 'operatorService'>, namespace: string): Promise<SearchAttributeCheck> {
  let have: Set<string>;
  try {
    const existing = await conn.operatorService.listSearchAttributes({ namespace });
    have = new Set(Object.keys(existing.customAttributes ?? {}));
  } catch (err) {
    return { added: [], missing: [...SEARCH_ATTRIBUTE_NAMES], error: `cannot list search attributes: ${(err as Error).message}` };
  }
  const missing = SEARCH_ATTRIBUTE_NAMES.filter((n) => !have.has(n));
  if (!missing.length) return { added: [], missing: [] };
  const KEYWORD = proto.temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
  const searchAttributes: Record<string, typeof KEYWORD> = {};
  for (const n of missing) searchAttributes[n] = KEYWORD;
  try {
    await conn.operatorService.addSearchAttributes({ namespace, searchAttributes });
  } catch (err) {
    return { added: [], missing, error: (err as Error).message };
  }
  return { added: missing, missing: [] };
}
