/**
 * A worker process with fast activities, for tests that need several hosts (one process may run only
 * one worker per namespace and task queue) or a real kill -9. Events go to a JSON-lines log file.
 * argv[2]: JSON { address, namespace, hostId, world: { species, downloadMs?, quantMs?, unknownRuns?: string[] }, logFile }
 */
import { appendFileSync } from 'node:fs';
import { NativeConnection, Runtime, DefaultLogger } from '@temporalio/worker';
import { Client, Connection } from '@temporalio/client';
import { startWorker } from '../../src/worker.js';
import { createFastActivities, newLog } from './fast-activities.js';

const cfg = JSON.parse(process.argv[2]!);
Runtime.install({ logger: new DefaultLogger('WARN') });
const log = newLog();
const push = log.events.push.bind(log.events);
log.events.push = (...items) => {
  for (const e of items) appendFileSync(cfg.logFile, JSON.stringify(e) + '\n');
  return push(...items);
};
const world = { ...cfg.world, unknownRuns: new Set(cfg.world.unknownRuns ?? []) };
const native = await NativeConnection.connect({ address: cfg.address });
const client = new Client({ connection: await Connection.connect({ address: cfg.address }), namespace: cfg.namespace });
const worker = await startWorker({ connection: native, client, namespace: cfg.namespace, hostId: cfg.hostId, activities: createFastActivities(world, cfg.hostId, log), janitor: false, shutdownGraceTimeMs: 1000 });
process.stdout.write('ready\n');
process.on('SIGTERM', () => void worker.shutdown().then(() => process.exit(0)));
await worker.done;
