import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { CLUSTER_SCRIPT } from '../helpers/cluster.js';

export default async function globalTeardown(): Promise<void> {
  if (process.env.FQ_CLUSTER_STARTED_BY_TESTS) execFileSync('bash', [CLUSTER_SCRIPT, 'down'], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (process.env.FETCHQUANT_STATE_DIR) rmSync(process.env.FETCHQUANT_STATE_DIR, { recursive: true, force: true });
}
