#!/usr/bin/env node
/** fetchquant: command dispatch, help and exit codes (0 ok, 1 samples failed, 2 bad input, 3 environment). */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { batchFlagsHelp, commandFlagsHelp, CONNECTION_HELP, EnvError, EXIT, InputProblems, parseCommand, UsageError } from './cli/args.js';

const COMMANDS: Record<string, string> = {
  run: 'the main job: embedded server (unless TEMPORAL_ADDRESS), worker and batch, with progress; re-run resumes',
  worker: 'a worker only, for extra hosts or a real cluster',
  start: 'start a batch on an existing server; prints its id and Web UI link',
  status: 'progress of a batch, once',
  watch: 'live progress bars per species',
  threads: 'threads <n>: change total threads of a running batch',
  pause: 'stop starting new downloads (samples in flight finish)',
  resume: 'undo pause',
  cancel: 'cancel a batch; samples clean up their partial files',
  history: 'history <RUN>: every stage, attempt, host, error and timing of a run',
  cleanup: 'cleanup <reads dirs>: list orphaned partial downloads; --execute removes them',
  report: 'summary TSV and timeline picture of a batch',
  server: 'only the local dev server, with the search attributes registered',
  setup: 'register search attributes and retention on an existing namespace',
  demo: 'synthetic three-species batch served by a local mirror, end to end, offline',
};

const out = (l: string) => process.stdout.write(`${l}\n`);

function usage(cmd?: string): string {
  if (!cmd) {
    return [
      'usage: fetchquant <command> [options]   (fetchquant <command> --help)',
      '',
      ...Object.entries(COMMANDS).map(([c, d]) => `  ${c.padEnd(9)} ${d}`),
      '',
      'exit codes: 0 all samples done or skipped; 1 some samples failed; 2 bad input or usage; 3 environment',
    ].join('\n');
  }
  const batchCmds = ['run', 'start', 'demo'];
  return [
    `usage: fetchquant ${cmd} [options]`,
    COMMANDS[cmd] ?? '',
    '',
    ...(batchCmds.includes(cmd) ? ['Batch options:', batchFlagsHelp(), ''] : []),
    ...(commandFlagsHelp(cmd) ? [commandFlagsHelp(cmd), ''] : []),
    '  --host-id ID     this host\'s id (FETCHQUANT_HOST_ID, default the hostname)',
    '  --ui-url URL     Web UI base for links (TEMPORAL_UI_URL)',
    '',
    CONNECTION_HELP,
  ].join('\n');
}

async function quietSdkLogs(): Promise<void> {
  const { Runtime, DefaultLogger } = await import('@temporalio/worker');
  const level = (process.env.FETCHQUANT_LOG_LEVEL ?? 'WARN').toUpperCase() as 'WARN';
  try {
    // Core's warnings are its gRPC retries ("poll_activity_task_queue retried 6 times", dozens a second)
    // while a server restarts: expected and survived, so by default only its errors reach the terminal.
    const core = level === 'WARN' ? 'ERROR' : level;
    Runtime.install({ logger: new DefaultLogger(level), telemetryOptions: { logging: { filter: { core, other: 'ERROR' } } } });
  } catch {
    // installed already (main() called twice in one process)
  }
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const code = await command(cmd, rest);
  // A command stopped by a signal exits with that signal's code, whatever it was doing when it came (SIGINT
  // 130, SIGTERM 143); a batch that completed during the shutdown is no exception.
  return (await import('./cli/signals.js')).interruptedCode() ?? code;
}

/** Commands that start something long-lived: their signal handlers go in before anything starts. */
const LONG_RUNNING = ['run', 'demo', 'worker', 'server'];

async function command(cmd: string | undefined, rest: string[]): Promise<number> {
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    out(usage());
    return cmd ? EXIT.ok : EXIT.badInput;
  }
  if (!(cmd in COMMANDS)) {
    process.stderr.write(`fetchquant: unknown command ${JSON.stringify(cmd)}\n${usage()}\n`);
    return EXIT.badInput;
  }
  try {
    // Every flag, value and positional of the command is checked here, before anything connects or starts.
    const { values, positionals } = parseCommand(cmd, rest);
    if (values.help) {
      out(usage(cmd));
      return EXIT.ok;
    }
    if (LONG_RUNNING.includes(cmd)) (await import('./cli/signals.js')).watchSignals();
    if (['run', 'demo', 'worker'].includes(cmd)) await quietSdkLogs();
    switch (cmd) {
      case 'run': {
        const { batchOptionsFromFlags } = await import('./cli/args.js');
        const { validateConfigs } = await import('./cli/validate.js');
        const options = batchOptionsFromFlags(values);
        await validateConfigs(options);
        const { runBatch } = await import('./cli/run.js');
        return await runBatch(values, options);
      }
      case 'demo':
        return await (await import('./cli/demo.js')).cmdDemo(values, out);
      case 'start': {
        const { batchOptionsFromFlags } = await import('./cli/args.js');
        const { validateConfigs } = await import('./cli/validate.js');
        await validateConfigs(batchOptionsFromFlags(values));
        return await (await import('./cli/control.js')).cmdStart(values, out);
      }
      case 'status':
      case 'watch':
        return await (await import('./cli/control.js')).cmdStatus(values, out, cmd === 'watch');
      case 'threads':
      case 'pause':
      case 'resume':
      case 'cancel':
        return await (await import('./cli/control.js')).cmdControl(cmd, values, positionals, out);
      case 'history':
        return await (await import('./cli/history.js')).cmdHistory(values, positionals, out);
      case 'cleanup':
        return await (await import('./cli/misc.js')).cmdCleanup(values, positionals, out);
      case 'server':
        return await (await import('./cli/misc.js')).cmdServer(values, out);
      case 'setup':
        return await (await import('./cli/misc.js')).cmdSetup(values, out);
      case 'worker':
        return await (await import('./cli/misc.js')).cmdWorker(values, out);
      case 'report':
        return await (await import('./cli/report.js')).cmdReport(values, out);
    }
    return EXIT.badInput;
  } catch (err) {
    return reportError(err);
  }
}

function reportError(err: unknown): number {
  const e = err as Error & { problems?: unknown[]; type?: string };
  if (err instanceof UsageError) {
    process.stderr.write(`fetchquant: ${e.message}\n`);
    return EXIT.badInput;
  }
  if (err instanceof InputProblems || e.name === 'InvalidInputError') {
    process.stderr.write(`fetchquant: invalid input, nothing was started:\n${e.message}\n`);
    return EXIT.badInput;
  }
  if (err instanceof EnvError || e.name === 'EnvironmentError') {
    process.stderr.write(`fetchquant: ${e.message}\n`);
    return EXIT.environment;
  }
  if (e.type === 'ToolMissing') {
    process.stderr.write(`fetchquant: ${e.message}\n`);
    return EXIT.environment;
  }
  process.stderr.write(`fetchquant: ${e.stack ?? e.message}\n`);
  return EXIT.environment;
}

function invokedDirectly(): boolean {
  try {
    return Boolean(process.argv[1]) && realpathSync(process.argv[1]!) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}
if (invokedDirectly()) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`fetchquant: ${(err as Error).stack}\n`);
      process.exit(EXIT.environment);
    },
  );
}
