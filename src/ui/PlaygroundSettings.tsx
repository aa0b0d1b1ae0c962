// The Playground's generation settings, each with its label and unit: max new tokens, temperature,
// top-p, top-k, seed and the chat-template toggle. Values are kept as typed; playground-store.ts
// reads them when Generate is pressed.
import type { ReactNode } from 'react';
import { type SettingsFields, usePlayground } from './playground-store.ts';

type NumberField = Exclude<keyof SettingsFields, 'chat'>;

const FIELDS: { key: NumberField; label: string; unit: ReactNode; step: string; min: string; max?: string }[] = [
  { key: 'maxNewTokens', label: 'Max new tokens', unit: 'tokens', step: '1', min: '1', max: '4096' },
  { key: 'temperature', label: 'Temperature', unit: '0 = greedy (the likeliest token)', step: '0.05', min: '0' },
  { key: 'topP', label: 'Top-p', unit: 'of the probability mass (1 keeps all)', step: '0.05', min: '0', max: '1' },
  { key: 'topK', label: 'Top-k', unit: 'tokens (0 keeps all)', step: '1', min: '0' },
  { key: 'seed', label: 'Seed', unit: 'the same seed repeats a sampled answer', step: '1', min: '0' },
];

export function PlaygroundSettings() {
  const fields = usePlayground((s) => s.fields);
  const setField = usePlayground((s) => s.setField);
  return (
    <fieldset className="pg-settings">
      <legend>Generation settings</legend>
      <div className="pg-settings-grid">
        {FIELDS.map((f) => (
          <div key={f.key} className="pg-field">
            <label htmlFor={`pg-${f.key}`}>{f.label}</label>
            <div className="pg-input-row">
              <input
                id={`pg-${f.key}`}
                type="number"
                inputMode="decimal"
                step={f.step}
                min={f.min}
                max={f.max}
                value={fields[f.key]}
                onChange={(e) => setField(f.key, e.currentTarget.value)}
                aria-describedby={`pg-${f.key}-unit`}
              />
              <span id={`pg-${f.key}-unit`} className="pg-unit">
                {f.unit}
              </span>
            </div>
          </div>
        ))}
        <div className="pg-field pg-check">
          <input id="pg-chat" type="checkbox" checked={fields.chat} onChange={(e) => setField('chat', e.currentTarget.checked)} />
          <label htmlFor="pg-chat">Use the chat template (the prompt becomes one user message)</label>
        </div>
      </div>
    </fieldset>
  );
}
