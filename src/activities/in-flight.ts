/** What Temporal itself knows about our workflows: runs in flight on a host (janitor), species alive (batch sweep). */
import type { Client } from '@temporalio/client';
import { SA } from '../search-attributes.js';

/** Run accessions of sample workflows still running whose WorkerHost is hostId. */
export async function listInFlightRuns(client: Client, hostId: string): Promise<string[]> {
  const query = `WorkflowType = 'sampleWorkflow' AND ExecutionStatus = 'Running' AND WorkerHost = '${hostId.replace(/'/g, '')}'`;
  const runs: string[] = [];
  for await (const wf of client.workflow.list({ query })) {
    const run = wf.typedSearchAttributes.get(SA.RunAccession);
    if (run) runs.push(run);
  }
  return runs;
}

/** Status of each workflow id's latest run, with the result of completed ones. */
export async function describeWorkflows(client: Client, workflowIds: string[]): Promise<Record<string, { status: string; result?: unknown }>> {
  const out: Record<string, { status: string; result?: unknown }> = {};
  for (const id of workflowIds) {
    const h = client.workflow.getHandle(id);
    try {
      const d = await h.describe();
      out[id] = { status: d.status.name, result: d.status.name === 'COMPLETED' ? await h.result() : undefined };
    } catch (err) {
      if ((err as Error).name !== 'WorkflowNotFoundError') throw err;
      out[id] = { status: 'NOT_FOUND' };
    }
  }
  return out;
}
