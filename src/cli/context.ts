/** How a command finds its Temporal server: the user's (env/profile/flags), or the embedded one of an output dir. */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import { connectClient, resolveTarget, unreachableMessage, type Target } from '../server/connection.js';
import { startEmbeddedServer, type EmbeddedServer } from '../server/embedded.js';
import { ensureSearchAttributes } from '../server/setup.js';
import { DEFAULTS } from '../config/schema.js';
import { serverPorts } from './args.js';
import { EnvironmentError } from '../failures.js';

export interface Session {
  client: Client;
  target: Target;
  uiUrl: string | null;
  /** set when this command started (or attached to) the embedded server */
  server: EmbeddedServer | null;
  close(): Promise<void>;
}

export function embeddedStateDir(outputDir: string): string {
  return join(outputDir, '.temporal');
}

export interface SessionOptions {
  /**
   * run, start, demo and worker on a configured server: make sure the namespace has fetchquant's search
   * attributes (registering them where allowed) before anything starts, else exit 3 saying how to fix it.
   */
  searchAttributes?: boolean;
  out?: (line: string) => void;
}

export async function openSession(values: Record<string, unknown>, mode: 'start-embedded' | 'attach', opts: SessionOptions = {}): Promise<Session> {
  let target = resolveTarget({ address: values.address as string | undefined, namespace: values.namespace as string | undefined, profile: values.profile as string | undefined });
  let uiUrl = (values['ui-url'] as string | undefined) ?? process.env.TEMPORAL_UI_URL ?? null;
  let server: EmbeddedServer | null = null;
  if (!target.configured) {
    const outputDir = resolve((values['output-dir'] as string | undefined) ?? DEFAULTS.outputDir);
    const stateDir = embeddedStateDir(outputDir);
    if (mode === 'start-embedded') {
      // --port pins the gRPC port (default 7233 if free), --ui-port, --http-port, --metrics-port the others;
      // a restart after a crash reuses whichever it got.
      server = await startEmbeddedServer({ stateDir, ...serverPorts(values) });
      target = { ...target, address: server.address, namespace: server.namespace };
      uiUrl = server.uiUrl;
    } else {
      const rec = join(stateDir, 'server.json');
      if (existsSync(rec)) {
        const r = JSON.parse(readFileSync(rec, 'utf8')) as { address: string; uiUrl: string | null; namespace: string };
        target = { ...target, address: r.address, namespace: r.namespace };
        uiUrl ??= r.uiUrl;
      }
    }
  }
  uiUrl ??= target.address.startsWith('127.0.0.1:7233') || target.address.startsWith('localhost:7233') ? 'http://localhost:8233' : null;
  let client: Client;
  try {
    client = await connectClient(target);
  } catch (err) {
    throw new EnvironmentError(unreachableMessage(target, err));
  }
  try {
    await client.connection.workflowService.describeNamespace({ namespace: target.namespace });
  } catch (err) {
    await client.connection.close();
    if ((err as { code?: number }).code === 5 /* NOT_FOUND */) {
      throw new EnvironmentError(
        `namespace ${target.namespace} does not exist on ${target.address}: create it with \`fetchquant setup\` (TEMPORAL_NAMESPACE=${target.namespace}), ` +
          `or set TEMPORAL_NAMESPACE to an existing one`,
      );
    }
    throw new EnvironmentError(unreachableMessage(target, err));
  }
  if (opts.searchAttributes && target.configured) {
    const check = await ensureSearchAttributes(client.connection, target.namespace);
    if (check.missing.length) {
      await client.connection.close();
      throw new EnvironmentError(
        `namespace ${target.namespace} on ${target.address} lacks fetchquant's search attributes ${check.missing.join(', ')}, and they could not be registered from here (${check.error}); ` +
          `without them a batch hangs (BAD_SEARCH_ATTRIBUTES).\n` +
          `  register them once with \`fetchquant setup\` (TEMPORAL_NAMESPACE=${target.namespace}) as someone allowed to add search attributes, ` +
          `or add them as Keyword attributes (temporal operator search-attribute create --namespace ${target.namespace} --type Keyword --name …)`,
      );
    }
    if (check.added.length) {
      (opts.out ?? ((l: string) => process.stdout.write(`${l}\n`)))(`registered search attributes ${check.added.join(', ')} (Keyword) on namespace ${target.namespace}`);
    }
  }
  return {
    client,
    target,
    uiUrl,
    server,
    async close() {
      await client.connection.close();
    },
  };
}

/** Undoes a session opened for a command that then failed to start: its client closed, a server it started stopped. */
export async function closeSession(opening: Promise<Session>): Promise<void> {
  const session = await opening.catch(() => null);
  if (!session) return;
  await session.close();
  if (session.server?.owned) await session.server.stop();
}
