// The training settings form: the method (from the METHODS registry), then its fields and the
// shared ones, each a labelled input with its unit, a short help line and, when wrong, a message
// tied to it (aria-invalid, aria-describedby). Less common fields sit under "More settings".
// Defaults follow the loaded model's size; "Start training" is disabled while a field is wrong. The
// methods and their fields come from the engine's registry through train-settings.ts; the memory
// plan of the settings shows above "Start training" (TrainPlan).
import { METHODS, METHOD_IDS, type FieldSpec, type MethodId, fieldsOf, parseSettings } from '../worker/train-settings.ts';
import { TrainPlan } from './TrainPlan.tsx';
import { formatCount } from './format.ts';
import { useModels } from './model-store.ts';
import { DEMO_FACTS, useTrain } from './train-store.ts';

export function TrainSettingsForm() {
  const draft = useTrain((s) => s.draft);
  const setMethod = useTrain((s) => s.setMethod);
  const syncDefaults = useTrain((s) => s.syncDefaults);
  const start = useTrain((s) => s.start);
  const busy = useTrain((s) => s.busy);
  const elsewhere = useTrain((s) => s.overview?.trainingElsewhere ?? false);
  const loaded = useModels((s) => s.loaded);
  const facts = loaded ?? DEMO_FACTS;
  const method = draft.method as MethodId;
  const { errors, settings } = parseSettings(draft, facts);
  const fields = fieldsOf(method);
  const wrong = Object.keys(errors).length;

  return (
    <section className="card" aria-labelledby="train-settings-title">
      <h2 id="train-settings-title">Method and settings</h2>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void start();
        }}
      >
        <fieldset className="methods">
          <legend>Method</legend>
          {METHOD_IDS.map((id) => (
            <label key={id} className="method-option">
              <input type="radio" name="method" value={id} checked={method === id} onChange={() => setMethod(id)} />
              <span>
                <strong>{METHODS[id].name}</strong> <span className="muted small">{METHODS[id].description}</span>
              </span>
            </label>
          ))}
        </fieldset>
        <p className="muted small">
          Defaults for {loaded ? `${loaded.name} (${formatCount(loaded.parameters)} parameters)` : 'the demo model'}.
          <button type="button" className="link" onClick={() => syncDefaults(loaded?.id ?? '', facts, true)}>
            Reset to the defaults
          </button>
        </p>
        <div className="train-fields">{fields.filter((f) => !f.advanced).map((f) => <Field key={f.key} spec={f} error={errors[f.key]} />)}</div>
        <details className="settings" open={fields.some((f) => f.advanced && errors[f.key]) ? true : undefined}>
          <summary>More settings (warmup, validation, checkpoints, seed…)</summary>
          <div className="train-fields">{fields.filter((f) => f.advanced).map((f) => <Field key={f.key} spec={f} error={errors[f.key]} />)}</div>
        </details>
        <TrainPlan settings={settings} />
        <div className="train-start">
          <button type="submit" className="primary" disabled={busy || wrong > 0 || elsewhere}>
            Start training
          </button>
          {wrong > 0 && (
            <span className="error small" role="status">
              {wrong === 1 ? 'One setting needs' : `${wrong} settings need`} correcting (marked above).
            </span>
          )}
          {elsewhere && <span className="muted small">Another tab is training; one run trains at a time.</span>}
        </div>
      </form>
    </section>
  );
}

function Field({ spec, error }: { spec: FieldSpec; error: string | undefined }) {
  const value = useTrain((s) => s.draft[spec.key] ?? '');
  const setField = useTrain((s) => s.setField);
  const id = `train-${spec.key.replace(/\./g, '-')}`;
  const help = `${id}-help`;
  const err = `${id}-error`;
  return (
    <div className={error ? 'train-field invalid' : 'train-field'}>
      <label htmlFor={id}>{spec.label}</label>
      <div className="train-input">
        {spec.kind === 'select' ? (
          <select id={id} value={value} onChange={(e) => setField(spec.key, e.target.value)} aria-describedby={help}>
            {spec.options?.map((o) => (
              <option key={o.value} value={o.value}>
                {o.label}
              </option>
            ))}
          </select>
        ) : (
          <input
            id={id}
            type="text"
            inputMode={spec.kind === 'text' ? 'text' : 'decimal'}
            value={value}
            spellCheck={false}
            onChange={(e) => setField(spec.key, e.target.value)}
            aria-invalid={error ? true : undefined}
            aria-describedby={error ? `${err} ${help}` : help}
          />
        )}
        {spec.unit && <span className="unit">{spec.unit}</span>}
      </div>
      {error && (
        <p id={err} className="field-error">
          {error}
        </p>
      )}
      <p id={help} className="field-help">
        {spec.help}
      </p>
    </div>
  );
}
