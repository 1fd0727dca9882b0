/** The janitor's view of which runs are still being worked on a host, from Temporal visibility itself. */
import type { Client } from '@temporalio/client';

/** Run accessions of sample workflows still running whose WorkerHost is hostId. */
export async function listInFlightRuns(client: Client, hostId: string): Promise<string[]> {
  const query = `WorkflowType = 'sampleWorkflow' AND ExecutionStatus = 'Running' AND WorkerHost = '${hostId.replace(/'/g, '')}'`;
  const runs: string[] = [];
  for await (const wf of client.workflow.list({ query })) {
    const v = wf.searchAttributes?.RunAccession;
    const run = Array.isArray(v) ? v[0] : undefined;
    if (typeof run === 'string') runs.push(run);
  }
  return runs;
}
