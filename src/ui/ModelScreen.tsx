// The Model screen: the loaded model, the built-in demo model, Hub models (curated and any id) with
// their estimates and downloads, a model folder from this computer, and the cached models.
import { useEffect } from 'react';
import { CachedModels } from './CachedModels.tsx';
import { DropZone } from './DropZone.tsx';
import { HubModels } from './HubModels.tsx';
import { LoadedModel } from './LoadedModel.tsx';
import { useModels } from './model-store.ts';

export function ModelScreen() {
  const refresh = useModels((s) => s.refresh);
  useEffect(() => {
    void refresh();
  }, [refresh]);
  return (
    <>
      <LoadedModel />
      <DemoModel />
      <HubModels />
      <LocalModel />
      <CachedModels />
    </>
  );
}

function DemoModel() {
  const loading = useModels((s) => s.loading);
  const loadDemo = useModels((s) => s.loadDemo);
  const loaded = useModels((s) => s.loaded);
  return (
    <section className="card" aria-labelledby="demo-title">
      <h2 id="demo-title">Built-in demo model</h2>
      <p className="muted">
        A tiny Llama-architecture model with a 512-token vocabulary, served with the studio: it works offline and loads in seconds, for trying
        every screen before downloading a real model.
      </p>
      <button type="button" disabled={loading !== null} onClick={() => void loadDemo()}>
        {loaded?.id === 'demo' ? 'Reload the demo model' : 'Load the demo model'}
      </button>
    </section>
  );
}

function LocalModel() {
  const loading = useModels((s) => s.loading);
  const loadFiles = useModels((s) => s.loadFiles);
  return (
    <section className="card" aria-labelledby="local-title">
      <h2 id="local-title">Model folder from this computer</h2>
      <DropZone
        inputLabel="Model files"
        folderLabel="Model folder"
        multiple
        disabled={loading !== null}
        onFiles={(files) => void loadFiles(files)}
        testId="model-drop"
        prompt={
          <>
            Drop a Hugging Face model folder here, or its files: <code>config.json</code>, <code>*.safetensors</code> (with the index when
            sharded), <code>tokenizer.json</code> and <code>tokenizer_config.json</code>. The files are read in place; nothing is uploaded or copied.
          </>
        }
      />
    </section>
  );
}
