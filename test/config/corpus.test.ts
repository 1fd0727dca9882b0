// Runs every case folder of test/corpus (format: test/corpus/README.md) through the real discovery.
import { describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { discoverBatch, readSnapshot } from '../../src/config/discover.js';
import { DEFAULTS, formatProblem, InvalidInputError, type BatchOptions } from '../../src/config/schema.js';
import type { BatchPlan, SpeciesPlan } from '../../src/types.js';

// Compiled to dist/test/config: the corpus stays in the source tree.
const CORPUS = fileURLToPath(new URL('../../../test/corpus', import.meta.url));
const cases = readdirSync(CORPUS).filter((n) => statSync(join(CORPUS, n)).isDirectory()).sort();

interface Expected {
  problems: string[][];
  species?: string[];
  runs: [string, string][];
  plan: [string, string, string][];
  notes: string[];
}

function readExpected(dir: string, out: string): Expected {
  const e: Expected = { problems: [], runs: [], plan: [], notes: [] };
  const text = readFileSync(join(dir, 'expected.txt'), 'utf8').replaceAll('{cwd}', dir).replaceAll('{out}', out);
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    let m: RegExpExecArray | null;
    if ((m = /^species:\s*(.*)$/.exec(line))) e.species = (m[1] as string).split(/\s+/).filter(Boolean);
    else if ((m = /^runs (\S+):\s*(.*)$/.exec(line))) e.runs.push([m[1] as string, m[2] as string]);
    else if ((m = /^plan (\S+) (\S+):\s*(.*)$/.exec(line))) e.plan.push([m[1] as string, m[2] as string, m[3] as string]);
    else if ((m = /^note:\s*(.*)$/.exec(line))) e.notes.push(m[1] as string);
    else e.problems.push(line.split(' | ').map((s) => s.trim()));
  }
  return e;
}

function field(p: SpeciesPlan, name: string): string {
  const v = (p as unknown as Record<string, unknown>)[name];
  if (v === undefined) throw new Error(`SpeciesPlan has no field ${name}`);
  return Array.isArray(v) ? v.join(' ') : String(v);
}

describe('species config corpus', () => {
  it('has cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(20);
  });

  for (const name of cases) {
    it(name, async () => {
      const dir = join(CORPUS, name);
      const out = mkdtempSync(join(tmpdir(), `fq-corpus-${name}-`));
      const e = readExpected(dir, out);
      const optPath = join(dir, 'options.json');
      const extra = existsSync(optPath) ? (JSON.parse(readFileSync(optPath, 'utf8')) as Partial<BatchOptions>) : {};
      const options: BatchOptions = { ...DEFAULTS, sources: [...DEFAULTS.sources], ...extra, configDir: dir, outputDir: out };

      let plan: BatchPlan | null = null;
      let error: unknown = null;
      try {
        plan = await discoverBatch(options, 'corpus', dir, {});
      } catch (err) {
        error = err;
      }

      if (e.problems.length > 0) {
        if (!(error instanceof InvalidInputError)) throw new Error(`expected problems, got ${error ? String(error) : 'a plan'}`);
        const reported = error.problems.map(formatProblem);
        const unmatched = [...reported];
        for (const want of e.problems) {
          const i = unmatched.findIndex((r) => want.every((s) => r.includes(s)));
          if (i < 0) throw new Error(`no reported problem contains ${JSON.stringify(want)}; reported:\n${reported.join('\n')}`);
          unmatched.splice(i, 1);
        }
        expect(unmatched).toEqual([]);
        // Nothing is written unless every config is valid.
        expect(readdirSync(out)).toEqual([]);
        return;
      }

      if (error) throw error;
      const p = plan as BatchPlan;
      if (e.species) expect(p.species.map((s) => s.speciesId)).toEqual(e.species);
      const byId = (id: string) => {
        const s = p.species.find((x) => x.speciesId === id);
        if (!s) throw new Error(`species ${id} not planned (planned: ${p.species.map((x) => x.speciesId).join(', ')})`);
        return s;
      };
      for (const [id, runs] of e.runs) {
        const snap = await readSnapshot(byId(id).runListPath);
        const got = snap.map((r) => [r.run, r.layout ?? '', r.nominalLength ?? '', r.spots ?? ''].join(':'));
        expect(got).toEqual(runs.split(/\s+/).filter(Boolean));
        expect(byId(id).totalRuns).toBe(snap.length);
      }
      for (const [id, name, value] of e.plan) expect(`${name}: ${field(byId(id), name)}`).toBe(`${name}: ${value}`);
      for (const n of e.notes) {
        if (!p.notes.some((x) => x.includes(n))) throw new Error(`no note contains ${JSON.stringify(n)}; notes:\n${p.notes.join('\n')}`);
      }
      // Every path in a plan is absolute: workflows never see a relative one.
      for (const s of p.species) {
        for (const k of ['configPath', 'readsDir', 'quantDir', 'indexPath', 'runListPath'] as const) expect(s[k].startsWith('/')).toBe(true);
        for (const f of s.fastaPaths) expect(f.startsWith('/')).toBe(true);
      }
    });
  }
});
