// The Compress screen: a technique for the loaded model (drop layers, prune heads or MLP neurons,
// unstructured or 2:4 sparsity, blocks shared across depth, k-means clustering) with its options,
// Run with progress and Cancel, the before/after table (weight bytes, parameters, evaluation loss on
// the Data screen's dataset) and the compressed model folder as a zip download. Without a loaded
// model it points to the Model screen.
import { useModels } from './model-store.ts';
import { useData } from './data-store.ts';
import { CompressResultTable } from './CompressResult.tsx';
import { type CompressDraft, STAGE_LABELS, TECHNIQUES, draftFor } from './compress-form.ts';
import { useCompress } from './compress-store.ts';
import { formatBytes } from './format.ts';
import { Progress } from './Progress.tsx';
import { useStudio } from './store.ts';

function Field({ id, label, unit, help, children }: { id: string; label: string; unit?: string; help: string; children: React.ReactNode }) {
  return (
    <div className="train-field">
      <label htmlFor={id}>{label}</label>
      <div className="train-input">
        {children}
        {unit && <span className="unit">{unit}</span>}
      </div>
      <p className="field-help" id={`${id}-help`}>
        {help}
      </p>
    </div>
  );
}

function Options({ draft, set, layers, disabled }: { draft: CompressDraft; set: (p: Partial<CompressDraft>) => void; layers: number; disabled: boolean }) {
  switch (draft.kind) {
    case 'drop-layers':
      return (
        <Field id="cmp-layers" label="Layers to drop" unit="layer numbers" help={`Comma-separated, counted from 0; this model has layers 0 to ${layers - 1}.`}>
          <input id="cmp-layers" aria-describedby="cmp-layers-help" value={draft.layers} disabled={disabled} onChange={(e) => set({ layers: e.target.value })} />
        </Field>
      );
    case 'heads':
      return (
        <>
          <Field id="cmp-heads" label="Heads removed" unit="per layer" help="KV head groups: whole key/value heads with the query heads that read them. Query heads: from every KV group.">
            <input id="cmp-heads" aria-describedby="cmp-heads-help" inputMode="numeric" value={draft.headsRemove} disabled={disabled} onChange={(e) => set({ headsRemove: e.target.value })} />
          </Field>
          <Field id="cmp-heads-mode" label="What a head is" help="Grouped-query models keep the same number of query heads per KV head either way.">
            <select id="cmp-heads-mode" aria-describedby="cmp-heads-mode-help" value={draft.headsMode} disabled={disabled} onChange={(e) => set({ headsMode: e.target.value as CompressDraft['headsMode'] })}>
              <option value="kv-groups">KV head groups</option>
              <option value="query-heads">Query heads per group</option>
            </select>
          </Field>
        </>
      );
    case 'neurons':
      return (
        <Field id="cmp-neurons" label="MLP neurons removed" unit="per layer" help="Intermediate channels with the smallest ‖gate‖·‖up‖·‖down‖ go.">
          <input id="cmp-neurons" aria-describedby="cmp-neurons-help" inputMode="numeric" value={draft.neuronsRemove} disabled={disabled} onChange={(e) => set({ neuronsRemove: e.target.value })} />
        </Field>
      );
    case 'sparsity':
      return (
        <>
          <Field id="cmp-sparsity" label="Sparsity" unit="% of weights" help="The share of each projection's weights set to zero (smallest |w| first).">
            <input id="cmp-sparsity" aria-describedby="cmp-sparsity-help" inputMode="decimal" value={draft.sparsityPercent} disabled={disabled} onChange={(e) => set({ sparsityPercent: e.target.value })} />
          </Field>
          <Field id="cmp-scope" label="Threshold" help="Per tensor: each projection loses the same share. Global: one magnitude threshold for all.">
            <select id="cmp-scope" aria-describedby="cmp-scope-help" value={draft.scope} disabled={disabled} onChange={(e) => set({ scope: e.target.value as CompressDraft['scope'] })}>
              <option value="layer">Per tensor</option>
              <option value="global">Global</option>
            </select>
          </Field>
        </>
      );
    case 'nm-2-4':
      return <p className="field-help">No options: 2 of every 4 consecutive input weights of each row become zero, by magnitude.</p>;
    case 'share-layers':
      return (
        <Field id="cmp-group" label="Layers per shared block" unit="layers" help={`Consecutive layers in each group run with one set of weights (their mean); ${layers} layers in all.`}>
          <input id="cmp-group" aria-describedby="cmp-group-help" inputMode="numeric" value={draft.shareGroup} disabled={disabled} onChange={(e) => set({ shareGroup: e.target.value })} />
        </Field>
      );
    case 'cluster':
      return (
        <>
          <Field id="cmp-k" label="Codebook size k" unit="centroids" help="16: half a byte per weight. 256: one byte per weight, closer to the original.">
            <select id="cmp-k" aria-describedby="cmp-k-help" value={draft.clusterK} disabled={disabled} onChange={(e) => set({ clusterK: e.target.value as CompressDraft['clusterK'] })}>
              <option value="16">16</option>
              <option value="256">256</option>
            </select>
          </Field>
          <Field id="cmp-targets" label="Clustered tensors" help="Projections only, or the embeddings and lm_head too.">
            <select id="cmp-targets" aria-describedby="cmp-targets-help" value={draft.clusterTargets} disabled={disabled} onChange={(e) => set({ clusterTargets: e.target.value as CompressDraft['clusterTargets'] })}>
              <option value="projections">Projections</option>
              <option value="all-matrices">All matrices</option>
            </select>
          </Field>
        </>
      );
  }
}

export function CompressScreen() {
  const loaded = useModels((s) => s.loaded);
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
  return (
    <>
      <section className="card" aria-labelledby="compress-title">
        <h2 id="compress-title">Compress {loaded.name}</h2>
        <p className="muted">
          The compressed copy is a new model folder; the loaded model stays as it is.{' '}
          {dataFile ? `The loss is measured on ${dataFile.name} (the Data screen's dataset).` : 'No dataset: import one on the Data screen to measure the loss before and after.'}
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
            <Options draft={draft} set={(patch) => setDraft({ ...draft, ...patch })} layers={loaded.layers} disabled={busy} />
          </div>
          <div className="train-start">
            <button type="submit" className="primary" disabled={busy}>
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
            value={p && p.stage === 'writing' ? p.bytesDone : null}
            max={p && p.stage === 'writing' ? p.bytesTotal : null}
            detail={p ? `${STAGE_LABELS[p.stage]}${p.stage === 'writing' ? ` ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}` : ''}` : 'Starting…'}
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
