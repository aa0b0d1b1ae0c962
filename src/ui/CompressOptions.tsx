// The Compress screen's option fields: each technique's options, the LoRA recovery fine-tune that can
// follow pruning, distillation's teacher, student and training settings, and the rows a run uses.
// Every input has a label, a help line and, when wrong, its own message (compress-form.ts
// checkDraft); the screen (CompressScreen.tsx) lays them out and runs the technique.
import type { AdapterEntry, CachedModel } from '../worker/engine-api.ts';
import { type CompressDraft, type DataChoice, type DraftErrors, type DraftField, PRUNING_KINDS, needsRows } from './compress-form.ts';

interface FieldProps {
  id: string;
  label: string;
  unit?: string;
  help: string;
  error?: string;
  children: React.ReactNode;
}

function Field({ id, label, unit, help, error, children }: FieldProps) {
  return (
    <div className="train-field">
      <label htmlFor={id}>{label}</label>
      <div className="train-input">
        {children}
        {unit && <span className="unit">{unit}</span>}
      </div>
      <p className="field-help" id={`${id}-help`}>
        {help}
      </p>
      {error && (
        <p className="field-error" id={`${id}-error`} role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

interface OptionsProps {
  draft: CompressDraft;
  set: (p: Partial<CompressDraft>) => void;
  errors: DraftErrors;
  layers: number;
  disabled: boolean;
}

/** A text input bound to a draft field, described by its help line and its message. */
function TextInput({ id, field, draft, set, errors, disabled, mode }: OptionsProps & { id: string; field: DraftField; mode?: 'numeric' | 'decimal' }) {
  const error = errors[field];
  return (
    <input
      id={id}
      aria-describedby={error ? `${id}-help ${id}-error` : `${id}-help`}
      aria-invalid={error ? true : undefined}
      inputMode={mode}
      value={draft[field] as string}
      disabled={disabled}
      onChange={(e) => set({ [field]: e.target.value } as Partial<CompressDraft>)}
    />
  );
}

/** The draft fields a choice list edits. */
type ChoiceField = 'headsMode' | 'scope' | 'wandaPattern' | 'clusterK' | 'clusterTargets' | 'shareInit' | 'distillHeadsMode';

/** A choice list bound to a draft field, described by its help line. */
function SelectInput({ id, field, choices, draft, set, disabled }: OptionsProps & { id: string; field: ChoiceField; choices: readonly (readonly [string, string])[] }) {
  return (
    <select id={id} aria-describedby={`${id}-help`} value={draft[field]} disabled={disabled} onChange={(e) => set({ [field]: e.target.value } as Partial<CompressDraft>)}>
      {choices.map(([value, label]) => (
        <option key={value} value={value}>
          {label}
        </option>
      ))}
    </select>
  );
}

const HEAD_KINDS = [
  ['kv-groups', 'KV head groups'],
  ['query-heads', 'Query heads per group'],
] as const;

/** The options of the chosen technique. */
export function TechniqueOptions(p: OptionsProps) {
  const { draft, errors, layers } = p;
  switch (draft.kind) {
    case 'drop-layers':
      return (
        <Field id="cmp-layers" label="Layers to drop" unit="layer numbers" help={`Comma-separated, counted from 0; this model has layers 0 to ${layers - 1}.`} error={errors.layers}>
          <TextInput {...p} id="cmp-layers" field="layers" />
        </Field>
      );
    case 'heads':
      return (
        <>
          <Field id="cmp-heads" label="Heads removed" unit="per layer" help="KV head groups: whole key/value heads with the query heads that read them. Query heads: from every KV group." error={errors.headsRemove}>
            <TextInput {...p} id="cmp-heads" field="headsRemove" mode="numeric" />
          </Field>
          <Field id="cmp-heads-mode" label="What a head is" help="Grouped-query models keep the same number of query heads per KV head either way.">
            <SelectInput {...p} id="cmp-heads-mode" field="headsMode" choices={HEAD_KINDS} />
          </Field>
        </>
      );
    case 'neurons':
      return (
        <Field id="cmp-neurons" label="MLP neurons removed" unit="per layer" help="Intermediate channels with the smallest ‖gate‖·‖up‖·‖down‖ go." error={errors.neuronsRemove}>
          <TextInput {...p} id="cmp-neurons" field="neuronsRemove" mode="numeric" />
        </Field>
      );
    case 'sparsity':
      return (
        <>
          <Field id="cmp-sparsity" label="Sparsity" unit="% of weights" help="The share of each projection's weights set to zero (smallest |w| first)." error={errors.sparsityPercent}>
            <TextInput {...p} id="cmp-sparsity" field="sparsityPercent" mode="decimal" />
          </Field>
          <Field id="cmp-scope" label="Threshold" help="Per tensor: each projection loses the same share. Global: one magnitude threshold for all.">
            <SelectInput
              {...p}
              id="cmp-scope"
              field="scope"
              choices={[
                ['layer', 'Per tensor'],
                ['global', 'Global'],
              ]}
            />
          </Field>
        </>
      );
    case 'nm-2-4':
      return <p className="field-help">No options: 2 of every 4 consecutive input weights of each row become zero, by magnitude.</p>;
    case 'wanda':
      return (
        <>
          <Field id="cmp-wanda-pattern" label="Pattern" help="Unstructured: the chosen share of each row. 2:4: 2 of every 4 consecutive weights of a row.">
            <SelectInput
              {...p}
              id="cmp-wanda-pattern"
              field="wandaPattern"
              choices={[
                ['unstructured', 'Unstructured'],
                ['2:4', '2:4'],
              ]}
            />
          </Field>
          {draft.wandaPattern === 'unstructured' && (
            <Field id="cmp-wanda-sparsity" label="Sparsity" unit="% of each row" help="The share of each output row's weights set to zero (smallest |w|·‖x‖ first)." error={errors.wandaPercent}>
              <TextInput {...p} id="cmp-wanda-sparsity" field="wandaPercent" mode="decimal" />
            </Field>
          )}
          <Field id="cmp-calib-rows" label="Calibration rows" unit="rows" help="Rows of the data (not the held-out ones) whose activations weigh the weights; fewer when the data has fewer." error={errors.calibRows}>
            <TextInput {...p} id="cmp-calib-rows" field="calibRows" mode="numeric" />
          </Field>
        </>
      );
    case 'share-layers':
      return (
        <>
          <Field id="cmp-group" label="Layers per shared block" unit="layers" help={`Consecutive layers in each group run with one set of weights; ${layers} layers in all.`} error={errors.shareGroup}>
            <TextInput {...p} id="cmp-group" field="shareGroup" mode="numeric" />
          </Field>
          <Field id="cmp-share-init" label="Shared weights" help="The mean of the group's layers, or the first layer of each group as it is.">
            <SelectInput
              {...p}
              id="cmp-share-init"
              field="shareInit"
              choices={[
                ['mean', 'Mean of the group'],
                ['first', 'First layer of the group'],
              ]}
            />
          </Field>
        </>
      );
    case 'cluster':
      return (
        <>
          <Field id="cmp-k" label="Codebook size k" unit="centroids" help="16: half a byte per weight. 256: one byte per weight, closer to the original.">
            <SelectInput
              {...p}
              id="cmp-k"
              field="clusterK"
              choices={[
                ['16', '16'],
                ['256', '256'],
              ]}
            />
          </Field>
          <Field id="cmp-targets" label="Clustered tensors" help="Projections only, or the embeddings and lm_head too.">
            <SelectInput
              {...p}
              id="cmp-targets"
              field="clusterTargets"
              choices={[
                ['projections', 'Projections'],
                ['all-matrices', 'All matrices'],
              ]}
            />
          </Field>
        </>
      );
    case 'distill':
      return null;
  }
}

/** Distillation's teacher adapter, student and training settings. */
export function DistillOptions(p: OptionsProps & { adapters: AdapterEntry[] | null; students: CachedModel[] }) {
  const { draft, set, errors, layers, disabled, adapters, students } = p;
  const listed = adapters ?? [];
  const missing = draft.distillAdapter !== '' && !listed.some((a) => a.name === draft.distillAdapter);
  const own = draft.distillStudent === '';
  const studentGone = !own && !students.some((m) => m.id === draft.distillStudent);
  return (
    <>
      <Field id="cmp-teacher-adapter" label="Teacher's adapter" help="The teacher is the loaded model; with an adapter of a finished training run, the model as tuned.">
        <select id="cmp-teacher-adapter" aria-describedby="cmp-teacher-adapter-help" value={draft.distillAdapter} disabled={disabled} onChange={(e) => set({ distillAdapter: e.target.value })}>
          <option value="">None (the loaded model)</option>
          {listed.map((a) => (
            <option key={a.id} value={a.name}>
              Run {a.name}
              {a.methodLabel ? ` (${a.methodLabel})` : ''}
            </option>
          ))}
          {missing && <option value={draft.distillAdapter}>Run {draft.distillAdapter}</option>}
        </select>
      </Field>
      <Field
        id="cmp-student"
        label="Student"
        help="Made from the loaded model (fewer layers, heads or MLP neurons, initialised from its weights), or a downloaded model of the same family (same tokenizer)."
      >
        <select id="cmp-student" aria-describedby="cmp-student-help" value={draft.distillStudent} disabled={disabled} onChange={(e) => set({ distillStudent: e.target.value })}>
          <option value="">The loaded model, made smaller</option>
          {students.map((m) => (
            <option key={m.id} value={m.id}>
              {m.id.replace(/^hub:/, '')}
              {m.parameters !== null ? ` (${(m.parameters / 1e6).toFixed(1)} M parameters)` : ''}
            </option>
          ))}
          {studentGone && <option value={draft.distillStudent}>{draft.distillStudent.replace(/^hub:/, '')} (not in the cache)</option>}
        </select>
      </Field>
      {own && (
        <>
          <Field
            id="cmp-student-layers"
            label="Layers the student drops"
            unit="layer numbers"
            help={`Comma-separated, counted from 0 (of 0 to ${layers - 1}); empty keeps every layer. The student starts as the teacher without them.`}
            error={errors.distillLayers}
          >
            <TextInput {...p} id="cmp-student-layers" field="distillLayers" />
          </Field>
          <Field id="cmp-student-heads" label="Heads the student loses" unit="per layer" help="Empty for none. The least important heads (by weight magnitude) go from every layer." error={errors.distillHeads}>
            <TextInput {...p} id="cmp-student-heads" field="distillHeads" mode="numeric" />
          </Field>
          {draft.distillHeads.trim() !== '' && (
            <Field id="cmp-student-heads-mode" label="What a head is" help="KV head groups: whole key/value heads with the query heads that read them. Query heads: from every KV group.">
              <SelectInput {...p} id="cmp-student-heads-mode" field="distillHeadsMode" choices={HEAD_KINDS} />
            </Field>
          )}
          <Field id="cmp-student-neurons" label="MLP neurons the student loses" unit="per layer" help="Empty for none. Intermediate channels with the smallest ‖gate‖·‖up‖·‖down‖ go." error={errors.distillNeurons}>
            <TextInput {...p} id="cmp-student-neurons" field="distillNeurons" mode="numeric" />
          </Field>
        </>
      )}
      <Field id="cmp-alpha" label="alpha" unit="0 to 1" help="Weight of the teacher term (T²·KL); the rest weighs the cross-entropy with the data's labels." error={errors.distillAlpha}>
        <TextInput {...p} id="cmp-alpha" field="distillAlpha" mode="decimal" />
      </Field>
      <Field id="cmp-temperature" label="Temperature" unit="T" help="Softens both distributions in the KL term; 1 compares them as they are." error={errors.distillTemperature}>
        <TextInput {...p} id="cmp-temperature" field="distillTemperature" mode="decimal" />
      </Field>
      <Field id="cmp-distill-steps" label="Distillation steps" unit="steps" help="Optimizer steps of 8 rows each (AdamW, linear decay)." error={errors.distillSteps}>
        <TextInput {...p} id="cmp-distill-steps" field="distillSteps" mode="numeric" />
      </Field>
      <Field id="cmp-distill-lr" label="Distillation learning rate" help="Peak learning rate of every student weight." error={errors.distillLr}>
        <TextInput {...p} id="cmp-distill-lr" field="distillLr" mode="decimal" />
      </Field>
    </>
  );
}

/** The optional LoRA recovery fine-tune after a pruning technique. */
export function RecoveryOptions(p: OptionsProps) {
  const { draft, set, errors, disabled } = p;
  if (!PRUNING_KINDS.includes(draft.kind)) return null;
  return (
    <fieldset className="methods">
      <legend>LoRA recovery</legend>
      <label className="method-option">
        <input type="checkbox" checked={draft.recover} disabled={disabled} onChange={(e) => set({ recover: e.target.checked })} aria-describedby="cmp-recover-help" />
        <span>Fine-tune after pruning</span>
      </label>
      <p className="field-help" id="cmp-recover-help">
        Trains a LoRA adapter on all projections of the pruned model, merges it into the weights and keeps the zeros of sparsity.
      </p>
      {draft.recover && (
        <div className="train-fields">
          <Field id="cmp-recover-steps" label="Recovery steps" unit="steps" help="Optimizer steps of 8 rows each." error={errors.recoverSteps}>
            <TextInput {...p} id="cmp-recover-steps" field="recoverSteps" mode="numeric" />
          </Field>
          <Field id="cmp-recover-rank" label="LoRA rank" help="Rank of the adapter (alpha is twice the rank)." error={errors.recoverRank}>
            <TextInput {...p} id="cmp-recover-rank" field="recoverRank" mode="numeric" />
          </Field>
          <Field id="cmp-recover-lr" label="Recovery learning rate" help="Peak learning rate (AdamW, linear decay)." error={errors.recoverLr}>
            <TextInput {...p} id="cmp-recover-lr" field="recoverLr" mode="decimal" />
          </Field>
        </div>
      )}
    </fieldset>
  );
}

/** Which rows the run uses: the Data screen's dataset, the sample, or none. */
export function DataOptions({ draft, set, errors, disabled, data, datasetName }: OptionsProps & { data: DataChoice; datasetName: string | null }) {
  return (
    <Field
      id="cmp-data"
      label="Data"
      help={`Rows of the Data screen's dataset or of the sample. A fifth of them (at most 32) are held out for the loss; the rest ${needsRows(draft) ? 'calibrate and train' : 'are not used by this technique'}.`}
      error={errors.data}
    >
      <select
        id="cmp-data"
        aria-describedby={errors.data ? 'cmp-data-help cmp-data-error' : 'cmp-data-help'}
        aria-invalid={errors.data ? true : undefined}
        value={data}
        disabled={disabled}
        onChange={(e) => set({ data: e.target.value as DataChoice })}
      >
        <option value="dataset">{datasetName ? `Data screen: ${datasetName}` : 'Data screen (none imported)'}</option>
        <option value="sample">Sample (50 rows)</option>
        <option value="none">None (no loss)</option>
      </select>
    </Field>
  );
}
