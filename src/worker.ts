/**
 * A fetchquant worker: polls the shared queue `fetchquant` (workflows + host-free activities) and its
 * own host queue `fetchquant@<hostId>` (file work), and keeps the host's disk janitor running.
 */
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import workerThreads from 'node:worker_threads';
import { Client } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { Activities } from './activities/contract.js';
import { hostQueue, janitorWorkflowId, TASK_QUEUE } from './ids.js';
import { DEFAULTS } from './config/schema.js';
import { freshWorkflowBundle, WORKFLOWS_PATH } from './workflow-bundle.js';
import { reapOrphanTools } from './tools/process.js';
import type { HttpClient } from './tools/http.js';
import { reclaimDeadAttempts, recordAttempts, reportAttempts } from './activity-attempts.js';

export { WORKFLOWS_PATH };

/** The bundle `npm run build` made, while it is fresh; else the sources (bundled at start, ~1.6 s). */
function workflowCode(): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  const codePath = freshWorkflowBundle();
  return codePath ? { workflowBundle: { codePath } } : { workflowsPath: WORKFLOWS_PATH };
}

export function defaultHostId(env = process.env): string {
  return (env.FETCHQUANT_HOST_ID || hostname()).replace(/[^A-Za-z0-9._-]/g, '-');
}

export interface WorkerConfig {
  connection: NativeConnection;
  client: Client;
  namespace: string;
  hostId: string;
  cwd?: string;
  /** override activities (tests hand in fast ones); default: the real ones */
  activities?: Activities;
  /** the real activities' HTTP client (`run` asks its plan through it: one set of rate limits) */
  http?: HttpClient;
  /** how often tools left running by dead workers of this machine are killed (default 15 s) */
  reapEveryMs?: number;
  /** start (or keep) this host's janitor workflow */
  janitor?: { readsDirs: string[]; healthCheckIntervalSec?: number; autoCleanupThresholdGb?: number } | false;
  /** also poll the shared queue (workflows + host-free activities); default true */
  shared?: boolean;
  shutdownGraceTimeMs?: number;
  /** keep the SDK's per-promise stack capture for the Web UI's Stack Trace tab (--workflow-stack-traces); default off */
  workflowStackTraces?: boolean;
  /** told the name of each start-up step as it ends (`run` logs where its start-up time went) */
  onPhase?: (name: string) => void;
}

export interface RunningWorker {
  hostId: string;
  /** resolves when both workers stopped */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

const NO_STACK_TRACES_THREAD = fileURLToPath(new URL('./worker/no-stack-traces.cjs', import.meta.url));
const SDK_WORKFLOW_THREAD = /[\\/]@temporalio[\\/]worker[\\/]lib[\\/]workflow[\\/]workflow-worker-thread\.js$/;
/** Marks the wrapper and holds its switch: on the Worker class itself, the one object every copy of this module shares. */
const THREADS_STATE = Symbol.for('fetchquant.workflowThreads');
type ThreadsState = { stackTraces: boolean };
type MarkedWorker = typeof workerThreads.Worker & { [THREADS_STATE]?: ThreadsState };

/**
 * The SDK starts its workflow threads in Worker.create, as `new Worker(<its workflow-worker-thread.js>)` read
 * off node:worker_threads at that moment. Without stack traces those threads (and only those) start at
 * ./worker/no-stack-traces.cts, which refuses the SDK's promise hook and then loads the SDK's file. Not a
 * --require in execArgv: an explicit execArgv drops the parent's flags, or fails on per-process ones.
 * Wrapped once per process, even when this module is loaded more than once (jest loads it per test file).
 */
function setWorkflowStackTraces(on: boolean): void {
  const current = (workerThreads.Worker as MarkedWorker)[THREADS_STATE];
  if (current) {
    current.stackTraces = on;
    return;
  }
  const state: ThreadsState = { stackTraces: on };
  const Original = workerThreads.Worker;
  class WorkflowThreadAware extends Original {
    static readonly [THREADS_STATE] = state;
    constructor(filename: string | URL, options: workerThreads.WorkerOptions = {}) {
      const swap = !state.stackTraces && typeof filename === 'string' && SDK_WORKFLOW_THREAD.test(filename);
      if (swap) super(NO_STACK_TRACES_THREAD, { ...options, argv: [filename, ...(options.argv ?? [])] });
      else super(filename, options);
    }
  }
  workerThreads.Worker = WorkflowThreadAware;
}

function reapAndSay(): void {
  for (const g of reapOrphanTools()) {
    process.stderr.write(`fetchquant: killed ${g.cmd} (process group ${g.pgid}) left running by worker ${g.workerPid}, which is gone\n`);
  }
}

export async function startWorker(cfg: WorkerConfig): Promise<RunningWorker> {
  const phase = cfg.onPhase ?? (() => undefined);
  // Tools a crashed worker of this machine left running would write into what the retries clear and refill.
  reapAndSay();
  // Their activity attempts go back to the server now, not after the heartbeat timeout.
  for (const a of await reclaimDeadAttempts(cfg.client, cfg.namespace)) {
    if (a.failed) process.stderr.write(`fetchquant: handed back ${a.activityType} attempt ${a.attempt} of ${a.workflowId} (worker ${a.workerPid} is gone)\n`);
  }
  phase('dead attempts reclaimed');
  // Aborted as shutdown begins: nothing of ours may wait on a workflow this draining worker no longer runs.
  const stopAsking = new AbortController();
  const activities =
    cfg.activities ??
    (await import('./activities/index.js')).createActivities({ hostId: cfg.hostId, cwd: cfg.cwd ?? process.cwd(), client: cfg.client, stopping: stopAsking.signal, ...(cfg.http ? { http: cfg.http } : {}) });
  phase('activities loaded');
  const common: Partial<WorkerOptions> = {
    connection: cfg.connection,
    namespace: cfg.namespace,
    // Activities pace themselves (download slots, quant semaphore, disk admission); a high cap keeps a
    // host's tasks from waiting in the queue long enough to look like a lost host.
    maxConcurrentActivityTaskExecutions: 500,
    // Long activities get this long to see cancellation via heartbeat and stop their tools cleanly.
    shutdownGraceTime: cfg.shutdownGraceTimeMs ?? 10_000,
    // Heartbeats reach the server at least every 2 s (the SDK's default is 80 % of the 20 s timeout): the
    // server's view of an attempt stays fresh, so a restarted worker hands a dead one back well before
    // the server would time it out, and the download offset in the details is a close hint.
    maxHeartbeatThrottleInterval: '2 seconds',
    identity: `fetchquant@${cfg.hostId}/${process.pid}`,
  };
  const workers: Worker[] = [];
  if (cfg.shared !== false) {
    setWorkflowStackTraces(cfg.workflowStackTraces ?? false);
    const code = workflowCode();
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: TASK_QUEUE,
        ...code,
        activities,
        maxCachedWorkflows: 2000,
        // A sample's first workflow task runs its prepareSample as a local activity (src/workflows/sample.ts),
        // and the task may hold its slot until that step ends (not verified in the SDK's source); the step may
        // wait for the source pacer, whose own workflow task needs a slot too. The SDK's default of 40 could be
        // held by 40 preparing samples of a batch with 40+ threads; slots cost nothing while unused.
        maxConcurrentWorkflowTaskExecutions: 500,
        interceptors: { activity: [reportAttempts(cfg.hostId, cfg.client)] },
      } as WorkerOptions),
    );
    // A bundle older than the compiled code is not used: webpack then runs here, ~1.5 s and ~4 CPU-s more.
    phase(`workflow worker created${'workflowBundle' in code ? '' : ' (workflow code bundled now: dist/workflow-bundle.js is missing or older than dist/src; npm run build makes it)'}`);
  }
  workers.push(
    await Worker.create({ ...common, taskQueue: hostQueue(cfg.hostId), activities, interceptors: { activity: [recordAttempts(cfg.hostId), reportAttempts(cfg.hostId, cfg.client)] } } as WorkerOptions),
  );
  phase('host worker created');
  // A worker of this machine killed while this one runs leaves its tools running too: reap them as they
  // appear, not only when the next worker starts (two workers on one host; a host's worker replaced).
  const reaper = setInterval(reapAndSay, cfg.reapEveryMs ?? 15_000);
  reaper.unref();
  const done = Promise.all(workers.map((w) => w.run())).then(
    () => clearInterval(reaper),
    (err: unknown) => {
      clearInterval(reaper);
      throw err;
    },
  );

  if (cfg.janitor) {
    await cfg.client.workflow
      .start('janitorWorkflow', {
        taskQueue: TASK_QUEUE,
        workflowId: janitorWorkflowId(cfg.hostId),
        args: [
          {
            hostId: cfg.hostId,
            readsDirs: cfg.janitor.readsDirs,
            healthCheckIntervalSec: cfg.janitor.healthCheckIntervalSec ?? DEFAULTS.healthCheckIntervalSec,
            autoCleanupThresholdGb: cfg.janitor.autoCleanupThresholdGb ?? DEFAULTS.autoCleanupThresholdGb,
          },
        ],
        workflowIdConflictPolicy: 'USE_EXISTING',
      })
      .catch(() => undefined);
    phase('janitor started');
  }
  let stopping: Promise<void> | null = null;
  return {
    hostId: cfg.hostId,
    done,
    shutdown() {
      stopping ??= (async () => {
        stopAsking.abort(new Error('the worker is shutting down'));
        for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
        await done.catch(() => undefined);
      })();
      return stopping;
    },
  };
}
