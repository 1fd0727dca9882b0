/**
 * Fault injection for the mirror: what each archive really does to clients (5xx, 429, resets, short
 * bodies, flipped bytes, ignored Range, stalls, HTML error pages, unknown runs), per run and countable,
 * so a test can say "the first two requests for SRR9000001_2 fail, then it works".
 */

/** Which requests a fault applies to. Default (no target): the run's files, fastq and sra. */
export type FaultTarget = 'api' | 'fastq' | 'sra' | 'ena-api' | 'sra-api';
interface Scope {
  /** 'api' = ENA portal and SRA locator; 'ena-api' / 'sra-api' only one of them */
  target?: FaultTarget;
  /** only this mate's fastq file */
  mate?: 1 | 2;
}

export type Fault = Scope &
  (
    | { kind: 'status'; status: number; times?: number }
    | { kind: 'retry-after'; seconds: number; times?: number }
    | { kind: 'reset'; afterBytes: number; times?: number }
    | { kind: 'truncate'; bytes: number; times?: number }
    | { kind: 'wrong-bytes'; times?: number }
    | { kind: 'ignore-range'; times?: number }
    | { kind: 'stall'; afterBytes: number; ms: number; times?: number }
    | { kind: 'html'; times?: number }
    /** accepts the request and sends nothing, not even headers, for ms (then drops the connection) */
    | { kind: 'no-head'; ms: number; times?: number }
    | { kind: 'unknown' }
    | { kind: 'sra-only' }
    | { kind: 'corrupt-sra' }
    /** ENA lists a single-end run's one file as RUN_1.fastq.gz (read_docs: "RUN.fastq.gz or RUN_1.fastq.gz") */
    | { kind: 'single-as-mate1' }
    /** the locator offers only the SRA Lite copy (RUN.lite, noqual) */
    | { kind: 'sra-lite' }
    /** the locator's only location needs payment (payRequired) */
    | { kind: 'sra-pay-required' }
    /** the locator's only location needs cloud credentials (ceRequired) */
    | { kind: 'sra-ce-required' }
    /** the locator's Google Cloud location needs no credentials (as seen from inside GCP) */
    | { kind: 'sra-gs-free' }
    /** the locator answers HTTP 200 with {"version":"2.1","status":500,"message":…} and no result */
    | { kind: 'locator-error' }
    /** ENA no longer knows this field (a rename): any request for it gets 400 "Invalid fieldName(s) supplied" */
    | { kind: 'ena-reject-field'; field: string }
    /** ENA declares this size for each of the run's files (fastq_bytes), whatever they hold */
    | { kind: 'declared-bytes'; bytes: number }
    /**
     * the run is at SRA but reaches ENA only `seconds` after this plan was set (archives synchronise runs
     * with a delay): until then ENA answers as for an unknown run
     */
    | { kind: 'ena-lag'; seconds: number }
  );

/** Faults per run accession; the key '*' applies to every request (search included) after the run's own. */
export type FaultPlan = Record<string, Fault[]>;

/** Faults that describe the archive's state rather than one request; never consumed. */
export type StateFault = Extract<
  Fault,
  {
    kind: 'unknown' | 'sra-only' | 'corrupt-sra' | 'single-as-mate1' | 'sra-lite' | 'sra-pay-required' | 'sra-ce-required' | 'sra-gs-free' | 'locator-error'
      | 'ena-reject-field' | 'declared-bytes' | 'ena-lag';
  }
>;
export type RequestFault = Exclude<Fault, StateFault>;

/** What a request is, for matching. */
export interface RequestKind {
  kind: 'ena-api' | 'sra-api' | 'fastq' | 'sra';
  /** mate of a fastq file (0 for single or orphan reads) */
  mate?: 0 | 1 | 2;
}

const STATE_KINDS = new Set([
  'unknown', 'sra-only', 'corrupt-sra', 'single-as-mate1', 'sra-lite', 'sra-pay-required', 'sra-ce-required', 'sra-gs-free', 'locator-error', 'ena-reject-field', 'declared-bytes',
  'ena-lag',
]);

function targetMatches(target: FaultTarget | undefined, req: RequestKind): boolean {
  switch (target) {
    case undefined:
      return req.kind === 'fastq' || req.kind === 'sra';
    case 'api':
      return req.kind === 'ena-api' || req.kind === 'sra-api';
    default:
      return target === req.kind;
  }
}

/** Holds a plan and how many uses each countable fault has left. */
export class FaultBook {
  private plan: FaultPlan = {};
  private left = new Map<Fault, number>();
  /** faults applied so far, per run and kind: tests check a fault really fired */
  readonly fired: Record<string, Record<string, number>> = {};
  /** when the plan was set (ms, Date.now()): lags count from here */
  setAt = Date.now();

  set(plan: FaultPlan | undefined): void {
    for (const [run, faults] of Object.entries(plan ?? {})) {
      if (run !== '*' && !/^[SED]RR[0-9]{6,}$/.test(run)) throw new Error(`fault plan: ${JSON.stringify(run)} is not a run accession or '*'`);
      if (!Array.isArray(faults)) throw new Error(`fault plan: faults of ${run} must be a list`);
    }
    this.plan = plan ?? {};
    this.setAt = Date.now();
    this.left = new Map();
    for (const faults of Object.values(this.plan)) {
      for (const f of faults) if ('times' in f && f.times !== undefined) this.left.set(f, f.times);
    }
  }

  /** ENA does not have this run yet (an ena-lag that has not run out). */
  lagging(run: string): boolean {
    const lag = this.state(run, 'ena-lag');
    return lag !== undefined && Date.now() < this.setAt + lag.seconds * 1000;
  }

  hasState(run: string, kind: StateFault['kind']): boolean {
    return (this.plan[run] ?? []).some((f) => f.kind === kind);
  }

  /** The state fault of this kind set for the run (or for '*'), with its parameters. */
  state<K extends StateFault['kind']>(run: string, kind: K): Extract<StateFault, { kind: K }> | undefined {
    return [...(this.plan[run] ?? []), ...(this.plan['*'] ?? [])].find((f) => f.kind === kind) as Extract<StateFault, { kind: K }> | undefined;
  }

  /** The first fault with uses left that matches this request; consumes one use. */
  take(run: string | null, req: RequestKind): RequestFault | null {
    const lists = [run ? this.plan[run] ?? [] : [], this.plan['*'] ?? []];
    for (const list of lists) {
      for (const f of list) {
        if (STATE_KINDS.has(f.kind)) continue;
        if (!targetMatches(f.target, req)) continue;
        if (f.mate !== undefined && req.kind === 'fastq' && f.mate !== req.mate) continue;
        if (f.mate !== undefined && req.kind !== 'fastq') continue;
        const left = this.left.get(f);
        if (left !== undefined) {
          if (left <= 0) continue;
          this.left.set(f, left - 1);
        }
        const key = run ?? '*';
        this.fired[key] ??= {};
        this.fired[key][f.kind] = (this.fired[key][f.kind] ?? 0) + 1;
        return f as RequestFault;
      }
    }
    return null;
  }
}
