// The Playground's adapter card: the adapters of finished training runs (any tuning method) and
// dropped PEFT LoRA folders to choose from, what the chosen one is (method, rank, alpha, targets,
// size), its strength slider (0 = base model, 1 = as trained, up to 2; LoRA only, disabled with the
// reason for other methods), and why an adapter was refused.
import { DropZone } from './DropZone.tsx';
import { ErrorBox } from './ErrorBox.tsx';
import { formatBytes } from './format.ts';
import { MAX_STRENGTH, STRENGTH_STEP, formatStrength, usePlayground } from './playground-store.ts';

export function PlaygroundAdapter() {
  const adapters = usePlayground((s) => s.adapters);
  const adapterId = usePlayground((s) => s.adapterId);
  const strength = usePlayground((s) => s.strength);
  const error = usePlayground((s) => s.adapterError);
  const busy = usePlayground((s) => s.adapterBusy);
  const select = usePlayground((s) => s.selectAdapter);
  const setStrength = usePlayground((s) => s.setStrength);
  const drop = usePlayground((s) => s.dropAdapter);
  const chosen = adapters?.find((a) => a.id === adapterId) ?? null;
  // Only LoRA's update has a scale to change; other methods apply as trained.
  const noStrength = chosen && chosen.method !== 'lora' && chosen.method !== null ? `Strength applies to LoRA adapters only. ${chosen.strengthNote ?? ''}`.trim() : null;
  return (
    <section className="card" aria-labelledby="pg-adapter-title">
      <h2 id="pg-adapter-title">Adapter</h2>
      <div className="pg-adapter-row">
        <label htmlFor="pg-adapter">Tuned with</label>
        <select id="pg-adapter" value={adapterId ?? ''} onChange={(e) => void select(e.currentTarget.value || null)} disabled={adapters === null}>
          <option value="">None (Base column only)</option>
          {adapters?.map((a) => (
            <option key={a.id} value={a.id} disabled={a.error !== null}>
              {a.source === 'run' ? `Training run ${a.name}` : `Dropped: ${a.name}`}
              {a.methodLabel ? ` (${a.methodLabel})` : ''}
              {a.error ? ' (unreadable)' : ''}
            </option>
          ))}
        </select>
        {busy && (
          <span role="status" className="muted small">
            Checking the adapter…
          </span>
        )}
      </div>
      {chosen && (
        <p className="muted small" data-testid="pg-adapter-info">
          {chosen.method === 'lora' || chosen.method === 'dora' || chosen.method === null
            ? `${chosen.methodLabel ?? 'LoRA'} rank ${chosen.r ?? '—'}, alpha ${chosen.alpha ?? '—'}, on ${chosen.targets ?? '—'}`
            : `${chosen.methodLabel}${chosen.targets ? ` on ${chosen.targets}` : ''}`}
          ; {formatBytes(chosen.bytes)}
          {chosen.baseModel ? `; trained on ${chosen.baseModel}` : ''}.
        </p>
      )}
      {adapters !== null && adapters.length === 0 && (
        <p className="muted small" data-testid="pg-no-adapters">
          No adapters yet: a finished training run adds one here, or drop a PEFT adapter folder below.
        </p>
      )}
      <div className="pg-strength">
        <label htmlFor="pg-strength">Adapter strength</label>
        <input
          id="pg-strength"
          type="range"
          min={0}
          max={MAX_STRENGTH}
          step={STRENGTH_STEP}
          value={strength}
          disabled={adapterId === null || noStrength !== null}
          aria-valuetext={`${formatStrength(strength)} the trained scale`}
          aria-describedby="pg-strength-help"
          onChange={(e) => setStrength(Number(e.currentTarget.value))}
        />
        <output htmlFor="pg-strength" data-testid="pg-strength-value">
          {formatStrength(strength)}
        </output>
      </div>
      <p id="pg-strength-help" className="muted small" data-testid="pg-strength-help">
        {noStrength ?? "Multiplies the adapter's scale: 0× is the base model, 1× the adapter as trained, 2× twice its effect."}
      </p>
      <DropZone
        inputLabel="Adapter files"
        folderLabel="Adapter folder"
        prompt={
          <>
            Drop a PEFT LoRA adapter folder here (<code>adapter_config.json</code> and <code>adapter_model.safetensors</code>), or choose them. It is checked
            against the loaded model and kept for this session.
          </>
        }
        multiple
        onFiles={(files) => void drop(files)}
        disabled={busy}
        testId="pg-adapter-drop"
      />
      {error && <ErrorBox title={error.title} error={error.error} testId="pg-adapter-error" />}
    </section>
  );
}
