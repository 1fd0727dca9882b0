/**
 * The README's option tables, generated from the schema's declaration (`npm run docs:options` rewrites them;
 * test/config/options.test.ts fails when README.md differs).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BATCH_OPTIONS, CLI_OPTIONS, COMMAND_NAMES, flagOf, shownDefault, type Opt } from './schema.js';

export const BEGIN = '<!-- options:begin (generated from src/config/schema.ts by `npm run docs:options`; do not edit) -->';
export const END = '<!-- options:end -->';

const cell = (s: string) => s.replaceAll('|', '\\|').replaceAll('<', '&lt;');

function rows(opts: Record<string, Opt>, json: boolean): string[] {
  return Object.entries(opts).map(([key, o]) => {
    const flag = `\`${flagOf(key, o)}${o.arg ? ` ${o.arg}` : ''}\``;
    const dflt = o.show ?? (o.default === null || !o.arg ? '' : `\`${shownDefault(o)}\``);
    const which = json ? `\`${key}\`` : (o.commands?.length === COMMAND_NAMES.length ? 'all' : (o.commands ?? []).join(', '));
    return `| ${cell(flag)} | ${which} | ${cell(dflt)} | ${o.range} | ${cell(o.help)} |`;
  });
}

/** The generated block, markers included. */
export function optionTables(): string {
  return [
    BEGIN,
    '| flag | JSON field | default | range | meaning |',
    '|---|---|---|---|---|',
    ...rows(BATCH_OPTIONS, true),
    '',
    'Flags of the commands themselves (not batch input):',
    '',
    '| flag | commands | default | range | meaning |',
    '|---|---|---|---|---|',
    ...rows(CLI_OPTIONS, false),
    END,
  ].join('\n');
}

/** `readme` with its generated block replaced by the current one. */
export function withOptionTables(readme: string): string {
  const a = readme.indexOf(BEGIN.slice(0, BEGIN.indexOf(' (')));
  const b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error(`README.md has no "${BEGIN}" ... "${END}" block`);
  return readme.slice(0, a) + optionTables() + readme.slice(b + END.length);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2] ?? 'README.md';
  const before = readFileSync(file, 'utf8');
  const after = withOptionTables(before);
  if (after !== before) writeFileSync(file, after);
  process.stdout.write(`${file}: option tables ${after === before ? 'already current' : 'rewritten'}\n`);
}
