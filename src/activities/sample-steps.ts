/**
 * The sample's short host steps folded into two round trips (each Temporal activity costs a scheduled,
 * started and completed event plus a workflow task): `prepareSample` = checkDone -> resolveSource ->
 * ensureIndex -> one reserveDisk, and `publish` = finalize -> deleteReads. Each part is safe to repeat, so
 * a retry of the whole step is too. Built from the single-step activities, for the real and the fast set.
 */
import type { Activities } from './contract.js';
import { activityHooks, withHeartbeat } from './heartbeat.js';

type Parts = Pick<Activities, 'checkDone' | 'resolveSource' | 'ensureIndex' | 'reserveDisk' | 'finalize' | 'deleteReads'>;

export function createSampleSteps(parts: Parts): Pick<Activities, 'prepareSample' | 'publish'> {
  return {
    async prepareSample({ run, options, quantDir, readsDir, indexPath, fastaPaths }) {
      // Archive answers and a first-time index build can take a while: keep the heartbeat going.
      return withHeartbeat(activityHooks(), async () => {
        if (await parts.checkDone({ quantDir, run: run.run })) return { done: true as const };
        const plan = await parts.resolveSource({ run, options });
        await parts.ensureIndex({ indexPath, fastaPaths, timeoutSec: options.processTimeoutSec });
        const grant = await parts.reserveDisk({ run: run.run, dir: readsDir, bytes: plan.reserveBytes, minFreeGb: options.minFreeGb });
        return { done: false as const, plan, grant };
      });
    },
    async publish({ run, quantDir, tmpDir, provenance, runDir, keepReads }) {
      const { dir } = await parts.finalize({ run, quantDir, tmpDir, provenance });
      const { removedBytes } = await parts.deleteReads({ run, runDir, ...(keepReads ? { keep: true } : {}) });
      return { dir, removedBytes };
    },
  };
}
