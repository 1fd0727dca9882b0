/**
 * Connecting the way Temporal's own tools do: TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE / TEMPORAL_API_KEY /
 * TEMPORAL_TLS_* and temporal.toml profiles (TEMPORAL_PROFILE), via Temporal's envconfig package,
 * with --address / --namespace on top.
 */
import { Client, Connection } from '@temporalio/client';
import { loadClientConfigProfile, toClientOptions } from '@temporalio/envconfig';
import { NativeConnection } from '@temporalio/worker';
import { causeChain } from '../failures.js';

export interface Target {
  address: string;
  namespace: string;
  /** connection options from envconfig (TLS, API key, metadata) */
  options: Record<string, unknown>;
  /** true when the user pointed us at a server (env, profile or flag); false = embedded default */
  configured: boolean;
}

export function resolveTarget(flags: { address?: string; namespace?: string; profile?: string } = {}, env = process.env): Target {
  let profile: ReturnType<typeof loadClientConfigProfile> = {};
  try {
    profile = loadClientConfigProfile({ profile: flags.profile ?? env.TEMPORAL_PROFILE, overrideEnvVars: env as Record<string, string> });
  } catch (err) {
    // A missing config file is normal; a broken one is the user's to fix, so say so.
    const msg = (err as Error).message;
    if (!/no such file|ENOENT|not found/i.test(msg)) throw new Error(`cannot read Temporal client config: ${msg}`);
  }
  const configured = Boolean(flags.address ?? profile.address);
  const connect = toClientOptions({ ...profile, address: flags.address ?? profile.address ?? 'localhost:7233' });
  const options = { ...(connect.connectionOptions as Record<string, unknown>) };
  return {
    address: (options.address as string | undefined) ?? 'localhost:7233',
    namespace: flags.namespace ?? profile.namespace ?? 'default',
    options,
    configured,
  };
}

export async function connectClient(target: Target, timeoutMs = 10_000): Promise<Client> {
  const connection = await Connection.connect({ ...target.options, address: target.address, connectTimeout: timeoutMs });
  return new Client({ connection, namespace: target.namespace });
}

export async function connectNative(target: Target): Promise<NativeConnection> {
  return NativeConnection.connect({ ...(target.options as object), address: target.address });
}

/** The message for an unreachable server: which address, and how to get one. */
export function unreachableMessage(target: Target, err: unknown): string {
  return (
    `cannot reach the Temporal server at ${target.address} (namespace ${target.namespace}): ${(err as Error).message}\n` +
    `  start one with \`fetchquant server\` (or \`temporal server start-dev\`), or unset TEMPORAL_ADDRESS to let \`fetchquant run\` start its own`
  );
}

/** gRPC codes that say "the server is not there right now" (down, restarting), not "the call is wrong". */
const UNAVAILABLE_CODES = new Set([14 /* UNAVAILABLE */, 4 /* DEADLINE_EXCEEDED */]);

/** True for an error (or one it wraps, as the client's ServiceError does) that a later retry may cure. */
export function isUnavailable(err: unknown): boolean {
  return causeChain(err, 5).some((e) => {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'number' && UNAVAILABLE_CODES.has(code);
  });
}
