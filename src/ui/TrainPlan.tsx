// The memory plan of the settings on the form, on the loaded model: weights, trainable values,
// their gradients and optimizer state, activations, workspace and the total, with units, as the
// worker computes it (train-plan.ts) and checks it against the device before a run starts. QLoRA
// says that the base is quantized for the run. Re-asked when the settings change; nothing here computes.
import { useEffect, useState } from 'react';
import type { SerializedError } from '../engine/errors.ts';
import type { TrainingPlan } from '../worker/engine-api.ts';
import type { TrainSettings } from '../worker/train-settings.ts';
import { formatBytes, formatInt } from './format.ts';
import { useModels } from './model-store.ts';
import { getEngine } from './store.ts';

export function TrainPlan({ settings }: { settings: TrainSettings | null }) {
  const loaded = useModels((s) => s.loaded);
  const key = settings && loaded ? `${loaded.id}:${JSON.stringify(settings)}` : '';
  // The answer for the settings it was asked for; an answer for other settings is not shown.
  const [answer, setAnswer] = useState<{ key: string; plan: TrainingPlan | null; error: SerializedError | null } | null>(null);

  useEffect(() => {
    if (key === '' || !settings) return;
    let live = true;
    void getEngine()
      .planTraining(settings)
      .then((r) => {
        if (live) setAnswer({ key, plan: r.ok ? r.value : null, error: r.ok ? null : r.error });
      });
    return () => {
      live = false;
    };
    // The settings object is rebuilt on every render; `key` holds what changes.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
  const plan = answer?.key === key ? answer.plan : null;
  const error = answer?.key === key ? answer.error : null;

  const quant = settings?.quant;
  const qat = settings?.qat;
  return (
    <div className="train-plan" data-testid="train-plan">
      {quant && (
        <p className="small" data-testid="train-quantized">
          QLoRA: the base model's projection weights are quantized to {quant.format.toUpperCase()}
          {quant.format === 'int8' ? ' (per row)' : ` (blocks of ${quant.block})`}
          {quant.doubleQuant ? ' with double quantization' : ''} in a copy loaded for this run; the adapter trains in f32.
        </p>
      )}
      {qat && (
        <p className="small" data-testid="train-qat">
          Quantization-aware: every forward multiplies by the projection weights as {qat.format.toUpperCase()}
          {qat.format === 'int8' ? ' (per row)' : ` (blocks of ${qat.block})`} stores them, the gradient reaches the f32 weights, and the run also saves
          the model in {qat.format.toUpperCase()} (folder {qat.format}/ of the download).
        </p>
      )}
      {!loaded ? (
        <p className="muted small">Load a model to see the run's memory plan.</p>
      ) : !plan ? (
        <p className="muted small">{error ? `No memory plan: ${error.message}` : settings ? 'Planning memory…' : 'The memory plan shows once every setting is valid.'}</p>
      ) : (
        <>
          <table className="kv plan" aria-label="Memory plan">
            <caption>GPU memory plan{plan.plan.trainableParameters !== null ? ` (${formatInt(plan.plan.trainableParameters)} trainable values)` : ''}</caption>
            <tbody>
              {(
                [
                  [plan.plan.quantization ? `Weights (${plan.plan.quantization})` : qat ? 'Weights, with the f32 working copies of QAT' : 'Weights', plan.plan.weights],
                  [settings?.method === 'full' ? 'Trainable copies (f32)' : 'Adapter (f32)', plan.plan.adapter],
                  ['Gradients', plan.plan.gradients],
                  ['Optimizer state (AdamW)', plan.plan.optimizer],
                  ['Activations', plan.plan.activations],
                  ['Workspace', plan.plan.workspace],
                  ['Total', plan.plan.total],
                ] as [string, number][]
              ).map(([k, v]) => (
                <tr key={k}>
                  <th scope="row">{k}</th>
                  <td>{formatBytes(v)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {plan.problem ? (
            <p className="error small" role="status" data-testid="train-plan-problem">
              {plan.problem.message} {plan.problem.hint}
            </p>
          ) : (
            <p className="muted small">
              {plan.budgetBytes !== null ? `Fits the ${formatBytes(plan.budgetBytes)} this run may use.` : 'Fits this GPU\'s buffer limits; the browser does not tell how much GPU memory is free.'}
            </p>
          )}
        </>
      )}
    </div>
  );
}
