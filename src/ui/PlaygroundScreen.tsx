// The Playground screen: a prompt answered by the base model and by the model with a LoRA adapter
// at a chosen strength, side by side as the tokens stream in. Without a loaded model it says so
// and links to the Model screen. State lives in playground-store.ts.
import { type KeyboardEvent, useEffect } from 'react';
import { ErrorBox } from './ErrorBox.tsx';
import { PlaygroundAdapter } from './PlaygroundAdapter.tsx';
import { PlaygroundColumns } from './PlaygroundColumns.tsx';
import { PlaygroundSettings } from './PlaygroundSettings.tsx';
import { useModels } from './model-store.ts';
import { usePlayground } from './playground-store.ts';
import { getEngine, useStudio } from './store.ts';

export function PlaygroundScreen() {
  const loaded = useModels((s) => s.loaded);
  const setScreen = useStudio((s) => s.setScreen);
  const refreshAdapters = usePlayground((s) => s.refreshAdapters);
  const checkBusy = usePlayground((s) => s.checkBusy);
  useEffect(() => {
    void checkBusy();
    // The worker may have a model the page has not heard of yet (a load finished elsewhere).
    void getEngine()
      .loadedModel()
      .then((m) => useModels.setState({ loaded: m }));
    void refreshAdapters();
  }, [refreshAdapters, checkBusy]);

  if (!loaded) {
    return (
      <section className="card" aria-labelledby="pg-title">
        <h2 id="pg-title">Playground</h2>
        <p data-testid="pg-no-model">No model is loaded. The Playground answers a prompt with the loaded model, with and without an adapter.</p>
        <button type="button" onClick={() => setScreen('model')}>
          Go to the Model screen
        </button>
      </section>
    );
  }
  return (
    <>
      <PromptCard model={loaded.name} />
      <PlaygroundColumns />
      <PlaygroundAdapter />
      <SettingsCard />
    </>
  );
}

function SettingsCard() {
  return (
    <section className="card" aria-label="Generation settings">
      <PlaygroundSettings />
    </section>
  );
}

function PromptCard({ model }: { model: string }) {
  const prompt = usePlayground((s) => s.prompt);
  const setPrompt = usePlayground((s) => s.setPrompt);
  const running = usePlayground((s) => s.running);
  const generate = usePlayground((s) => s.generate);
  const stop = usePlayground((s) => s.stop);
  const error = usePlayground((s) => s.error);
  const problem = usePlayground((s) => s.settingsProblem);
  const busyWith = usePlayground((s) => s.busyWith);
  const onKey = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      void generate();
    }
  };
  return (
    <section className="card" aria-labelledby="pg-title">
      <h2 id="pg-title">Playground</h2>
      <p className="muted">
        The same prompt answered by <strong>{model}</strong> alone (Base) and with an adapter (Tuned), token by token.
      </p>
      <label htmlFor="pg-prompt" className="pg-label">
        Prompt
      </label>
      <textarea
        id="pg-prompt"
        className="pg-prompt"
        rows={4}
        value={prompt}
        onChange={(e) => setPrompt(e.currentTarget.value)}
        onKeyDown={onKey}
        aria-describedby="pg-prompt-help"
      />
      <p id="pg-prompt-help" className="muted small">
        Ctrl+Enter generates.
      </p>
      <div className="pg-actions">
        <button type="button" onClick={() => void generate()} disabled={running !== null || prompt.trim() === ''}>
          Generate
        </button>
        <button type="button" onClick={stop} disabled={running === null}>
          Stop
        </button>
        {running && (
          <span role="status" className="muted small">
            Generating…
          </span>
        )}
      </div>
      {busyWith && (
        <p className="pg-busy" role="status" data-testid="pg-busy-note">
          <span className="badge badge-warn">Busy</span> The engine is busy with {busyWith}; generating is refused until it ends. The rest of the studio stays
          usable.
        </p>
      )}
      {problem && (
        <p className="error" role="alert" data-testid="pg-settings-problem">
          {problem}
        </p>
      )}
      {error &&
        (error.name === 'EngineBusyError' ? (
          <ErrorBox title="The engine is busy with another job, so nothing was generated." error={error} testId="pg-busy" />
        ) : (
          <ErrorBox title="Generation failed." error={error} testId="pg-error" />
        ))}
    </section>
  );
}
