// abortable (src/tools/http.ts) with a signal aborted before the call: the promise it abandons may still reject
// (the pacer's source-order query, cut when the client closes at shutdown), and a rejection nobody handles ends
// Node with exit 1. Run in a child process: that is where an unhandled rejection shows as the exit code.
import { describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';

const http = fileURLToPath(new URL('../../src/tools/http.js', import.meta.url));

describe('abortable', () => {
  it('an already aborted signal rejects at once, and the abandoned promise rejecting later does not end the process', async () => {
    const script = `
      const { abortable } = await import(${JSON.stringify(http)});
      const ac = new AbortController();
      ac.abort(new Error('the worker is shutting down'));
      const late = new Promise((_, reject) => setTimeout(() => reject(new Error('client closed')), 20));
      const why = await abortable(late, ac.signal).then(() => 'resolved', (e) => e.message);
      await new Promise((r) => setTimeout(r, 100));
      console.log(why + '; still running');`;
    const r = await execa('node', ['--input-type=module', '-e', script], { reject: false });
    expect({ exit: r.exitCode, stdout: r.stdout, stderr: r.stderr }).toEqual({ exit: 0, stdout: 'the worker is shutting down; still running', stderr: '' });
  });
});
