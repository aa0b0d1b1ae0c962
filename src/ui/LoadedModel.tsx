// The Model screen's top card: which model is loaded (with its size in parameters and bytes), the
// load in progress with a Cancel button, and why the last load failed.
import { ErrorBox } from './ErrorBox.tsx';
import { Progress } from './Progress.tsx';
import { formatBytes, formatCount, formatInt } from './format.ts';
import { useModels } from './model-store.ts';

const SOURCE = { demo: 'built-in demo', hub: 'Hugging Face Hub (cached)', files: 'files from this computer', compressed: 'the Compress screen (stored in this browser)' } as const;

export function LoadedModel() {
  const loaded = useModels((s) => s.loaded);
  const loading = useModels((s) => s.loading);
  const outcome = useModels((s) => s.loadOutcome);
  const cancel = useModels((s) => s.cancelLoad);
  const p = loading?.progress;
  return (
    <section className="card" aria-labelledby="loaded-title">
      <h2 id="loaded-title">Loaded model</h2>
      {loaded ? (
        <table className="kv" aria-label="Loaded model" data-testid="loaded-model">
          <tbody>
            <Row k="Model" v={loaded.name} id="name" />
            <Row k="Source" v={SOURCE[loaded.source]} id="source" />
            <Row k="Architecture" v={`${loaded.architecture}${loaded.modelType ? ` (${loaded.modelType})` : ''}`} id="architecture" />
            <Row k="Parameters" v={`${formatInt(loaded.parameters)} parameters (${formatCount(loaded.parameters)})`} id="parameters" />
            <Row k="Layers" v={`${loaded.layers} layers, hidden size ${formatInt(loaded.hiddenSize)}`} id="layers" />
            <Row k="Vocabulary" v={`${formatInt(loaded.vocabSize)} tokens`} id="vocabulary" />
            <Row k="Context length" v={`${formatInt(loaded.maxPositionEmbeddings)} tokens`} id="context" />
            <Row k="Weights on the GPU" v={`${formatBytes(loaded.gpuBytes)} (projections in ${loaded.weightDtype}); files ${formatBytes(loaded.checkpointBytes)}`} id="gpu-bytes" />
            <Row k="Chat template" v={loaded.chatTemplate ? `yes (end of turn ${loaded.eosToken ?? '—'})` : 'none (ChatML is used)'} id="chat-template" />
            <Row k="Load time" v={`${formatInt(loaded.loadMs)} ms`} id="load-time" />
          </tbody>
        </table>
      ) : (
        !loading && (
          <p className="muted" data-testid="no-model">
            No model is loaded. Load the demo model, a downloaded Hub model, or a model folder from this computer.
          </p>
        )
      )}
      {loading && (
        <div className="job">
          <Progress
            label={`Loading ${loading.label}`}
            value={p ? p.bytesDone : null}
            max={p ? p.bytesTotal : null}
            detail={
              p
                ? `Loading ${loading.label}: ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}, tensor ${p.done} of ${p.total} (${p.tensor})`
                : `Opening ${loading.label}…`
            }
            testId="load-progress"
          />
          <button type="button" onClick={cancel}>
            Cancel loading
          </button>
        </div>
      )}
      {outcome?.kind === 'ok' && !loading && (
        <p className="muted small" role="status" data-testid="load-outcome">
          {outcome.text}
        </p>
      )}
      {outcome?.kind === 'error' && outcome.error && <ErrorBox title={outcome.text} error={outcome.error} testId="load-error" />}
    </section>
  );
}

function Row({ k, v, id }: { k: string; v: string; id: string }) {
  return (
    <tr>
      <th scope="row">{k}</th>
      <td data-testid={`loaded-${id}`}>{v}</td>
    </tr>
  );
}
