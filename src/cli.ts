#!/usr/bin/env node
/** fetchquant: command dispatch, help and exit codes (0 ok, 1 samples failed, 2 bad input, 3 environment). */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { COMMANDS, EXIT, exitCodeOf, parseCommand, usage, UsageError } from './cli/args.js';
import type { Command } from './config/schema.js';
import type { PlanSpecies } from './plan/plan.js';

const out = (l: string) => process.stdout.write(`${l}\n`);

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
  if (cmd && LONG_RUNNING.includes(cmd)) (await import('./cli/signals.js')).watchSignals();
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
    const { values, positionals } = parseCommand(cmd as Command, rest);
    if (values.help) {
      out(usage(cmd as Command));
      return EXIT.ok;
    }
    // SDK logs go to a file (named at the end); the terminal gets progress, problems and the summary.
    // `run` installs it once its input is checked (below), while the server starts.
    if (['demo', 'worker'].includes(cmd)) await (await import('./log.js')).installCliLogging();
    switch (cmd) {
      case 'run': {
        const { batchOptionsFromFlags } = await import('./cli/args.js');
        const { validateConfigs } = await import('./cli/validate.js');
        const options = batchOptionsFromFlags(values);
        // Bad input stops here, before anything starts: configs, tools, each species' runs and what is done.
        let plan: PlanSpecies[] | null = null;
        if (values['skip-plan']) await validateConfigs(options);
        else plan = await (await import('./cli/plan.js')).planInput(options, { checkTools: true });
        performance.mark('input checked');
        // Ctrl-C while the configs were read: nothing was started, stop here.
        const stopped = (await import('./cli/signals.js')).interruptedCode();
        if (stopped !== null) return stopped;
        // Start-up (issue 15): the embedded server boots (or the configured one is reached) while the SDK's
        // worker modules load and its runtime starts, instead of one after the other (docs/architecture.md).
        const { openSession, closeSession } = await import('./cli/context.js');
        const session = openSession({ ...values, 'output-dir': options.outputDir }, 'start-embedded', { searchAttributes: true, out });
        session.catch(() => undefined); // runBatch awaits it and reports its failure
        let runBatch: typeof import('./cli/run.js').runBatch;
        try {
          await (await import('./log.js')).installCliLogging();
          performance.mark('logging installed');
          ({ runBatch } = await import('./cli/run.js'));
        } catch (err) {
          await closeSession(session);
          throw err;
        }
        // The plan summary (every run asked at its sources) is printed while the batch already runs.
        return await runBatch(values, options, { ...(plan ? { plan } : {}), session });
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
      case 'resume-parked':
        return await (await import('./cli/control.js')).cmdResumeParked(values, out);
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
      case 'plan': {
        const { batchOptionsFromFlags } = await import('./cli/args.js');
        return await (await import('./cli/plan.js')).cmdPlan(values, batchOptionsFromFlags(values), out);
      }
      case 'report':
        return await (await import('./cli/report.js')).cmdReport(values, out);
    }
    return EXIT.badInput;
  } catch (err) {
    return reportError(err);
  }
}

function reportError(err: unknown): number {
  const e = err as Error;
  const { code, expected } = exitCodeOf(err);
  if (!expected) process.stderr.write(`fetchquant: ${e.stack ?? e.message}\n`);
  else if (code === EXIT.badInput && !(err instanceof UsageError)) process.stderr.write(`fetchquant: invalid input, nothing was started:\n${e.message}\n`);
  else process.stderr.write(`fetchquant: ${e.message}\n`);
  return code;
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
