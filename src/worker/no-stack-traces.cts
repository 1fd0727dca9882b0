/**
 * The entry of the Temporal SDK's workflow threads when workflow stack traces are off (the default;
 * `--workflow-stack-traces` keeps them): src/worker.ts starts this file instead of the SDK's thread file, whose
 * path comes as the thread's first argument, and this file loads it after the change below. The SDK collects a stack for every promise workflow code
 * creates, through a V8 promise hook, only so that the `__stack_trace` query (the Web UI's "Stack Trace" tab)
 * can answer. That capture was about 40 % of a replay's profile (docs/architecture.md, "Replay budget").
 * The SDK treats the hook as optional: when creating it throws, it answers that query with "Workflow stack
 * traces are not enabled on this worker" and runs workflows as before. So the SDK's own call, and only it,
 * is refused here; Node's AsyncLocalStorage, which the SDK's cancellation scopes use, keeps its hooks.
 */
import v8 from 'node:v8';

const SDK_CALLER = /[\\/]@temporalio[\\/]worker[\\/]lib[\\/]workflow[\\/]vm-shared\.js/;
/** The SDK's console line on refusal: said once in docs, not once per thread on the terminal. */
const SDK_WARNING = 'v8.promiseHooks.createHook is not available; stack trace collection will be disabled.';

const hooks = v8.promiseHooks;
const create = hooks.createHook.bind(hooks);
hooks.createHook = (callbacks) => {
  if (SDK_CALLER.test(new Error().stack ?? '')) throw new Error('fetchquant: workflow stack traces are off');
  return create(callbacks);
};

const warn = console.warn.bind(console);
console.warn = (...args: unknown[]) => {
  if (args.length === 1 && args[0] === SDK_WARNING) return;
  warn(...args);
};

// The SDK's own thread entry, unchanged (src/worker.ts passes its path).
const sdkThread = process.argv[2];
if (!sdkThread) throw new Error('no-stack-traces: the SDK workflow thread file was not passed');
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS thread entry loading the SDK's, by path
require(sdkThread);
