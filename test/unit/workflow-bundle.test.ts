/**
 * The prebuilt workflow bundle is used only while it is newer than every compiled module and the SDK:
 * a `tsc` run alone (or an SDK upgrade) must send workers back to bundling from source, never to stale
 * workflow code. And `npm run build` (which `npm test` runs first) leaves a fresh one.
 */
import { describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freshWorkflowBundle, WORKFLOW_BUNDLE_PATH } from '../../src/workflow-bundle.js';

describe('workflow bundle', () => {
  it('is fresh only while newer than every compiled module and the SDK', () => {
    const root = mkdtempSync(join(tmpdir(), 'fq-bundle-'));
    try {
      const compiled = join(root, 'src');
      mkdirSync(join(compiled, 'workflows'), { recursive: true });
      const mod = join(compiled, 'workflows', 'sample.js');
      const other = join(compiled, 'ids.js');
      const bundle = join(root, 'workflow-bundle.js');
      writeFileSync(mod, '');
      writeFileSync(other, '');
      const at = (p: string, sec: number) => utimesSync(p, sec, sec);
      at(mod, 1000);
      at(other, 1000);

      expect(freshWorkflowBundle(bundle, compiled, 0)).toBeNull(); // none built
      writeFileSync(bundle, '');
      at(bundle, 2000);
      expect(freshWorkflowBundle(bundle, compiled, 0)).toBe(bundle);
      at(other, 3000); // tsc ran again: any module, not only workflows/, may be in the bundle
      expect(freshWorkflowBundle(bundle, compiled, 0)).toBeNull();
      at(other, 1000);
      expect(freshWorkflowBundle(bundle, compiled, 3_000_000)).toBeNull(); // SDK installed after the bundle
      expect(freshWorkflowBundle(bundle, compiled, Number.POSITIVE_INFINITY)).toBeNull();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('npm run build left a fresh bundle, so workers skip webpack at start', () => {
    expect(freshWorkflowBundle()).toBe(WORKFLOW_BUNDLE_PATH);
  });
});
