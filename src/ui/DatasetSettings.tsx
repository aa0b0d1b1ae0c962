// Import settings of the Data screen: the detected file type and example format with overrides,
// the column of each field the format reads, the sequence length and bad-row handling. Apply
// re-imports the file with them.
import type { ExampleFormat, FieldName } from '../engine/data/formats.ts';
import type { DatasetFileFormat } from '../engine/data/readers.ts';
import { useData } from './data-store.ts';

export const FORMAT_LABELS: Record<ExampleFormat, string> = {
  messages: 'Messages (role / content)',
  sharegpt: 'ShareGPT (from / value)',
  'prompt-completion': 'Prompt / completion',
  alpaca: 'Alpaca (instruction / input / output)',
  tokens: 'Pre-tokenized (input_ids / labels)',
  text: 'Plain text',
};

const FILE_LABELS: Record<DatasetFileFormat, string> = { jsonl: 'JSON Lines', json: 'JSON', csv: 'CSV', tsv: 'TSV', parquet: 'Parquet', text: 'Text' };

/** The fields each format reads, in the order shown. */
const FORMAT_FIELDS: Record<ExampleFormat, FieldName[]> = {
  messages: ['messages', 'system'],
  sharegpt: ['conversations', 'system'],
  'prompt-completion': ['prompt', 'completion'],
  alpaca: ['instruction', 'input', 'output', 'system'],
  tokens: ['input_ids', 'labels'],
  text: ['text'],
};

export function DatasetSettings() {
  const result = useData((s) => s.result);
  const settings = useData((s) => s.settings);
  const set = useData((s) => s.setSettings);
  const reimport = useData((s) => s.reimport);
  const importing = useData((s) => s.importing);
  const inspection = result?.inspection;
  if (!inspection) return null;
  const format = settings.format ?? inspection.detection?.format ?? inspection.detectedFormat;
  const auto = inspection.detection?.columns ?? {};

  return (
    <section className="card" aria-labelledby="format-title">
      <h2 id="format-title">Format</h2>
      <div className="settings-grid">
        <label htmlFor="file-format">File type</label>
        <select
          id="file-format"
          value={settings.fileFormat ?? ''}
          onChange={(e) => set({ fileFormat: (e.target.value || null) as DatasetFileFormat | null })}
        >
          <option value="">Detected: {FILE_LABELS[inspection.detectedFileFormat]}</option>
          {Object.entries(FILE_LABELS).map(([k, v]) => (
            <option key={k} value={k}>
              {v}
            </option>
          ))}
        </select>

        <label htmlFor="example-format">Example format</label>
        <select id="example-format" value={settings.format ?? ''} onChange={(e) => set({ format: (e.target.value || null) as ExampleFormat | null, mapping: {} })}>
          <option value="">Detected: {inspection.detectedFormat ? FORMAT_LABELS[inspection.detectedFormat] : 'none fits'}</option>
          {Object.entries(FORMAT_LABELS).map(([k, v]) => (
            <option key={k} value={k}>
              {v}
            </option>
          ))}
        </select>

        {format &&
          FORMAT_FIELDS[format].map((field) => (
            <FieldMapping key={field} field={field} columns={inspection.columns} auto={auto[field]} />
          ))}

        <label htmlFor="max-length">Sequence length (tokens)</label>
        <input
          id="max-length"
          type="number"
          min={16}
          max={32768}
          step={16}
          value={settings.maxLength}
          onChange={(e) => set({ maxLength: Math.max(16, Math.min(32768, Math.round(Number(e.target.value) || 16))) })}
        />
      </div>
      <div className="checks">
        <label>
          <input type="checkbox" checked={settings.skipBadRows} onChange={(e) => set({ skipBadRows: e.target.checked })} /> Skip bad rows (they are
          counted and listed)
        </label>
        <label>
          <input type="checkbox" checked={settings.trainOnPrompt} onChange={(e) => set({ trainOnPrompt: e.target.checked })} /> Count prompt tokens
          toward the loss too
        </label>
      </div>
      <button type="button" onClick={() => void reimport()} disabled={importing !== null}>
        Apply and import again
      </button>
      <p className="muted small" data-testid="detected">
        {FILE_LABELS[inspection.fileFormat]} file{inspection.detection ? `, ${FORMAT_LABELS[inspection.detection.format]} format: ${inspection.detection.matched} of the first ${inspection.detection.sampled} rows fit it` : ', no example format fits its first rows'}
        . Columns: {inspection.columns.length > 0 ? inspection.columns.join(', ') : 'none found'}.
      </p>
    </section>
  );
}

function FieldMapping({ field, columns, auto }: { field: FieldName; columns: string[]; auto: string | undefined }) {
  const value = useData((s) => s.settings.mapping[field] ?? '');
  const mapping = useData((s) => s.settings.mapping);
  const set = useData((s) => s.setSettings);
  const id = `map-${field}`;
  return (
    <>
      <label htmlFor={id}>
        Column for <code>{field}</code>
      </label>
      <select
        id={id}
        value={value}
        onChange={(e) => {
          const next = { ...mapping };
          if (e.target.value) next[field] = e.target.value;
          else delete next[field];
          set({ mapping: next });
        }}
      >
        <option value="">{auto && columns.includes(auto) ? `Automatic: ${auto}` : 'Automatic: not in the file'}</option>
        {columns.map((c) => (
          <option key={c} value={c}>
            {c}
          </option>
        ))}
      </select>
    </>
  );
}
