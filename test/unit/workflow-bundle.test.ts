/**
 * The prebuilt workflow bundle is used only while it is newer than every compiled module and the SDK:
 * a `tsc` run alone (or an SDK upgrade) must send workers back to bundling from source, never to stale
 * workflow code. And `npm run build` (which `npm test` runs first) leaves a fresh one.
 */
import { describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
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

  it('creating a workflow evaluates no zod: only the batch imports the option schema, lazily', () => {
    // docs/architecture.md §4 "What a workflow imports": the SDK evaluates every module the workflows import
    // at their top once per workflow it creates. The modules reachable from the workflows' entry through
    // static requires (webpack's `__webpack_require__` outside an `import()`) must not include zod.
    const code = readFileSync(WORKFLOW_BUNDLE_PATH, 'utf8');
    const starts = [...code.matchAll(/^\/\*\*\*\/ "([^"]+)"$/gm)].map((m) => ({ id: m[1]!, at: m.index }));
    expect(starts.length).toBeGreaterThan(50);
    const body = new Map(starts.map((s, i) => [s.id, code.slice(s.at, starts[i + 1]?.at ?? code.length)]));
    const requires = (src: string, lazy: boolean) =>
      [...src.matchAll(/(import\(\) eager \*\/\)\.then\(\(\) => \()?__webpack_require__\(\/\*! [^*]* \*\/ "([^"]+)"\)/g)]
        .filter((m) => Boolean(m[1]) === lazy)
        .map((m) => m[2]!);
    const entry = './dist/src/workflows/index.js';
    expect(body.has(entry)).toBe(true);
    const reached = new Set([entry]);
    for (const id of reached) for (const r of requires(body.get(id) ?? '', false)) reached.add(r);
    const workflowModules = [...reached].filter((id) => id.startsWith('./dist/src/'));
    expect(workflowModules).toEqual(expect.arrayContaining(['./dist/src/workflows/sample.js', './dist/src/workflows/species.js', './dist/src/config/sources.js']));
    expect([...reached].filter((id) => id.includes('zod') || id.includes('/config/schema') || id.includes('option-kinds'))).toEqual([]);
    // and the batch still validates raw input with the schema, imported when it does
    expect(requires(body.get('./dist/src/workflows/batch.js')!, true)).toEqual(['./dist/src/config/schema.js']);
  });
});
