// The determinism line, enforced: workflow code may not import Node built-ins, process runners,
// disk probes or activity implementations (types only). Anything else non-deterministic is banned by the
// Temporal bundler at worker start; this rule makes the mistake an error in `npm test` first.
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tools/**', 'output/**', 'bench/results/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // CommonJS on purpose (a -r preload, bench/b5/probe.cjs): require is how it imports.
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', process: 'readonly', module: 'writable' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Type-aware, as in Temporal's samples: a promise nobody awaits is a step that may never run, or an
    // error nobody sees (in a workflow, a command issued out of order). Mark the deliberate ones with `void`.
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
    },
  },
  {
    files: ['src/workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [
            ...nodeBuiltins.map((name) => ({ name, message: 'Workflow code must be deterministic: do I/O in an activity.' })),
            { name: 'execa', message: 'Processes run in activities, never in workflows.' },
            { name: 'yaml', message: 'Config parsing runs in activities.' },
            { name: '@temporalio/activity', message: 'Workflows cannot use the activity context.' },
            { name: '@temporalio/worker', message: 'Workflows cannot import the worker.' },
            { name: '@temporalio/client', message: 'Workflows cannot use the client.' },
          ],
          patterns: [
            {
              group: ['**/activities/*', '!**/activities/contract.js', '**/tools/*', '**/mirror/*', '**/server/*', '**/config/species.js', '**/config/discover.js'],
              message: 'Workflows may import activity implementations as types only (import type).',
              allowTypeImports: true,
            },
          ],
        },
      ],
    },
  },
);
