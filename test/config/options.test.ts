/**
 * The one option declaration (src/config/schema.ts) drives everything: every option, a new one included, gets
 * bad values generated from its kind and range through the CLI parser and the workflow's input check (flag or
 * field and value named), its default passes its own check, help shows it (demo's with demo's defaults), and
 * README's tables are what the declaration generates.
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { commandFlags, parseCommand, usage } from '../../src/cli/args.js';
import { DEMO_DEFAULTS } from '../../src/cli/demo-defaults.js';
import { optionTables, withOptionTables } from '../../src/config/options-doc.js';
import { BATCH_OPTIONS, CLI_OPTIONS, COMMAND_NAMES, flagOf, InvalidInputError, resolveBatchOptions, shownDefault, type Opt, type Problem } from '../../src/config/schema.js';

const ALL = { ...BATCH_OPTIONS, ...CLI_OPTIONS } as Record<string, Opt>;

/** Values each option must refuse: an empty one, and just outside its range. */
function badValues(o: Opt): string[] {
  if (!o.arg || o.arg === 'TEXT' || o.arg.startsWith('HOST') || o.arg === 'NAME') return [];
  const bad = [''];
  const range = /^(-?[\d.]+)\.\.(-?[\d.]+)$/.exec(o.range);
  if (range) bad.push(String(Number(range[1]) - 1), String(Number(range[2]) + 1), 'x');
  return bad;
}

function problemsOf(cmd: (typeof COMMAND_NAMES)[number], args: string[]): Problem[] {
  try {
    parseCommand(cmd, args, {});
  } catch (err) {
    if (err instanceof InvalidInputError) return err.problems;
    throw err;
  }
  return [];
}

describe('the option declaration', () => {
  it('every option refuses bad values on the command line, naming the flag and the value as typed', () => {
    let checked = 0;
    for (const [key, o] of Object.entries(ALL)) {
      const cmd = o.commands?.[0] ?? 'run';
      const flag = flagOf(key, o);
      for (const v of badValues(o)) {
        const problems = problemsOf(cmd, [`${flag}=${v}`]);
        expect(problems).toEqual([{ where: 'command line', field: flag, value: v, message: expect.stringMatching(/^must |^a leading/) }]);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(80);
  });

  it("every batch option refuses the same values in the workflow's JSON input, naming the field", () => {
    for (const [key, o] of Object.entries(BATCH_OPTIONS as Record<string, Opt>)) {
      for (const v of badValues(o)) {
        const { problems } = resolveBatchOptions({ [key]: v }, 'batch input');
        expect(problems).toEqual([{ where: 'batch input', field: key, value: v, message: expect.stringMatching(/^must /) }]);
      }
    }
  });

  it('every default passes its own check unchanged, and unknown fields are named', () => {
    for (const [key, o] of Object.entries(ALL)) {
      if (o.default === null) continue;
      expect([key, o.check(o.default)]).toEqual([key, { value: o.default }]);
    }
    const { options, problems } = resolveBatchOptions({ totalThreads: '8', totlThreads: 3 });
    expect(options.totalThreads).toBe(8);
    expect(problems).toEqual([{ where: 'input', field: 'totlThreads', value: 3, message: expect.stringMatching(/^unknown option \(known: configDir, /) }]);
  });

  it("each command's help lists each of its flags with its default; demo's shows the defaults demo uses", () => {
    for (const cmd of COMMAND_NAMES) {
      const help = usage(cmd).split('\n');
      for (const f of commandFlags(cmd)) if (!help.some((l) => l.startsWith(`  ${f.flag} `))) throw new Error(`${cmd} --help lacks ${f.flag}`);
    }
    const demo = usage('demo').split('\n');
    for (const [key, value] of Object.entries(DEMO_DEFAULTS)) {
      const line = demo.find((l) => l.startsWith(`  ${flagOf(key, ALL[key]!)} `));
      expect(line).toContain(`default ${shownDefault({ default: value })})`);
    }
    expect(usage('run')).toContain('--total-threads N');
    expect(usage('run').split('\n').find((l) => l.startsWith('  --total-threads '))).toContain('default 24)');
  });

  it("README's option tables are the ones the declaration generates (npm run docs:options)", () => {
    const readme = readFileSync(join(process.cwd(), 'README.md'), 'utf8');
    expect(withOptionTables(readme)).toBe(readme);
    for (const key of Object.keys(BATCH_OPTIONS)) expect(optionTables()).toContain(`| \`${key}\` |`);
  });

  it('dist/src/cli.js runs as a program (executable, with its shebang) after a build', async () => {
    const r = await execa(join(process.cwd(), 'dist', 'src', 'cli.js'), ['--help'], { reject: false });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('usage: fetchquant <command>');
  });
});
