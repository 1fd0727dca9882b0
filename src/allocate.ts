/**
 * Download-slot allocation (docs/architecture.md §5.1), pure so the workflow, the activity and property tests share it.
 *
 * Water-filling: slots are spread evenly over active species, a species never gets more than the runs it
 * still has to download, slots a species cannot use flow to the others, and the remainder of an uneven
 * split goes to the species with the most remaining runs (ties: config order). With more species than
 * slots only `total` species are active, preferring ones already running so in-flight work is not starved.
 */

export interface AllocationInput {
  speciesId: string;
  /** runs not yet downloaded and verified (queued + downloading) */
  remaining: number;
  /** slots it holds now; > 0 marks it as already active */
  current?: number;
}

export function allocate(total: number, species: readonly AllocationInput[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of species) out[s.speciesId] = 0;
  if (!Number.isFinite(total) || total < 1) return out;

  const order = new Map(species.map((s, i) => [s.speciesId, i]));
  const eligible = species.filter((s) => s.remaining > 0);
  let active = eligible;
  if (eligible.length > total) {
    const running = eligible.filter((s) => (s.current ?? 0) > 0);
    const waiting = eligible.filter((s) => !((s.current ?? 0) > 0));
    active = [...running, ...waiting].slice(0, total);
    active.sort((a, b) => order.get(a.speciesId)! - order.get(b.speciesId)!);
  }

  let slots = total;
  let open = active.filter((s) => s.remaining > 0);
  while (slots > 0 && open.length > 0) {
    const share = Math.floor(slots / open.length);
    if (share === 0) {
      // Fewer slots than open species: one more each to those with the most left to download.
      const byNeed = [...open].sort(
        (a, b) => b.remaining - out[b.speciesId]! - (a.remaining - out[a.speciesId]!) || order.get(a.speciesId)! - order.get(b.speciesId)!,
      );
      for (const s of byNeed.slice(0, slots)) out[s.speciesId]! += 1;
      slots = 0;
      break;
    }
    for (const s of open) {
      const give = Math.min(share, s.remaining - out[s.speciesId]!);
      out[s.speciesId]! += give;
      slots -= give;
    }
    open = open.filter((s) => out[s.speciesId]! < s.remaining);
  }
  return out;
}
