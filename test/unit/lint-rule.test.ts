// The determinism line is enforced, not hoped for: ESLint rejects I/O imports in workflow code.
import { describe, expect, it } from '@jest/globals';
import { ESLint } from 'eslint';

describe('the workflow lint rule', () => {
  const eslint = new ESLint({ cwd: process.cwd() });
  // an existing workflow module's path: the type-aware rules only lint files of the TypeScript project
  const lint = async (code: string) => (await eslint.lintText(code, { filePath: 'src/workflows/signal.ts' }))[0]!.messages.map((m) => m.message);
  it('rejects Node built-ins, execa and activity implementations in src/workflows', async () => {
    expect((await lint("import { readFileSync } from 'node:fs';\nexport const x = readFileSync;\n")).join()).toMatch(/deterministic/);
    expect((await lint("import { execa } from 'execa';\nexport const x = execa;\n")).join()).toMatch(/Processes run in activities/);
    expect((await lint("import { createQuantActivities } from '../activities/quant.js';\nexport const x = createQuantActivities;\n")).join()).toMatch(/types only/);
  });
  it('allows type-only imports of activities and pure modules', async () => {
    expect(await lint("import type { Activities } from '../activities/contract.js';\nimport { TASK_QUEUE } from '../ids.js';\nexport type A = Activities;\nexport const q = TASK_QUEUE;\n")).toEqual([]);
  });
});
