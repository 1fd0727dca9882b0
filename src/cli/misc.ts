/** server, setup, worker, cleanup. */
import { join, resolve } from 'node:path';
import { Connection } from '@temporalio/client';
import { CLI_OPTIONS, DEFAULTS } from '../config/schema.js';
import { connectNative, resolveTarget, unreachableMessage } from '../server/connection.js';
import { startEmbeddedServer } from '../server/embedded.js';
import { setupNamespace } from '../server/setup.js';
import { defaultHostId, startWorker } from '../worker.js';
import { cliLogger, logFileName } from '../log.js';
import { stateRoot } from '../state-dir.js';
import { EXIT, serverPorts } from './args.js';
import { embeddedStateDir, openSession } from './context.js';
import { nextInterrupt } from './signals.js';
import { EnvironmentError } from '../failures.js';
import { inflaterInUse } from '../tools/inflate.js';

type Out = (l: string) => void;

function waitForSignal(): Promise<void> {
  return nextInterrupt().then(() => undefined);
}

/**
 * `fetchquant server`: the server it starts (or adopts from a `fetchquant` process killed with -9) belongs to
 * this command, which stays in the foreground: Ctrl-C or SIGTERM stops it, and if it dies the command says
 * so and exits 3. A server another live fetchquant process owns is left to it, with how to stop it.
 */
export async function cmdServer(values: Record<string, unknown>, out: Out): Promise<number> {
  const outputDir = resolve((values['output-dir'] as string | undefined) ?? DEFAULTS.outputDir);
  const server = await startEmbeddedServer({ stateDir: embeddedStateDir(outputDir), ...serverPorts(values), owner: 'server' });
  const how = server.owned ? (server.started ? 'started' : `adopted (pid ${server.pid}; the fetchquant process that started it, pid ${server.adoptedFrom ?? '?'}, is gone)`) : 'already running';
  out(`Temporal dev server ${how} at ${server.address}, namespace ${server.namespace}`);
  out(`Web UI: ${server.uiUrl ?? '(headless)'}   state: ${server.dbFile}`);
  out(`workers elsewhere: TEMPORAL_ADDRESS=${server.address} fetchquant worker`);
  if (!server.owned) {
    const owner = server.ownerPid ? `\`fetchquant ${server.owner}\` (pid ${server.ownerPid})` : `\`fetchquant ${server.owner}\``;
    out(`it belongs to ${owner}: stop it with Ctrl-C there${server.ownerPid ? `, or kill ${server.ownerPid}` : `, or kill ${server.pid}`}`);
    return EXIT.ok;
  }
  out(`Ctrl-C stops it (state is kept); it runs as pid ${server.pid} while this command runs`);
  // Stay in the foreground until a signal, or until the server dies under us (not left waiting on nothing).
  let timer: NodeJS.Timeout | undefined;
  const died = new Promise<'died'>((r) => {
    const look = () => {
      try {
        process.kill(server.pid, 0);
        timer = setTimeout(look, 500);
      } catch {
        r('died');
      }
    };
    look();
  });
  const why = await Promise.race([waitForSignal().then(() => 'signal' as const), died]);
  clearTimeout(timer);
  if (why === 'died') throw new EnvironmentError(`the Temporal dev server (pid ${server.pid}) exited; its state is kept in ${server.dbFile} — run \`fetchquant server\` again to start it`);
  await server.stop();
  out('Temporal dev server stopped');
  return EXIT.ok;
}

export async function cmdSetup(values: Record<string, unknown>, out: Out): Promise<number> {
  const target = resolveTarget({ address: values.address as string | undefined, namespace: values.namespace as string | undefined, profile: values.profile as string | undefined });
  let conn: Connection;
  try {
    conn = await Connection.connect({ ...target.options, address: target.address, connectTimeout: 10_000 });
  } catch (err) {
    throw new EnvironmentError(unreachableMessage(target, err));
  }
  try {
    const r = await setupNamespace(conn, target.namespace, Number(values['retention-days'] ?? CLI_OPTIONS.retentionDays.default));
    out(`namespace ${r.namespace}${r.created ? ' (created)' : ''}: retention ${r.retentionDays} days; search attributes added: ${r.added.join(', ') || 'none'}; already present: ${r.present.join(', ') || 'none'}`);
    return EXIT.ok;
  } finally {
    await conn.close();
  }
}

export async function cmdWorker(values: Record<string, unknown>, out: Out): Promise<number> {
  const session = await openSession(values, 'attach', { searchAttributes: true, out });
  const hostId = (values['host-id'] as string | undefined) ?? defaultHostId();
  const native = await connectNative(session.target);
  const worker = await startWorker({
    connection: native,
    client: session.client,
    namespace: session.target.namespace,
    hostId,
    janitor: { readsDirs: [] },
    workflowStackTraces: Boolean(values['workflow-stack-traces']),
  });
  // A worker has no output dir of its own: its SDK log lives in this machine's state dir.
  const logger = cliLogger();
  logger?.open(logFileName(join(stateRoot(), 'logs'), `fetchquant-worker-${hostId}`));
  logger?.info(inflaterInUse());
  out(`worker ${hostId} polling fetchquant and fetchquant@${hostId} on ${session.target.address} (namespace ${session.target.namespace}); Ctrl-C to stop`);
  if (logger?.path) out(`log: ${logger.path}`);
  await Promise.race([waitForSignal(), worker.done]);
  await worker.shutdown();
  await native.close();
  await session.close();
  return EXIT.ok;
}

export async function cmdCleanup(values: Record<string, unknown>, positionals: string[], out: Out): Promise<number> {
  const { findOrphans, removeOrphans } = await import('../activities/disk.js');
  const session = await openSession(values, 'attach').catch(() => null);
  let inFlight: string[] = [];
  if (session) {
    const { listInFlightRuns } = await import('../activities/in-flight.js');
    inFlight = await listInFlightRuns(session.client, (values['host-id'] as string | undefined) ?? defaultHostId());
    await session.close();
  } else {
    out('warning: no Temporal server reachable, so no run can be proven in flight; only listing');
  }
  const dirs = positionals.length ? positionals.map((p) => resolve(p)) : [];
  if (dirs.length === 0) throw new EnvironmentError('cleanup: name the reads dirs to check, e.g. fetchquant cleanup output/amalgkit/*/fastq');
  const orphans = await findOrphans(dirs, inFlight);
  for (const o of orphans) out(`${o.path}\t${o.bytes}`);
  out(`${orphans.length} orphaned partial download(s), ${orphans.reduce((a, o) => a + o.bytes, 0)} bytes`);
  if (values.execute && session) {
    const freed = await removeOrphans(orphans);
    out(`removed ${orphans.length}, freed ${freed} bytes`);
  } else if (orphans.length) out('run again with --execute to remove them');
  return EXIT.ok;
}
