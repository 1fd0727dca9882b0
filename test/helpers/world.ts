/**
 * A synthetic dataset in a fresh temp dir, and the loopback mirror that serves it: the set-up of the
 * mirror, network and end-to-end tests. The use* forms register the beforeAll and afterAll of the file
 * or describe block they are called in, and hand back an object that beforeAll fills in.
 */
import { afterAll, beforeAll } from '@jest/globals';
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateDataset, type Dataset } from '../../src/mirror/fixtures.js';
import { startMirror, type Mirror, type MirrorOptions } from '../../src/mirror/server.js';

/** What generateDataset takes, but the root (a fresh temp dir). */
export type DatasetSpec = Omit<Parameters<typeof generateDataset>[0], 'root'>;

/** A generated dataset under a fresh temp dir `fq-<prefix>-…`; remove() removes the dir. */
export interface TempDataset {
  root: string;
  dataset: Dataset;
  remove(): void;
}

export async function tempDataset(prefix: string, data: DatasetSpec): Promise<TempDataset> {
  const root = await mkdtemp(join(tmpdir(), `fq-${prefix}-`));
  const remove = () => rmSync(root, { recursive: true, force: true });
  try {
    return { root, dataset: await generateDataset({ root, ...data }), remove };
  } catch (err) {
    remove();
    throw err;
  }
}

/** A temp dataset served by the loopback mirror; stop() stops the mirror and removes the dir. */
export interface MirrorWorld {
  root: string;
  dataset: Dataset;
  mirror: Mirror;
  stop(): Promise<void>;
}

/** `mirror` gets the generated dataset (fault plans name its runs). */
export async function startMirrorWorld(
  prefix: string,
  data: DatasetSpec,
  mirror: (dataset: Dataset) => Omit<MirrorOptions, 'dataset'> = () => ({}),
): Promise<MirrorWorld> {
  const { root, dataset, remove } = await tempDataset(prefix, data);
  try {
    const m = await startMirror({ dataset, ...mirror(dataset) });
    return {
      root,
      dataset,
      mirror: m,
      stop: async () => {
        await m.stop();
        remove();
      },
    };
  } catch (err) {
    remove();
    throw err;
  }
}

/** tempDataset before the tests, removed after them. */
export function useTempDataset(prefix: string, data: DatasetSpec): TempDataset {
  const tmp = {} as TempDataset;
  beforeAll(async () => {
    Object.assign(tmp, await tempDataset(prefix, data));
  });
  afterAll(() => tmp.remove?.());
  return tmp;
}

/** startMirrorWorld before the tests (beforeAll's timeout: timeoutMs), stopped after them. */
export function useMirrorWorld(
  prefix: string,
  data: DatasetSpec,
  mirror?: (dataset: Dataset) => Omit<MirrorOptions, 'dataset'>,
  timeoutMs?: number,
): MirrorWorld {
  const world = {} as MirrorWorld;
  beforeAll(async () => {
    Object.assign(world, await startMirrorWorld(prefix, data, mirror));
  }, timeoutMs);
  afterAll(async () => {
    await world.stop?.();
  });
  return world;
}
