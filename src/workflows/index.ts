/** The workflow bundle's entry: everything registered on the `fetchquant` task queue. */
export { batchWorkflow } from './batch.js';
export { speciesWorkflow } from './species.js';
export { sampleWorkflow } from './sample.js';
export { janitorWorkflow } from './janitor.js';
export { sourcePacerWorkflow } from './pacer.js';
