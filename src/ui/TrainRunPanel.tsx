// The run on the Train screen: the one this tab trains (stage, a progress bar with steps, elapsed
// time and time left, Pause and Cancel; Resume and Cancel once paused; Download once complete), an
// unfinished one found in IndexedDB (interrupted by a reload or a closed tab, or paused) offered for
// Resume, or one another tab trains (shown read-only, its progress read from IndexedDB).
import { useEffect } from 'react';
import type { RunRecord, RunUpdate } from '../worker/engine-api.ts';
import { isResumable } from '../worker/runs.ts';
import { METHODS, adapterDownloadLabel } from '../worker/train-settings.ts';
import { ErrorBox } from './ErrorBox.tsx';
import { Progress } from './Progress.tsx';
import { formatBytes, formatDuration, formatInt } from './format.ts';
import { useStudio } from './store.ts';
import { useTrain } from './train-store.ts';

export function TrainRunPanel() {
  const current = useTrain((s) => s.current);
  const overview = useTrain((s) => s.overview);
  const showMetrics = useTrain((s) => s.showMetrics);
  const waiting = current ? null : (overview?.runs.find(isResumable) ?? null);
  const elsewhere = waiting !== null && waiting.status === 'running' && (overview?.trainingElsewhere ?? false);
  const waitingId = waiting?.id ?? null;
  const waitingStep = waiting?.step ?? null;
  // The charts show the stored steps of a run that is not training here.
  useEffect(() => {
    if (waitingId !== null) void showMetrics(waitingId);
  }, [waitingId, waitingStep, showMetrics]);

  if (current) return <CurrentRun update={current} />;
  if (waiting && elsewhere) return <ElsewhereRun run={waiting} />;
  if (waiting) return <UnfinishedRun run={waiting} />;
  return null;
}

function stageText(u: RunUpdate, stopping: 'pause' | 'cancel' | null): string {
  if (stopping === 'pause') return 'Pausing after the current step…';
  if (stopping === 'cancel') return 'Cancelling after the current step…';
  switch (u.stage) {
    case 'loading-model':
      return `Loading ${u.run.model.name}…`;
    case 'reloading-base':
      return `Loading ${u.run.model.name} in full precision again…`;
    case 'quantizing':
      return `Quantizing the base model to ${u.run.settings.quant?.format.toUpperCase() ?? 'a 4-bit format'} for QLoRA…`;
    case 'preparing':
      return 'Reading and tokenizing the dataset…';
    case 'saving':
      return 'Saving the adapter…';
    case 'stopped':
      return statusText(u.run);
    default:
      if (u.progress?.phase === 'eval') return `Measuring the validation loss (${formatInt(u.progress.rowsDone ?? 0)} of ${formatInt(u.progress.rowsTotal ?? 0)} rows)…`;
      if (u.progress?.phase === 'checkpoint') return 'Writing a checkpoint…';
      return 'Training';
  }
}

function statusText(run: RunRecord): string {
  switch (run.status) {
    case 'completed':
      return 'Completed';
    case 'paused':
      return 'Paused';
    case 'cancelled':
      return 'Cancelled';
    case 'failed':
      return 'Failed';
    default:
      return 'Stopped';
  }
}

function StepLine({ run, step, total, etaMs }: { run: RunRecord; step: number; total: number; etaMs: number | null }) {
  const parts = [
    `elapsed ${formatDuration(run.elapsedMs / 1000)}`,
    etaMs !== null && step < total ? `about ${formatDuration(etaMs / 1000)} left` : null,
    run.status === 'completed' ? (run.settings.method === 'full' ? 'model saved' : 'adapter saved') : run.checkpointStep !== null ? `last checkpoint: step ${formatInt(run.checkpointStep)}` : 'no checkpoint yet',
  ].filter(Boolean);
  return (
    <>
      <Progress label="Training progress" value={total > 0 ? step : null} max={total > 0 ? total : null} detail={parts.join(' · ')} testId="train-progress" />
      <p className="train-step" data-testid="train-step" data-step={step}>
        Step {formatInt(step)} of {total > 0 ? formatInt(total) : '…'}
        {total > 0 ? ` (${((100 * step) / total).toFixed(0)} %)` : ''}
      </p>
    </>
  );
}

function CurrentRun({ update }: { update: RunUpdate }) {
  const busy = useTrain((s) => s.busy);
  const stopping = useTrain((s) => s.stopping);
  const notice = useTrain((s) => s.notice);
  const pause = useTrain((s) => s.pause);
  const resume = useTrain((s) => s.resume);
  const cancel = useTrain((s) => s.cancel);
  const download = useTrain((s) => s.download);
  const exporting = useTrain((s) => s.exporting);
  const exportNotice = useTrain((s) => s.exportNotice);
  const setScreen = useStudio((s) => s.setScreen);
  const { run, progress } = update;
  const step = Math.max(progress?.step ?? 0, run.step);
  const total = progress?.totalSteps ?? run.totalSteps;
  const stopped = update.stage === 'stopped' && !busy;
  return (
    <section className="card" aria-labelledby="run-title" data-testid="train-run">
      <h2 id="run-title">
        Run {run.id} <span className={`badge ${stopped ? badgeOf(run) : 'badge-neutral'}`} data-testid="run-status">{stopped ? statusText(run) : stageText(update, stopping)}</span>
      </h2>
      <p className="muted small">
        {METHODS[run.settings.method]?.name ?? run.settings.method} on {run.model.name} with {run.dataset.name}
        {run.trainableParameters !== null ? `, ${formatInt(run.trainableParameters)} trainable parameters` : ''}
        {progress?.loss !== undefined ? `; last loss ${progress.loss.toFixed(4)}` : ''}
      </p>
      <StepLine run={run} step={step} total={total} etaMs={progress?.etaMs ?? null} />
      <div className="button-row">
        {busy && (
          <>
            <button type="button" onClick={() => void pause()} disabled={stopping !== null || update.stage === 'saving'}>
              Pause
            </button>
            <button type="button" className="danger" onClick={() => void cancel(run.id)} disabled={stopping === 'cancel' || update.stage === 'saving'}>
              Cancel
            </button>
          </>
        )}
        {stopped && run.status === 'paused' && (
          <>
            <button type="button" className="primary" onClick={() => void resume(run.id)}>
              Resume
            </button>
            <button type="button" className="danger" onClick={() => void cancel(run.id)}>
              Cancel run
            </button>
          </>
        )}
        {stopped && run.status === 'completed' && (
          <>
            <button type="button" className="primary" onClick={() => void download(run.id, 'peft')} disabled={exporting !== null}>
              {adapterDownloadLabel(run.settings.method)}
            </button>
            <button type="button" onClick={() => setScreen('export')}>
              More formats on the Export screen
            </button>
          </>
        )}
      </div>
      {notice?.kind === 'ok' && (
        <p className="muted" role="status" data-testid="train-notice">
          {notice.text}
        </p>
      )}
      {stopped && run.status === 'failed' && run.error && <ErrorBox title="The run stopped with an error." error={run.error} testId="run-error" />}
      {exporting?.runId === run.id && <p className="muted small">Preparing the download… {exporting.progress ? `${formatBytes(exporting.progress.bytesDone)} of ${formatBytes(exporting.progress.bytesTotal)}` : ''}</p>}
      {exportNotice?.runId === run.id && exportNotice.kind === 'error' && exportNotice.error && <ErrorBox title={exportNotice.text} error={exportNotice.error} />}
    </section>
  );
}

export function badgeOf(run: RunRecord): string {
  return run.status === 'completed' ? 'badge-ok' : run.status === 'failed' ? 'badge-bad' : run.status === 'cancelled' ? 'badge-neutral' : 'badge-warn';
}

function UnfinishedRun({ run }: { run: RunRecord }) {
  const resume = useTrain((s) => s.resume);
  const cancel = useTrain((s) => s.cancel);
  const busy = useTrain((s) => s.busy);
  const from = run.checkpointStep ?? 0;
  return (
    <section className="card unfinished" aria-labelledby="unfinished-title" data-testid="unfinished-run">
      <h2 id="unfinished-title">
        Unfinished run {run.id} <span className="badge badge-warn">{run.status === 'paused' ? 'Paused' : 'Interrupted'}</span>
      </h2>
      <p>
        {METHODS[run.settings.method]?.name ?? run.settings.method} on {run.model.name} with {run.dataset.name} stopped at step {formatInt(run.step)}
        {run.totalSteps > 0 ? ` of ${formatInt(run.totalSteps)}` : ''}
        {run.status === 'paused' ? ' when it was paused.' : ', when the page was closed or reloaded.'}{' '}
        {from > 0 ? `Resuming continues from its checkpoint of step ${formatInt(from)}.` : 'It has no checkpoint yet, so resuming starts it from step 0.'}
      </p>
      <div className="button-row">
        <button type="button" className="primary" onClick={() => void resume(run.id)} disabled={busy}>
          Resume training from step {formatInt(from)}
        </button>
        <button type="button" className="danger" onClick={() => void cancel(run.id)} disabled={busy}>
          Cancel run
        </button>
      </div>
    </section>
  );
}

function ElsewhereRun({ run }: { run: RunRecord }) {
  return (
    <section className="card" aria-labelledby="elsewhere-title" data-testid="elsewhere-run">
      <h2 id="elsewhere-title">
        Run {run.id} <span className="badge badge-neutral">Training in another tab</span>
      </h2>
      <p className="muted small">
        Another tab of the studio trains this run; one run trains at a time. Pause or cancel it in that tab. Its progress here is read from the browser's
        storage every few seconds.
      </p>
      <StepLine run={run} step={run.step} total={run.totalSteps} etaMs={null} />
    </section>
  );
}
