// The Hub part of the Model screen: the curated models with their memory estimates, a field for any
// Hub model id, the access token for gated models, the Hub endpoint setting, and the download in
// progress (bytes, rate, time left, Cancel).
import { type FormEvent, useState } from 'react';
import { ErrorBox } from './ErrorBox.tsx';
import { EstimateLine } from './EstimateLine.tsx';
import { Progress } from './Progress.tsx';
import { formatBytes, formatDuration, formatRate } from './format.ts';
import { DEFAULT_HUB_ENDPOINT, useModels } from './model-store.ts';

export function HubModels() {
  const catalog = useModels((s) => s.catalog);
  const download = useModels((s) => s.download);
  const outcome = useModels((s) => s.downloadOutcome);
  const start = useModels((s) => s.startDownload);
  const token = useModels((s) => s.token);
  const setToken = useModels((s) => s.setToken);
  const [custom, setCustom] = useState('');
  const busy = download !== null;

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (custom.trim()) void start(custom.trim());
  };

  return (
    <section className="card" aria-labelledby="hub-title">
      <h2 id="hub-title">Hugging Face Hub</h2>
      <p className="muted">
        Downloads are saved in this browser (IndexedDB) and resume where they stopped. Memory figures are estimates for this device, from each
        model&apos;s config.
      </p>
      {catalog === null ? (
        <p role="status">Sizing the curated models for this device…</p>
      ) : (
        <ul className="model-list" aria-label="Curated Hub models">
          {catalog.map((m) => (
            <li key={m.repo} className="model-item" data-testid={`catalog-${m.repo}`}>
              <div className="model-head">
                <div>
                  <strong>{m.title}</strong> <code>{m.repo}</code>
                  {m.gated && <span className="badge badge-neutral">gated: needs a token</span>}
                  <p className="muted small">{m.note}</p>
                </div>
                <button type="button" disabled={busy} onClick={() => void start(m.repo)} aria-label={`Download ${m.title}`}>
                  Download
                </button>
              </div>
              {m.estimate && <EstimateLine estimate={m.estimate} />}
              {m.error && <p className="error small">Cannot estimate: {m.error.message}</p>}
            </li>
          ))}
        </ul>
      )}

      <form className="inline-form" onSubmit={submit}>
        <label htmlFor="hub-id">Hub model id</label>
        <input id="hub-id" type="text" placeholder="ORG/NAME or ORG/NAME@REVISION" value={custom} onChange={(e) => setCustom(e.target.value)} spellCheck={false} />
        <button type="submit" disabled={busy || !custom.trim()}>
          Download
        </button>
      </form>
      <div className="inline-form">
        <label htmlFor="hub-token">Access token</label>
        <input id="hub-token" type="password" autoComplete="off" placeholder="hf_… (gated and private models)" value={token} onChange={(e) => setToken(e.target.value)} />
      </div>
      <p className="muted small">The token is sent only to the Hub endpoint with this session&apos;s downloads and is never saved.</p>
      <EndpointSetting />

      {download && <DownloadProgress />}
      {outcome?.kind === 'ok' && (
        <p className="ok" role="status" data-testid="download-outcome">
          {outcome.text}
        </p>
      )}
      {outcome?.kind === 'error' && outcome.error && <ErrorBox title={outcome.text} error={outcome.error} testId="download-error" />}
    </section>
  );
}

function EndpointSetting() {
  const endpoint = useModels((s) => s.hubEndpoint);
  const setEndpoint = useModels((s) => s.setHubEndpoint);
  return (
    <details className="settings">
      <summary>Hub endpoint: {endpoint || DEFAULT_HUB_ENDPOINT}</summary>
      <div className="inline-form">
        <label htmlFor="hub-endpoint">Endpoint URL</label>
        <input id="hub-endpoint" type="url" value={endpoint} placeholder={DEFAULT_HUB_ENDPOINT} onChange={(e) => setEndpoint(e.target.value)} spellCheck={false} />
      </div>
      <p className="muted small">
        A mirror of the Hub API, saved in this browser. Opening the studio with <code>?hubEndpoint=URL</code> sets it for that visit.
      </p>
    </details>
  );
}

function DownloadProgress() {
  const download = useModels((s) => s.download);
  const cancel = useModels((s) => s.cancelDownload);
  if (!download) return null;
  const p = download.progress;
  const detail = p
    ? `${formatBytes(p.bytes)} of ${formatBytes(p.total)} · ${formatRate(p.bytesPerSecond)} · ${
        p.secondsLeft === null ? 'time left unknown' : `${formatDuration(p.secondsLeft)} left`
      } · ${p.file}`
    : `Looking up ${download.id}…`;
  return (
    <div className="job" data-testid="download">
      <p>
        <strong>Downloading {download.id}</strong>
      </p>
      <Progress label={`Downloading ${download.id}`} value={p ? p.bytes : null} max={p ? p.total : null} detail={detail} testId="download-progress" />
      <button type="button" onClick={cancel}>
        Cancel download
      </button>
    </div>
  );
}
