/**
 * What the Temporal server was asked to do while one side ran: the dev server's Prometheus counters
 * `service_requests` (RPCs, by service and operation) and `persistence_requests` (its SQLite, by operation),
 * read before and after from its --metrics-port. B5 reports the largest per sample, so the server's CPU
 * per sample can be traced to the requests that cost it.
 */
export type Counters = Map<string, number>;

const WANTED = new Set(['service_requests', 'persistence_requests']);

/** `name{labels} value` lines of the wanted counters, keyed `name service/operation` (namespaces summed). */
export function parseCounters(text: string): Counters {
  const out: Counters = new Map();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)\{([^}]*)\}\s+([0-9.eE+-]+)$/.exec(line);
    if (!m || !WANTED.has(m[1]!)) continue;
    const labels = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
    const key = `${m[1]} ${labels.service_name ?? '?'}/${labels.operation ?? '?'}`;
    out.set(key, (out.get(key) ?? 0) + Number(m[3]));
  }
  return out;
}

export async function scrapeCounters(port: number): Promise<Counters | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    return res.ok ? parseCounters(await res.text()) : null;
  } catch {
    return null;
  }
}

/** after − before, largest first, without zeros. */
export function counterDelta(before: Counters | null, after: Counters | null): Array<[string, number]> {
  if (!before || !after) return [];
  return [...after]
    .map(([k, v]): [string, number] => [k, v - (before.get(k) ?? 0)])
    .filter(([, d]) => d > 0)
    .sort((a, b) => b[1] - a[1]);
}

/**
 * Per workflow type, over every run started since `since` (continued runs included): runs, events, workflow
 * tasks completed, and the events that woke them (signals, updates, child and activity completions, timers).
 * Says which workflow the server's workflow tasks (most of its CPU per sample) were spent on.
 */
export async function workflowCensus(address: string, namespace: string, since: Date): Promise<Record<string, Record<string, number>>> {
  const { Client, Connection } = await import('@temporalio/client');
  // CommonJS: its namespace arrives as the ESM default export
  const proto = (await import('@temporalio/proto')) as unknown as { default?: typeof import('@temporalio/proto'); temporal?: typeof import('@temporalio/proto').temporal };
  const temporal = proto.temporal ?? proto.default!.temporal;
  const names = temporal.api.enums.v1.EventType as unknown as Record<number, string>;
  const connection = await Connection.connect({ address });
  try {
    const client = new Client({ connection, namespace });
    const out: Record<string, Record<string, number>> = {};
    const runs: Array<{ id: string; runId: string; type: string }> = [];
    for await (const wf of client.workflow.list({ query: `StartTime >= '${since.toISOString()}'` })) runs.push({ id: wf.workflowId, runId: wf.runId, type: wf.type });
    for (const r of runs) {
      const h = await client.workflow.getHandle(r.id, r.runId).fetchHistory();
      const t = (out[r.type] ??= { runs: 0, events: 0 });
      t.runs! += 1;
      for (const e of h.events ?? []) {
        t.events! += 1;
        const kind = (names[Number(e.eventType)] ?? String(e.eventType)).replace(/^EVENT_TYPE_/, '').toLowerCase();
        t[kind] = (t[kind] ?? 0) + 1;
      }
    }
    return out;
  } finally {
    await connection.close();
  }
}
