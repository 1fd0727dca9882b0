/**
 * scripts/cluster.sh, temporal-server on PostgreSQL, as the cluster tests (test/cluster) and the benchmark
 * (bench/run.ts) use it: whether it runs, and the settings its `env` prints (TEMPORAL_ADDRESS,
 * TEMPORAL_NAMESPACE, FQ_CLUSTER_DIR).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';

export const CLUSTER_SCRIPT = join(process.cwd(), 'scripts', 'cluster.sh');

export function clusterRunning(): boolean {
  return spawnSync('bash', [CLUSTER_SCRIPT, 'status'], { stdio: 'ignore' }).status === 0;
}

/** `scripts/cluster.sh env`: one NAME=value a line. */
export function clusterEnv(): Record<string, string> {
  return Object.fromEntries(
    execFileSync('bash', [CLUSTER_SCRIPT, 'env'], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  ) as Record<string, string>;
}
