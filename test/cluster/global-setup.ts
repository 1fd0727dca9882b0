/**
 * npm run test:cluster: temporal-server on PostgreSQL from scripts/cluster.sh (`up` is a no-op when it runs
 * already; .ci/run brings it up before and down after). Tests find it in FQ_CLUSTER_ADDRESS /
 * FQ_CLUSTER_NAMESPACE / FQ_CLUSTER_DIR; host state of the workers they start goes to a temp dir.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLUSTER_SCRIPT, clusterEnv, clusterRunning } from '../helpers/cluster.js';

export default async function globalSetup(): Promise<void> {
  const wasUp = clusterRunning();
  execFileSync('bash', [CLUSTER_SCRIPT, 'up'], { stdio: ['ignore', 'inherit', 'inherit'] });
  const env = clusterEnv();
  process.env.FQ_CLUSTER_ADDRESS = env.TEMPORAL_ADDRESS;
  process.env.FQ_CLUSTER_NAMESPACE = env.TEMPORAL_NAMESPACE;
  process.env.FQ_CLUSTER_DIR = env.FQ_CLUSTER_DIR;
  process.env.FQ_CLUSTER_STARTED_BY_TESTS = wasUp ? '' : '1';
  process.env.FETCHQUANT_STATE_DIR = mkdtempSync(join(tmpdir(), 'fq-cluster-state-'));
}
