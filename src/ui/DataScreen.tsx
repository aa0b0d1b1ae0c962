// The Data screen: a dataset file by drag and drop or the "Dataset" file input (or the sample
// dataset served with the studio), the import's progress, then its format settings, errors with
// line numbers, statistics and a token-level preview. A broken file shows its errors; the next
// file imports as usual.
import type { BadRow } from '../engine/errors.ts';
import { DatasetPreview } from './DatasetPreview.tsx';
import { DatasetSettings } from './DatasetSettings.tsx';
import { DatasetStats } from './DatasetStats.tsx';
import { DropZone } from './DropZone.tsx';
import { ErrorBox } from './ErrorBox.tsx';
import { Progress } from './Progress.tsx';
import { useData } from './data-store.ts';
import { formatBytes, formatInt, plural } from './format.ts';

export const SAMPLE_DATASET = 'datasets/alpaca-facts.jsonl';

export function DataScreen() {
  const result = useData((s) => s.result);
  return (
    <>
      <DatasetPicker />
      {result?.error?.name === 'CancelledError' && (
        <p className="muted" role="status" data-testid="import-cancelled">
          The import was cancelled; choose the file again to import it.
        </p>
      )}
      {result?.error && result.error.name !== 'CancelledError' && <DatasetError />}
      <DatasetSettings />
      {result?.stats && <DatasetStats stats={result.stats} maxLength={result.maxLength} tokenizerName={result.tokenizerName} />}
      {result?.stats && result.stats.errors.length > 0 && (
        <section className="card" aria-label="Skipped rows">
          <RowList title="Skipped rows" rows={result.stats.errors} total={result.stats.skippedRows} />
        </section>
      )}
      {result?.stats && result.preview.length > 0 && <DatasetPreview examples={result.preview} />}
    </>
  );
}

function DatasetPicker() {
  const importFile = useData((s) => s.importFile);
  const importing = useData((s) => s.importing);
  const cancel = useData((s) => s.cancel);
  const file = useData((s) => s.file);
  const p = importing?.progress;

  const loadSample = async () => {
    const res = await fetch(`${import.meta.env.BASE_URL}${SAMPLE_DATASET}`);
    const blob = await res.blob();
    void importFile(new File([blob], SAMPLE_DATASET.split('/').pop() as string, { type: 'application/jsonl' }));
  };

  return (
    <section className="card" aria-labelledby="dataset-title">
      <h2 id="dataset-title">Dataset file</h2>
      <DropZone
        inputLabel="Dataset"
        onFiles={(files) => void importFile(files[0])}
        accept=".jsonl,.ndjson,.json,.csv,.tsv,.tab,.parquet,.pq,.txt,.text,.md"
        testId="dataset-drop"
        prompt={
          <>
            Drop an instruction dataset here: JSON Lines, JSON, CSV, TSV, Parquet or text, with Alpaca, ShareGPT, messages, prompt/completion,
            text or token-id rows. It is read in this browser only.
          </>
        }
      />
      <button type="button" onClick={() => void loadSample()} disabled={importing !== null}>
        Use the sample dataset (50 Alpaca rows)
      </button>
      {file && !importing && (
        <p className="muted small" data-testid="dataset-file">
          File: {file.name} ({formatBytes(file.size)})
        </p>
      )}
      {importing && (
        <div className="job">
          <Progress
            label="Importing the dataset"
            value={p ? p.bytesRead : null}
            max={p ? p.totalBytes : null}
            detail={p ? `Read ${formatBytes(p.bytesRead)} of ${formatBytes(p.totalBytes)}, ${plural(p.rows, 'row')}` : `Reading ${file?.name ?? 'the file'}…`}
            testId="import-progress"
          />
          <button type="button" onClick={cancel}>
            Cancel import
          </button>
        </div>
      )}
    </section>
  );
}

function DatasetError() {
  const error = useData((s) => s.result?.error);
  if (!error) return null;
  const rows = (error.rows ?? []) as BadRow[];
  return (
    <section className="card" aria-labelledby="dataset-error-title">
      <h2 id="dataset-error-title">Problems</h2>
      <ErrorBox title="The dataset could not be imported." error={error} testId="dataset-error" />
      {rows.length > 0 && <RowList title="Bad rows" rows={rows} total={error.total ?? rows.length} />}
    </section>
  );
}

function RowList({ title, rows, total }: { title: string; rows: readonly BadRow[]; total: number }) {
  return (
    <div className="row-list">
      <h3>
        {title}: {formatInt(total)}
        {total > rows.length ? ` (the first ${formatInt(rows.length)} listed)` : ''}
      </h3>
      <ul data-testid="bad-rows">
        {rows.map((r) => (
          <li key={`${r.file}:${r.rowIndex}`}>
            <strong>{r.line !== undefined ? `Line ${r.line}` : `Row ${r.rowIndex + 1}`}</strong>
            {r.file ? ` of ${r.file}` : ''}: {r.message}. Expected {r.expected}.
          </li>
        ))}
      </ul>
    </div>
  );
}
