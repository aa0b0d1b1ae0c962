// The Train screen: what the run trains (the loaded model, the Data screen's dataset), the method
// and its settings with defaults for the model's size, "Start training", then the run: progress
// with Pause, Resume and Cancel (TrainRunPanel), and the live charts (TrainCharts, loaded with the
// charting library when the screen first shows). On opening it
// lists the runs, so an unfinished run (a reload, a closed tab) is offered for Resume, and a run
// another tab trains shows with its progress, read from IndexedDB every few seconds.
import { Suspense, lazy, useEffect } from 'react';
import { ErrorBox } from './ErrorBox.tsx';
import { TrainRunPanel } from './TrainRunPanel.tsx';
import { TrainSettingsForm } from './TrainSettingsForm.tsx';
import { useData } from './data-store.ts';
import { formatCount, plural } from './format.ts';
import { useModels } from './model-store.ts';
import { useStudio } from './store.ts';
import { DEMO_FACTS, useTrain } from './train-store.ts';

const TrainCharts = lazy(() => import('./TrainCharts.tsx').then((m) => ({ default: m.TrainCharts })));

/** How often the screen re-reads the runs while another tab trains, in ms. */
const WATCH_MS = 2000;

export function TrainScreen() {
  const refresh = useTrain((s) => s.refresh);
  const elsewhere = useTrain((s) => s.overview?.trainingElsewhere ?? false);
  const loaded = useModels((s) => s.loaded);
  const syncDefaults = useTrain((s) => s.syncDefaults);
  const notice = useTrain((s) => s.notice);

  useEffect(() => {
    void refresh();
  }, [refresh]);
  useEffect(() => {
    syncDefaults(loaded?.id ?? '', loaded ?? DEMO_FACTS);
  }, [loaded, syncDefaults]);
  useEffect(() => {
    if (!elsewhere) return;
    const t = setInterval(() => void refresh(), WATCH_MS);
    return () => clearInterval(t);
  }, [elsewhere, refresh]);

  return (
    <>
      <TrainInputs />
      {notice?.kind === 'error' && notice.error && <ErrorBox title={notice.text} error={notice.error} testId="train-error" />}
      <TrainRunPanel />
      <Suspense fallback={<p className="muted">Loading the charts…</p>}>
        <TrainCharts />
      </Suspense>
      <TrainSettingsForm />
    </>
  );
}

/** The model and the dataset the run will use, with a way to each screen when one is missing. */
function TrainInputs() {
  const loaded = useModels((s) => s.loaded);
  const file = useData((s) => s.file);
  const stats = useData((s) => s.result?.stats ?? null);
  const importing = useData((s) => s.importing);
  const setScreen = useStudio((s) => s.setScreen);
  return (
    <section className="card" aria-labelledby="train-inputs-title">
      <h2 id="train-inputs-title">What to train</h2>
      <table className="kv">
        <tbody>
          <tr>
            <th scope="row">Base model</th>
            <td data-testid="train-model">
              {loaded ? (
                `${loaded.name} (${formatCount(loaded.parameters)} parameters, ${loaded.weightDtype} weights)`
              ) : (
                <>
                  None loaded.
                  <button type="button" className="link" onClick={() => setScreen('model')}>
                    Load one on the Model screen
                  </button>
                </>
              )}
            </td>
          </tr>
          <tr>
            <th scope="row">Dataset</th>
            <td data-testid="train-dataset">
              {importing ? (
                'Importing…'
              ) : file && stats ? (
                `${file.name}: ${plural(stats.examples, 'example')} in ${stats.format} format, ${formatCount(stats.tokens)} tokens`
              ) : (
                <>
                  None imported.
                  <button type="button" className="link" onClick={() => setScreen('data')}>
                    Choose one on the Data screen
                  </button>
                </>
              )}
            </td>
          </tr>
        </tbody>
      </table>
    </section>
  );
}
