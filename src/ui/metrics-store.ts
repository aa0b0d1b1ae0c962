// The per-step metrics of the run the Train screen shows, in their own zustand store: the worker
// sends one record per optimizer step, and only the chart components subscribe here, so a step
// re-renders the charts and nothing else of the studio. A resumed run recomputes the steps after
// its checkpoint; a record for a step already held replaces it and the ones after it.
import { create } from 'zustand';
import type { StepMetrics } from '../engine/train/metrics.ts';

interface MetricsState {
  /** The run the points belong to, or null. */
  runId: string | null;
  points: StepMetrics[];
  /** Shows `points` of `runId` (stored metrics of a run, or none). */
  reset: (runId: string | null, points: StepMetrics[]) => void;
  /** Adds one step's record of the shown run. */
  push: (m: StepMetrics) => void;
}

/** `points` with `m` added in step order: records of its step and later ones are replaced. */
export function withStep(points: readonly StepMetrics[], m: StepMetrics): StepMetrics[] {
  const last = points.length > 0 ? points[points.length - 1] : null;
  if (!last || last.step < m.step) return [...points, m];
  return [...points.filter((p) => p.step < m.step), m];
}

export const useMetrics = create<MetricsState>((set, get) => ({
  runId: null,
  points: [],
  reset(runId, points) {
    set({ runId, points: [...points].sort((a, b) => a.step - b.step) });
  },
  push(m) {
    set({ points: withStep(get().points, m) });
  },
}));
