// The cached Hub models in this browser's store: size, whether the download finished, parameters,
// Load and Delete; and the site's storage (used, allowed, whether the browser keeps it).
import { ErrorBox } from './ErrorBox.tsx';
import { formatBytes, formatCount, formatInt } from './format.ts';
import { useModels } from './model-store.ts';

export function CachedModels() {
  const cached = useModels((s) => s.cached);
  const error = useModels((s) => s.cachedError);
  const loaded = useModels((s) => s.loaded);
  const loading = useModels((s) => s.loading);
  const download = useModels((s) => s.download);
  const load = useModels((s) => s.loadCached);
  const remove = useModels((s) => s.deleteCached);
  const persisted = useModels((s) => s.persisted);
  const ask = useModels((s) => s.askPersistence);
  const storage = cached?.storage;

  return (
    <section className="card" aria-labelledby="cached-title">
      <h2 id="cached-title">Cached models</h2>
      {cached === null && !error && <p role="status">Reading the store…</p>}
      {cached && cached.models.length === 0 && <p className="muted">No Hub model is cached in this browser yet.</p>}
      {cached && cached.models.length > 0 && (
        <table className="grid" aria-label="Cached models" data-testid="cached-models">
          <thead>
            <tr>
              <th scope="col">Model</th>
              <th scope="col">Revision</th>
              <th scope="col">Size</th>
              <th scope="col">Parameters</th>
              <th scope="col">State</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {cached.models.map((m) => {
              const isLoaded = loaded?.id === m.id;
              const isDownloading = download?.id.replace(/^hub:/, '').split('@')[0] === m.repo;
              return (
                <tr key={m.id} data-testid={`cached-${m.repo}`}>
                  <td>
                    <code>{m.repo}</code>
                    {isLoaded && <span className="badge badge-ok">loaded</span>}
                  </td>
                  <td>{m.revision}</td>
                  <td>{formatBytes(m.bytes)}</td>
                  <td>{m.parameters === null ? '—' : `${formatCount(m.parameters)}`}</td>
                  <td>
                    {m.complete
                      ? `complete, ${formatInt(m.files)} files`
                      : `partial: ${formatBytes(m.partialBytes)} in unfinished files; download again to resume`}
                  </td>
                  <td className="actions">
                    <button type="button" disabled={!m.complete || loading !== null} onClick={() => void load(m.id)} aria-label={`Load ${m.repo}`}>
                      Load
                    </button>
                    <button type="button" className="danger" disabled={isDownloading} onClick={() => void remove(m.id)} aria-label={`Delete ${m.repo}`}>
                      Delete
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {cached && (
        <p className="muted small" data-testid="storage">
          The store holds {formatBytes(cached.usage.bytes)} in {formatInt(cached.usage.files)} files
          {storage ? `; this site uses ${formatBytes(storage.usage)} of the ${formatBytes(storage.quota)} the browser allows it` : ''}.{' '}
          {persisted === true
            ? 'The browser keeps these files under storage pressure.'
            : 'The browser may clear these files when disk space runs low.'}
        </p>
      )}
      {cached && persisted !== true && (
        <button type="button" onClick={() => void ask()}>
          Ask the browser to keep downloads
        </button>
      )}
      {error && <ErrorBox title="The store could not be read or changed." error={error} />}
    </section>
  );
}
