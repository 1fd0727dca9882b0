/**
 * The batch options `fetchquant demo` uses unless the user gives them: demo-sized, against the local mirror.
 * The one place they live: cmdDemo applies them and `demo --help` shows them.
 */
import type { BatchOptions } from '../config/schema.js';

export const DEMO_DEFAULTS: Partial<BatchOptions> = {
  enaFileScheme: 'http',
  totalThreads: 6,
  minFreeGb: 0.5,
  autoCleanupThresholdGb: 0.2,
  checkIntervalSec: 5,
  monitorIntervalSec: 1,
  retryInitialSec: 1,
  processTimeoutSec: 600,
  // the demo's always-failing runs fail at once, so the demo ends in a minute (a real batch parks them for hours)
  parkWaitSec: 0,
};

/** Set per demo dir and mirror (see cmdDemo); shown so in help. */
export const DEMO_DERIVED: Partial<Record<keyof BatchOptions, string>> = {
  configDir: '<dir>/config/amalgkit',
  outputDir: '<dir>/output',
  enaPortalUrl: "the local mirror's",
  sraLocateUrl: "the local mirror's",
};
