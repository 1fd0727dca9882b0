/**
 * The sample's folded host steps (fewer round trips, fewer history events): `prepareSample` = checkDone ->
 * resolveSource -> ensureIndex -> one reserveDisk; `publish` = finalize -> deleteReads; and `quant` with a
 * `publish` part = quant -> finalize -> deleteReads, so a clean sample's last host step is its quant. Each
 * part is safe to repeat, so a retry of the whole step is too. Built from the single-step activities, for the
 * real and the fast set.
 */
import type { Activities } from './contract.js';
import { activityHooks, withHeartbeat } from './heartbeat.js';
import { runQuantTmpDir } from '../ids.js';
import { completeProvenance } from '../provenance.js';
import type { QuantResult } from '../types.js';

type Parts = Pick<Activities, 'checkDone' | 'resolveSource' | 'ensureIndex' | 'reserveDisk' | 'quant' | 'finalize' | 'deleteReads'> & {
  /** the quant figures of a run published already (its provenance on disk), else null */
  publishedQuant(input: { quantDir: string; run: string }): Promise<Omit<QuantResult, 'tmpDir'> | null>;
};

export function createSampleSteps(parts: Parts): Pick<Activities, 'prepareSample' | 'publish' | 'quant'> {
  const publish: Activities['publish'] = async ({ run, quantDir, tmpDir, provenance, runDir, keepReads }) => {
    const { dir } = await parts.finalize({ run, quantDir, tmpDir, provenance });
    const { removedBytes } = await parts.deleteReads({ run, runDir, ...(keepReads ? { keep: true } : {}) });
    return { dir, removedBytes };
  };
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
    publish,
    async quant(input) {
      const { publish: pub, ...quantInput } = input;
      if (!pub) return parts.quant(quantInput);
      const { run, quantDir } = input;
      // A sample reaches quant only when prepareSample found the run not done: done now means an earlier
      // attempt of this step published it (its worker died before reporting). Its reads may be gone: no
      // kallisto then, the figures come from its provenance, and publishing again changes nothing but the reads.
      const earlier = (await parts.checkDone({ quantDir, run })) ? await parts.publishedQuant({ quantDir, run }) : null;
      const q = earlier ? { ...earlier, tmpDir: runQuantTmpDir(quantDir, run) } : await parts.quant(quantInput);
      const { tmpDir, ...figures } = q;
      const provenance = completeProvenance(pub.provenance, figures, new Date().toISOString());
      const { dir, removedBytes } = await publish({ run, quantDir, tmpDir, provenance, runDir: pub.runDir, keepReads: pub.keepReads });
      return { ...q, published: { dir, removedBytes, ...(earlier ? { earlier: true as const } : {}) } };
    },
  };
}
