/**
 * kallisto's -t and the number of kallisto jobs at once when the user does not set them (src/cores.ts): every
 * core busy, never more kallisto threads than cores, and a value the user gave always wins.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from '@jest/globals';
import { cgroupCpuLimit, decideQuantThreads, hostCores } from '../../src/cores.js';

describe('quant threads from cores', () => {
  it('unset: jobs x threads fills the cores without exceeding them', () => {
    expect(decideQuantThreads(1, {})).toEqual({ kallistoThreads: 1, quantThreads: 1 });
    expect(decideQuantThreads(2, {})).toEqual({ kallistoThreads: 1, quantThreads: 2 });
    expect(decideQuantThreads(4, {})).toEqual({ kallistoThreads: 2, quantThreads: 2 });
    expect(decideQuantThreads(16, {})).toEqual({ kallistoThreads: 4, quantThreads: 4 });
    expect(decideQuantThreads(64, {})).toEqual({ kallistoThreads: 8, quantThreads: 8 });
    for (let c = 1; c <= 256; c++) {
      const p = decideQuantThreads(c, {});
      expect(p.kallistoThreads * p.quantThreads).toBeLessThanOrEqual(c);
      // saturated: one more job would oversubscribe
      expect((p.quantThreads + 1) * p.kallistoThreads).toBeGreaterThan(c);
    }
  });

  it('a value the user set wins; the other follows from the cores', () => {
    expect(decideQuantThreads(16, { kallistoThreads: 8 })).toEqual({ kallistoThreads: 8, quantThreads: 2 });
    expect(decideQuantThreads(16, { quantThreads: 2 })).toEqual({ kallistoThreads: 8, quantThreads: 2 });
    expect(decideQuantThreads(2, { kallistoThreads: 4 })).toEqual({ kallistoThreads: 4, quantThreads: 1 });
    expect(decideQuantThreads(2, { quantThreads: 10 })).toEqual({ kallistoThreads: 1, quantThreads: 10 });
    expect(decideQuantThreads(2, { kallistoThreads: 3, quantThreads: 7 })).toEqual({ kallistoThreads: 3, quantThreads: 7 });
    expect(decideQuantThreads(2, { kallistoThreads: null, quantThreads: null })).toEqual({ kallistoThreads: 1, quantThreads: 2 });
  });

  it('cgroup v2 cpu.max: a quota counts as whole cores, rounded up; none means no limit', () => {
    expect(cgroupCpuLimit('max 100000\n')).toBeNull();
    expect(cgroupCpuLimit('150000 100000\n')).toBe(2);
    expect(cgroupCpuLimit('50000 100000')).toBe(1);
    expect(cgroupCpuLimit('400000 100000')).toBe(4);
    expect(cgroupCpuLimit(null)).toBeNull();
    expect(cgroupCpuLimit('garbage')).toBeNull();
  });

  it('hostCores follows the affinity mask (taskset)', () => {
    const script = `import('${new URL('../../src/cores.js', import.meta.url).href}').then((m) => console.log(m.hostCores()))`;
    const one = execFileSync('taskset', ['-c', '0', process.execPath, '-e', script], { encoding: 'utf8' }).trim();
    expect(Number(one)).toBe(1);
    expect(hostCores()).toBeGreaterThanOrEqual(1);
  });
});
