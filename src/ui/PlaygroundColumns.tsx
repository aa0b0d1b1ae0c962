// The Playground's two answers side by side: "Base" and "Tuned (adapter) at strength x", each with
// its text as it streams, its token count, speed and time, and why it stopped.
import { type ColumnView, type Shown, columnFigures, formatStrength, usePlayground } from './playground-store.ts';

const STOPPED = { eos: 'ended with an end token', length: 'reached max new tokens', cancelled: 'stopped' } as const;

export function PlaygroundColumns() {
  const columns = usePlayground((s) => s.columns);
  const shown = usePlayground((s) => s.shown);
  const running = usePlayground((s) => s.running);
  const result = usePlayground((s) => s.result);
  const adapterId = usePlayground((s) => s.adapterId);
  const adapters = usePlayground((s) => s.adapters);
  const strength = usePlayground((s) => s.strength);
  // Before a run the headings follow the current choice; afterwards, what the text was made with.
  const heading: Shown = shown ?? { adapterName: adapters?.find((a) => a.id === adapterId)?.name ?? null, strength };
  // Only LoRA adapters take a strength; the others apply as trained.
  const chosen = adapters?.find((a) => a.id === adapterId) ?? null;
  const asTrained = chosen !== null && chosen.method !== null && chosen.method !== 'lora';
  return (
    <section className="card" aria-labelledby="pg-output-title">
      <h2 id="pg-output-title">Answers</h2>
      {result && (
        <p className="muted small" data-testid="pg-summary">
          Prompt: {result.promptTokens} tokens. Both columns share the GPU, one token each in turn, so each speed is about half what one alone would
          get.{result.warning ? ` ${result.warning}` : ''}
        </p>
      )}
      <div className="pg-columns">
        <Column title="Base" testId="pg-base" view={columns?.base ?? null} running={running !== null} />
        {heading.adapterName !== null || columns?.tuned ? (
          <Column
            title={asTrained ? `Tuned (${heading.adapterName ?? 'adapter'}, ${chosen?.methodLabel}) as trained` : `Tuned (${heading.adapterName ?? 'adapter'}) at strength ${formatStrength(heading.strength)}`}
            testId="pg-tuned"
            view={columns?.tuned ?? null}
            running={running !== null}
          />
        ) : (
          <div className="pg-column pg-column-empty" data-testid="pg-tuned-none">
            <h3>Tuned</h3>
            <p className="muted">Choose an adapter above to compare its answer with the base model's.</p>
          </div>
        )}
      </div>
    </section>
  );
}

function Column({ title, view, running, testId }: { title: string; view: ColumnView | null; running: boolean; testId: string }) {
  return (
    <div className="pg-column" data-testid={testId}>
      <h3>{title}</h3>
      <pre className="pg-text" aria-live="polite" aria-busy={running && !view?.done} data-testid={`${testId}-text`}>
        {view?.text || (running ? '…' : '')}
      </pre>
      <p className="pg-figures small" data-testid={`${testId}-figures`}>
        {view ? columnFigures(view) : 'No answer yet.'}
        {view?.finishReason ? `; ${STOPPED[view.finishReason]}` : ''}
      </p>
    </div>
  );
}
