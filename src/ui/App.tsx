// The studio shell: header, a status line (GPU, loaded model), the screen tabs (Model, Data, Train, Export, Playground, Compress, GPU)
// and the selected screen. Screens are mounted only while selected; their state lives in stores.
import { type KeyboardEvent, useEffect } from 'react';
import { CompressScreen } from './CompressScreen.tsx';
import { DataScreen } from './DataScreen.tsx';
import { ExportScreen } from './ExportScreen.tsx';
import { GpuPanel } from './GpuPanel.tsx';
import { ModelScreen } from './ModelScreen.tsx';
import { PlaygroundScreen } from './PlaygroundScreen.tsx';
import { StatusBar } from './StatusBar.tsx';
import { TrainScreen } from './TrainScreen.tsx';
import { SCREENS, type Screen, useStudio } from './store.ts';

const LABELS: Record<Screen, string> = { model: 'Model', data: 'Data', train: 'Train', export: 'Export', playground: 'Playground', compress: 'Compress', gpu: 'GPU' };

export function App() {
  const connect = useStudio((s) => s.connect);
  const screen = useStudio((s) => s.screen);
  useEffect(() => {
    void connect();
  }, [connect]);

  return (
    <div className="app">
      <header className="app-header">
        <h1>
          <img src="/favicon.svg" alt="" width={24} height={24} /> Whetstone
        </h1>
        <p className="tagline">Fine-tune language models on your own GPU. Nothing leaves this machine.</p>
      </header>
      <StatusBar />
      <Tabs />
      <main id={`panel-${screen}`} role="tabpanel" aria-labelledby={`tab-${screen}`} className="screen">
        {screen === 'model' && <ModelScreen />}
        {screen === 'data' && <DataScreen />}
        {screen === 'train' && <TrainScreen />}
        {screen === 'export' && <ExportScreen />}
        {screen === 'playground' && <PlaygroundScreen />}
        {screen === 'compress' && <CompressScreen />}
        {screen === 'gpu' && <GpuPanel />}
      </main>
    </div>
  );
}

function Tabs() {
  const screen = useStudio((s) => s.screen);
  const setScreen = useStudio((s) => s.setScreen);
  // Arrow keys, Home and End move between tabs (each tab is also reachable with Tab).
  const onKey = (e: KeyboardEvent<HTMLButtonElement>) => {
    const i = SCREENS.indexOf(screen);
    const next =
      e.key === 'ArrowRight' ? SCREENS[(i + 1) % SCREENS.length]
      : e.key === 'ArrowLeft' ? SCREENS[(i + SCREENS.length - 1) % SCREENS.length]
      : e.key === 'Home' ? SCREENS[0]
      : e.key === 'End' ? SCREENS[SCREENS.length - 1]
      : null;
    if (!next) return;
    e.preventDefault();
    setScreen(next);
    document.getElementById(`tab-${next}`)?.focus();
  };
  return (
    <nav className="tabs" role="tablist" aria-label="Screens">
      {SCREENS.map((s) => (
        <button
          key={s}
          id={`tab-${s}`}
          type="button"
          role="tab"
          aria-selected={screen === s}
          aria-controls={screen === s ? `panel-${s}` : undefined}
          className={screen === s ? 'tab selected' : 'tab'}
          onClick={() => setScreen(s)}
          onKeyDown={onKey}
        >
          {LABELS[s]}
        </button>
      ))}
    </nav>
  );
}
