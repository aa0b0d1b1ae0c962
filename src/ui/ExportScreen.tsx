// The Export screen: the history of training runs (RunList) and the chosen run's settings, results
// and downloads (RunDetails): the PEFT adapter zip with its model card, the GGUF LoRA adapter with
// an Ollama Modelfile, and the merged model as a Hugging Face folder, each built in the worker with
// progress and Cancel; and Delete. The runs are re-read every few seconds while another tab trains.
import { useEffect, useState } from 'react';
import { RunDetails } from './RunDetails.tsx';
import { RunList } from './RunList.tsx';
import { useStudio } from './store.ts';
import { useTrain } from './train-store.ts';

const WATCH_MS = 2000;

export function ExportScreen() {
  const overview = useTrain((s) => s.overview);
  const refresh = useTrain((s) => s.refresh);
  const setScreen = useStudio((s) => s.setScreen);
  const [chosen, setChosen] = useState<string | null>(null);
  const elsewhere = overview?.trainingElsewhere ?? false;
  useEffect(() => {
    void refresh();
  }, [refresh]);
  useEffect(() => {
    if (!elsewhere) return;
    const t = setInterval(() => void refresh(), WATCH_MS);
    return () => clearInterval(t);
  }, [elsewhere, refresh]);

  const runs = overview?.runs ?? [];
  const selected = runs.find((r) => r.id === chosen) ?? runs.find((r) => r.status === 'completed') ?? runs[0] ?? null;
  return (
    <>
      <section className="card" aria-labelledby="runs-title">
        <h2 id="runs-title">Training runs</h2>
        {overview === null ? (
          <p className="muted">Reading the runs…</p>
        ) : runs.length === 0 ? (
          <p className="muted" data-testid="no-runs">
            No runs yet.
            <button type="button" className="link" onClick={() => setScreen('train')}>
              Train an adapter on the Train screen
            </button>
          </p>
        ) : (
          <RunList runs={runs} selected={selected?.id ?? null} onSelect={setChosen} activeRunId={overview.activeRunId} elsewhere={elsewhere} />
        )}
      </section>
      {selected && <RunDetails run={selected} />}
    </>
  );
}
