/**
 * Ctrl-C and `kill`: the exit code says which signal stopped a command (SIGINT 130, SIGTERM 143, as a shell
 * reports a process killed by it), whatever else happened meanwhile — a batch that completed during the
 * shutdown still exits with the signal's code. The handlers are installed once, before anything is started,
 * and never removed: a signal during start-up or during the final clean-up is recorded too (the default
 * action would kill the process and orphan a detached server). A second signal exits at once.
 */
export const SIGNAL_EXIT: Readonly<Record<'SIGINT' | 'SIGTERM', number>> = { SIGINT: 130, SIGTERM: 143 };

let received: 'SIGINT' | 'SIGTERM' | null = null;
let installed = false;
const listeners = new Set<(signal: 'SIGINT' | 'SIGTERM') => void>();

function handle(signal: 'SIGINT' | 'SIGTERM'): void {
  if (received) process.exit(SIGNAL_EXIT[received]);
  received = signal;
  for (const l of [...listeners]) l(signal);
}

export function watchSignals(): void {
  if (installed) return;
  installed = true;
  process.on('SIGINT', () => handle('SIGINT'));
  process.on('SIGTERM', () => handle('SIGTERM'));
}

/** The exit code of the signal received so far, or null. */
export function interruptedCode(): number | null {
  return received ? SIGNAL_EXIT[received] : null;
}

/** Calls fn on the first signal (at once, asynchronously, if one came already); returns the unsubscribe. */
export function onInterrupt(fn: (signal: 'SIGINT' | 'SIGTERM') => void): () => void {
  watchSignals();
  if (received) {
    const s = received;
    queueMicrotask(() => fn(s));
    return () => undefined;
  }
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Resolves on the first signal. */
export function nextInterrupt(): Promise<'SIGINT' | 'SIGTERM'> {
  return new Promise((resolve) => onInterrupt(resolve));
}
