// The Compress screen: a technique for the loaded model (drop layers, prune heads or MLP neurons,
// unstructured or 2:4 sparsity, Wanda pruning, blocks shared across depth, k-means clustering,
// distillation into a student with fewer layers, heads or MLP neurons, or into a downloaded model)
// with its options (CompressOptions.tsx), the optional LoRA recovery after pruning and the rows to
// use, Run with progress (n of N with units) and Cancel, the before/after table (weight bytes,
// parameters, held-out loss, tokens/s; distillation's student and teacher losses) and the compressed
// model folder as a zip download. Without a loaded model it points to the Model screen.
import { useEffect } from 'react';
import { useModels } from './model-store.ts';
import { useData } from './data-store.ts';
import { CompressResultTable } from './CompressResult.tsx';
import { DataOptions, DistillOptions, RecoveryOptions, TechniqueOptions } from './CompressOptions.tsx';
import { TECHNIQUES, checkDraft, dataChoice, draftFor, progressDetail, progressValue } from './compress-form.ts';
import { useCompress } from './compress-store.ts';
import { formatBytes } from './format.ts';
import { Progress } from './Progress.tsx';
import { useStudio } from './store.ts';

export function CompressScreen() {
  const loaded = useModels((s) => s.loaded);
  const loading = useModels((s) => s.loading);
  const loadResult = useCompress((s) => s.loadResult);
  const setScreen = useStudio((s) => s.setScreen);
  const dataFile = useData((s) => (s.result && !s.result.error ? s.file : null));
  const storedDraft = useCompress((s) => s.draft);
  const setDraft = useCompress((s) => s.setDraft);
  const running = useCompress((s) => s.running);
  const result = useCompress((s) => s.result);
  const downloading = useCompress((s) => s.downloading);
  const notice = useCompress((s) => s.notice);
  const run = useCompress((s) => s.run);
  const cancel = useCompress((s) => s.cancel);
  const download = useCompress((s) => s.download);
  const cancelDownload = useCompress((s) => s.cancelDownload);
  const adapters = useCompress((s) => s.adapters);
  const students = useCompress((s) => s.students);
  const loadDistillChoices = useCompress((s) => s.loadDistillChoices);
  const distilling = storedDraft.kind === 'distill';
  useEffect(() => {
    // The runs' adapters and the downloaded models are listed when distillation is chosen (a run or
    // a download may have finished since).
    if (distilling) void loadDistillChoices();
  }, [distilling, loadDistillChoices]);

  if (!loaded) {
    return (
      <section className="card" aria-labelledby="compress-title">
        <h2 id="compress-title">Compress</h2>
        <p className="muted" data-testid="compress-no-model">
          No model is loaded.
          <button type="button" className="link" onClick={() => setScreen('model')}>
            Load one on the Model screen
          </button>
        </p>
      </section>
    );
  }
  const draft = draftFor(loaded.layers, storedDraft);
  const busy = running !== null || downloading !== null;
  const technique = TECHNIQUES.find((t) => t.kind === draft.kind)!;
  const p = running?.progress ?? null;
  const d = downloading?.progress ?? null;
  const ctx = { layers: loaded.layers, hasDataset: dataFile !== null };
  const checked = checkDraft(draft, ctx);
  const errors = checked.ok ? {} : checked.errors;
  const data = dataChoice(draft, ctx);
  const opts = { draft, set: (patch: Partial<typeof draft>) => setDraft({ ...draft, ...patch }), errors, layers: loaded.layers, disabled: busy };
  const bar = progressValue(p);
  return (
    <>
      <section className="card" aria-labelledby="compress-title">
        <h2 id="compress-title">Compress {loaded.name}</h2>
        <p className="muted">
          The compressed copy is a new model folder; the loaded model stays as it is.{' '}
          {data === 'none'
            ? 'No rows chosen: the loss is not measured.'
            : `The loss is measured on held-out rows of ${data === 'dataset' ? (dataFile?.name ?? "the Data screen's dataset") : 'the sample dataset'}.`}
        </p>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void run();
          }}
        >
          <fieldset className="methods" disabled={busy}>
            <legend>Technique</legend>
            {TECHNIQUES.map((t) => (
              <label key={t.kind} className="method-option">
                <input type="radio" name="compress-technique" value={t.kind} checked={draft.kind === t.kind} onChange={() => setDraft({ ...draft, kind: t.kind })} />
                <span>{t.label}</span>
              </label>
            ))}
            <p className="field-help" data-testid="compress-technique-help">
              {technique.help}
            </p>
          </fieldset>
          <div className="train-fields">
            <TechniqueOptions {...opts} />
            {draft.kind === 'distill' && <DistillOptions {...opts} adapters={adapters} students={(students ?? []).filter((m) => m.id !== loaded.id)} />}
            <DataOptions {...opts} data={data} datasetName={dataFile?.name ?? null} />
          </div>
          <RecoveryOptions {...opts} />
          <div className="train-start">
            <button type="submit" className="primary" disabled={busy || !checked.ok}>
              Run
            </button>
            {running && (
              <button type="button" onClick={cancel}>
                Cancel
              </button>
            )}
          </div>
        </form>
        {running && (
          <Progress
            label="Compression progress"
            testId="compress-progress"
            value={bar.value}
            max={bar.max}
            detail={progressDetail(p, formatBytes)}
          />
        )}
        {notice && (
          <div className={notice.kind === 'error' ? 'error-box' : undefined} role={notice.kind === 'error' ? 'alert' : 'status'} data-testid="compress-notice">
            <p className={notice.kind === 'error' ? 'error-title' : 'ok'}>{notice.text}</p>
            {notice.hint && <p className="hint">What to do: {notice.hint}</p>}
          </div>
        )}
      </section>
      {result && (
        <section className="card" aria-labelledby="compress-result-title">
          <h2 id="compress-result-title">Before and after: {result.label}</h2>
          <CompressResultTable result={result} />
          <div className="button-row">
            <button type="button" className="primary" disabled={busy} onClick={() => void download()}>
              Download zip
            </button>
            <button type="button" disabled={busy || loading !== null || loaded.id === result.modelId} onClick={() => void loadResult()}>
              Load as the model
            </button>
            {downloading && (
              <button type="button" onClick={cancelDownload}>
                Cancel download
              </button>
            )}
          </div>
          {downloading && (
            <Progress
              label="Zip progress"
              testId="compress-zip-progress"
              value={d?.bytesDone ?? null}
              max={d?.bytesTotal ?? null}
              detail={d ? `${d.file}: ${formatBytes(d.bytesDone)} of ${formatBytes(d.bytesTotal)}` : 'Starting…'}
            />
          )}
        </section>
      )}
    </>
  );
}
