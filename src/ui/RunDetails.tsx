// One run on the Export screen: its settings and results, the downloads of a completed run (PEFT
// zip, GGUF + Modelfile zip, merged model zip) with the export's progress and Cancel, and Delete
// (asked twice). Runs that did not complete say why there is nothing to download.
import { useState } from 'react';
import type { ExportFormat, RunRecord } from '../worker/engine-api.ts';
import { METHODS, adapterDownloadLabel, draftOf, exportFormats, fieldsOf } from '../worker/train-settings.ts';
import { ErrorBox } from './ErrorBox.tsx';
import { Progress } from './Progress.tsx';
import { formatDate, loss, runStatusLabel } from './RunList.tsx';
import { formatBytes, formatCount, formatDuration, formatInt } from './format.ts';
import { useStudio } from './store.ts';
import { useTrain } from './train-store.ts';

/** The downloads of a run of `method`: its own files always; GGUF and merged where the method has them, the absent ones last with their reason. */
function downloadsOf(method: string): { format: ExportFormat; label: string; note: string; reason: string | null }[] {
  const peft = METHODS[method]?.engine.peftType;
  const own =
    method === 'full'
      ? 'config.json, model.safetensors (every trained weight), the tokenizer files and a README.md model card: a Hugging Face model folder.'
      : peft
        ? 'adapter_config.json, adapter_model.safetensors and a README.md model card, for Hugging Face PEFT.'
        : 'adapter_config.json, pytorch_adapter.safetensors (AdapterHub module names) and a README.md model card.';
  const text: Record<ExportFormat, { label: string; note: string }> = {
    peft: { label: adapterDownloadLabel(method), note: own },
    gguf: { label: 'Download GGUF LoRA + Modelfile (zip)', note: 'adapter.gguf for llama.cpp (--lora) and a Modelfile for Ollama (ollama create).' },
    merged: {
      label: 'Download merged model (zip)',
      note:
        method === 'dora' || method === 'ia3'
          ? 'The base model with the adapter folded into its weights, as a Hugging Face folder. Needs the base model loaded with f32 weights (up to 1 GiB of them).'
          : 'The base model with the adapter merged in, as a Hugging Face folder. Needs the base model loaded.',
    },
  };
  // The downloads it has first, then one line for each it has not.
  const all = exportFormats(method).map((a) => ({ format: a.format, ...text[a.format], reason: a.reason }));
  return [...all.filter((d) => d.reason === null), ...all.filter((d) => d.reason !== null)];
}

const SINGULAR: Record<string, string> = { passes: 'pass', rows: 'row', steps: 'step', 'micro-batches': 'micro-batch', tokens: 'token' };

/** A setting with its unit in words: "1 row", "10 % of the run", "0 (only at the end)". */
function settingText(key: string, value: string, unit: string): string {
  const v = Number(value);
  if (value === '') return 'the method\'s default';
  if (key === 'warmup') return v > 0 && v < 1 ? `${(100 * v).toFixed(1)} % of the run` : `${value} ${v === 1 ? 'step' : 'steps'}`;
  if (key === 'valFraction') return `${(100 * v).toFixed(0)} % of the examples`;
  if ((key === 'evalEvery' || key === 'saveEvery') && v === 0) return 'only at the end';
  if (key === 'steps' && v === 0) return '0 (the epochs decide)';
  if (!unit) return value;
  return `${value} ${v === 1 ? (SINGULAR[unit] ?? unit) : unit}`;
}

export function RunDetails({ run }: { run: RunRecord }) {
  const exporting = useTrain((s) => s.exporting);
  const notice = useTrain((s) => s.exportNotice);
  const download = useTrain((s) => s.download);
  const cancelExport = useTrain((s) => s.cancelExport);
  const deleteRun = useTrain((s) => s.deleteRun);
  const overview = useTrain((s) => s.overview);
  const setScreen = useStudio((s) => s.setScreen);
  const [confirming, setConfirming] = useState<string | null>(null);
  const draft = draftOf(run.settings);
  const settings = fieldsOf(run.settings.method).map((f) => [f.label, settingText(f.key, draft[f.key] ?? '', f.unit)]);
  const job = exporting?.runId === run.id ? exporting : null;
  const r = run.result;
  const results: [string, string][] = [
    ['Status', runStatusLabel(run, overview?.activeRunId ?? null, overview?.trainingElsewhere ?? false)],
    ['Started', formatDate(run.createdAt)],
    ['Base model', `${run.model.name} (${formatCount(run.model.parameters)} parameters)`],
    ['Dataset', `${run.dataset.name} (${formatBytes(run.dataset.bytes)}${run.dataset.trainExamples !== null ? `, ${formatInt(run.dataset.trainExamples)} training and ${formatInt(run.dataset.validationExamples ?? 0)} validation examples` : ''})`],
    ['Steps', `${formatInt(run.step)}${run.totalSteps > 0 ? ` of ${formatInt(run.totalSteps)}` : ''}${r ? `, ${r.epochs.toFixed(2)} epochs` : ''}`],
    ['Final training loss', `${loss(r?.trainLoss)}${r?.trainLoss != null ? ' nats/token' : ''}`],
    ['Final validation loss', `${loss(r?.valLoss)}${r?.valLoss != null ? ' nats/token' : ''}`],
    ['Training time', formatDuration(run.elapsedMs / 1000)],
    ['Trainable parameters', run.trainableParameters === null ? '—' : formatInt(run.trainableParameters)],
  ];
  if (run.plan) {
    const p = run.plan;
    results.push(['Memory plan', `${formatBytes(p.total)}: weights ${formatBytes(p.weights)}${p.quantization ? ` (${p.quantization})` : ''}, trainable ${formatBytes(p.adapter)}, gradients ${formatBytes(p.gradients)}, optimizer ${formatBytes(p.optimizer)}, activations ${formatBytes(p.activations)}, workspace ${formatBytes(p.workspace)}`]);
  }
  if (r) results.push(['Adapter files', r.files.map((f) => `${f.key.split('/').pop()} (${formatBytes(f.bytes)})`).join(', ')]);
  return (
    <section className="card" aria-labelledby="run-details-title" data-testid="run-details">
      <h2 id="run-details-title">Run {run.id}</h2>
      <div className="details-grid">
        <table className="kv" aria-label="Results">
          <tbody>
            {results.map(([k, v]) => (
              <tr key={k}>
                <th scope="row">{k}</th>
                <td>{v}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <table className="kv" aria-label="Settings">
          <tbody>
            <tr>
              <th scope="row">Method</th>
              <td>{METHODS[run.settings.method]?.name ?? run.settings.method}</td>
            </tr>
            {settings.map(([k, v]) => (
              <tr key={k}>
                <th scope="row">{k}</th>
                <td>{v}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {run.status === 'failed' && run.error && <ErrorBox title="The run stopped with an error." error={run.error} />}
      {run.status === 'completed' ? (
        <div className="downloads">
          <h3>Downloads</h3>
          <ul className="download-list">
            {downloadsOf(run.settings.method).map((d) =>
              d.reason === null ? (
                <li key={d.format}>
                  <button type="button" className={d.format === 'peft' ? 'primary' : undefined} disabled={exporting !== null} onClick={() => void download(run.id, d.format)}>
                    {d.label}
                  </button>
                  <span className="muted small">{d.note}</span>
                </li>
              ) : (
                <li key={d.format} className="muted small" data-testid={`no-${d.format}`}>
                  No {d.format === 'gguf' ? 'GGUF' : 'merged'} download: {d.reason}
                </li>
              ),
            )}
          </ul>
          {job && (
            <div className="job">
              <Progress
                label="Export progress"
                value={job.progress?.bytesDone ?? null}
                max={job.progress?.bytesTotal ?? null}
                detail={job.progress ? `Writing ${job.progress.file}: ${formatBytes(job.progress.bytesDone)} of ${formatBytes(job.progress.bytesTotal)}` : 'Preparing the export…'}
                testId="export-progress"
              />
              <button type="button" onClick={cancelExport}>
                Cancel export
              </button>
            </div>
          )}
        </div>
      ) : (
        <p className="muted">
          {run.status === 'running' || run.status === 'paused' ? 'The run has not finished; its adapter can be downloaded once it completes.' : 'This run has no adapter to download.'}
          {(run.status === 'running' || run.status === 'paused') && (
            <button type="button" className="link" onClick={() => setScreen('train')}>
              Go to the Train screen
            </button>
          )}
        </p>
      )}
      {notice?.runId === run.id && notice.kind === 'ok' && (
        <p className="muted" role="status" data-testid="export-notice">
          {notice.text}
        </p>
      )}
      {notice?.runId === run.id && notice.kind === 'error' && notice.error && <ErrorBox title={notice.text} error={notice.error} testId="export-error" />}
      <div className="button-row">
        {confirming === run.id ? (
          <>
            <button type="button" className="danger" onClick={() => void deleteRun(run.id).then(() => setConfirming(null))}>
              Yes, delete run {run.id}
            </button>
            <button type="button" onClick={() => setConfirming(null)}>
              Keep it
            </button>
          </>
        ) : (
          <button type="button" className="danger" onClick={() => setConfirming(run.id)} disabled={overview?.activeRunId === run.id}>
            Delete run…
          </button>
        )}
      </div>
    </section>
  );
}
