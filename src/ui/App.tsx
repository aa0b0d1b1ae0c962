// The studio shell: header and the GPU status. Later screens hang off this layout.
import { useEffect } from 'react';
import { GpuPanel } from './GpuPanel.tsx';
import { useStudio } from './store.ts';

export function App() {
  const connect = useStudio((s) => s.connect);
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
      <main>
        <GpuPanel />
      </main>
    </div>
  );
}
