/**
 * The workflow code, bundled once at build time (`npm run build` runs this file after tsc) instead of at
 * every worker start: webpack took ~1.6 s of each `run`, `worker` and `demo` start, and of every restart
 * after a crash. A worker uses the bundle only while it is fresh, i.e. newer than every compiled module
 * under dist/src and than the installed Temporal workflow package; otherwise (tsc run alone, SDK
 * upgraded) it bundles from source as before, so stale workflow code can never run.
 */
import { mkdirSync, readdirSync, realpathSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The workflow sources a bundle is made from (dist/src/workflows/index.js). */
export const WORKFLOWS_PATH = fileURLToPath(new URL('./workflows/index.js', import.meta.url));
/** dist/workflow-bundle.js */
export const WORKFLOW_BUNDLE_PATH = fileURLToPath(new URL('../workflow-bundle.js', import.meta.url));
/** dist/src: the compiled modules a bundle is built from */
const COMPILED_DIR = fileURLToPath(new URL('.', import.meta.url));

function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtimeMs(p));
    else if (e.name.endsWith('.js')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** When the SDK packages whose code goes into (or runs) the bundle were installed: files and their directories. */
function sdkMtimeMs(): number {
  try {
    const require = createRequire(import.meta.url);
    const files = ['@temporalio/workflow/package.json', '@temporalio/worker/package.json'].map((p) => require.resolve(p));
    return Math.max(...files.flatMap((f) => [statSync(f).mtimeMs, statSync(dirname(f)).mtimeMs]));
  } catch {
    return Number.POSITIVE_INFINITY; // cannot tell: never trust the bundle
  }
}

/** The bundle's path if it exists and is newer than everything it was built from; else null. */
export function freshWorkflowBundle(bundlePath = WORKFLOW_BUNDLE_PATH, compiledDir = COMPILED_DIR, sdk = sdkMtimeMs()): string | null {
  let built: number;
  try {
    built = statSync(bundlePath).mtimeMs;
  } catch {
    return null;
  }
  return built >= newestMtimeMs(compiledDir) && built >= sdk ? bundlePath : null;
}

/** Bundles dist/src/workflows into `out` (written to a temp file, then renamed: never half a bundle). */
export async function buildWorkflowBundle(workflowsPath = WORKFLOWS_PATH, out = WORKFLOW_BUNDLE_PATH): Promise<void> {
  const { bundleWorkflowCode } = await import('@temporalio/worker');
  const { code } = await bundleWorkflowCode({ workflowsPath, logger: quietLogger });
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  writeFileSync(tmp, code);
  renameSync(tmp, out);
}

const quietLogger = {
  log() {},
  trace() {},
  debug() {},
  info() {},
  warn(message: string, meta?: unknown) {
    process.stderr.write(`workflow bundle: ${message}${meta ? ` ${JSON.stringify(meta)}` : ''}\n`);
  },
  error(message: string, meta?: unknown) {
    process.stderr.write(`workflow bundle: ${message}${meta ? ` ${JSON.stringify(meta)}` : ''}\n`);
  },
};

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildWorkflowBundle();
  process.stdout.write(`workflow bundle: ${WORKFLOW_BUNDLE_PATH}\n`);
}
