// The table of training runs: date, base model, method, dataset, steps, final losses, duration
// and status, newest first; each row's "Show" button picks the run whose details and downloads show.
import type { RunRecord } from '../worker/engine-api.ts';
import { METHODS } from '../worker/train-settings.ts';
import { badgeOf } from './TrainRunPanel.tsx';
import { formatDuration, formatInt } from './format.ts';

export function formatDate(ms: number): string {
  return new Date(ms).toLocaleString('en-GB', { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

export function loss(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(4);
}

const STATUS: Record<RunRecord['status'], string> = { running: 'Running', paused: 'Paused', completed: 'Completed', failed: 'Failed', cancelled: 'Cancelled' };

/** A run's status in words: a "running" record trains here, in another tab, or was interrupted. */
export function runStatusLabel(r: RunRecord, activeRunId: string | null, elsewhere: boolean): string {
  if (r.id === activeRunId) return 'Training here';
  if (r.status === 'running') return elsewhere ? 'Training in another tab' : 'Interrupted';
  return STATUS[r.status];
}

export function RunList({ runs, selected, onSelect, activeRunId, elsewhere }: { runs: RunRecord[]; selected: string | null; onSelect: (id: string) => void; activeRunId: string | null; elsewhere: boolean }) {
  return (
    <div className="table-scroll">
      <table className="grid runs" data-testid="run-list">
        <thead>
          <tr>
            <th scope="col">Started</th>
            <th scope="col">Base model</th>
            <th scope="col">Method</th>
            <th scope="col">Dataset</th>
            <th scope="col">Steps</th>
            <th scope="col">Train loss</th>
            <th scope="col">Val. loss</th>
            <th scope="col">Duration</th>
            <th scope="col">Status</th>
            <th scope="col">
              <span className="visually-hidden">Details</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {runs.map((r) => (
            <tr key={r.id} className={r.id === selected ? 'selected' : undefined} data-testid={`run-${r.id}`}>
              <td className="num">{formatDate(r.createdAt)}</td>
              <td>{r.model.name}</td>
              <td>{METHODS[r.settings.method]?.name ?? r.settings.method}</td>
              <td>{r.dataset.name}</td>
              <td className="num">
                {formatInt(r.step)}
                {r.totalSteps > 0 && r.totalSteps !== r.step ? ` of ${formatInt(r.totalSteps)}` : ''}
              </td>
              <td className="num">{loss(r.result?.trainLoss)}</td>
              <td className="num">{loss(r.result?.valLoss)}</td>
              <td className="num">{formatDuration(r.elapsedMs / 1000)}</td>
              <td>
                <span className={`badge ${badgeOf(r)}`}>{runStatusLabel(r, activeRunId, elsewhere)}</span>
              </td>
              <td className="actions">
                <button type="button" onClick={() => onSelect(r.id)} aria-pressed={r.id === selected} aria-label={`Show run ${r.id}`}>
                  Show
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
