// The settings of a training run as the studio edits them: the fine-tuning methods it offers (taken
// from the tuning-method registry's metadata, src/engine/peft/method-info.ts, so a method added there
// appears here with its fields, defaults and bounds; plus QLoRA, LoRA over a quantized base), the
// hyperparameters every method shares, defaults scaled to the size of the chosen model, and the
// parsing and checking of what a person typed, field by field, with messages that say what is wrong
// and what is allowed. Pure data and functions: the Train screen imports them to check the form as
// it is typed, and the worker checks the same settings again before it trains. Nothing here trains
// or touches the GPU, and nothing imports engine code that does: the page's bundle carries this file.

import { InvalidArgumentError } from '../engine/errors.ts';
import { type ExportFormat, METHOD_INFOS as REGISTRY, type MethodInfo, type MethodOption, type MethodOptionValues, parseMethodOptions } from '../engine/peft/method-info.ts';
import { SCHEDULE_NAMES, type ScheduleName } from '../engine/optim/schedule.ts';
import { QUANT_FORMATS, type QuantFormat, resolveQuantOptions } from '../engine/quant/format.ts';

/** The projections LoRA can adapt in the Llama-family models the engine loads. */
export const LINEAR_MODULE_NAMES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

/** A form field: its key in the settings, its label with the unit, and what it accepts. */
export interface FieldSpec {
  key: string;
  label: string;
  /** Shown after the input: "steps", "tokens", "rows" … ('' for none). */
  unit: string;
  kind: 'int' | 'number' | 'select' | 'text';
  /** For 'select': value and label of each option. */
  options?: readonly { value: string; label: string }[];
  /** A short explanation under the field. */
  help: string;
  /** Shown under "More settings" rather than at once. */
  advanced?: boolean;
}

/** The settings as the form holds them: one string per field key. */
export type SettingsDraft = Record<string, string>;

/** Settings every method shares (the optimizer, the schedule, the batches, the run's length). */
export interface CommonSettings {
  lr: number;
  schedule: ScheduleName;
  /** Warmup steps, or a share of the run when below 1. */
  warmup: number;
  /** Passes over the training set; used when steps is 0. */
  epochs: number;
  /** Optimizer steps of the run; 0 means "run `epochs` epochs". */
  steps: number;
  batchSize: number;
  gradAccum: number;
  seqLen: number;
  /** Share of the examples held out for validation. */
  valFraction: number;
  /** Evaluate every N steps (0: only at the end). */
  evalEvery: number;
  /** Write a checkpoint every N steps (0: only at the end). */
  saveEvery: number;
  seed: number;
}

/** LoRA's settings (also DoRA's and QLoRA's). */
export interface LoraSettings {
  rank: number;
  alpha: number;
  dropout: number;
  /** "all-linear", or module names separated by commas. */
  targets: string;
}

/** QLoRA's quantization of the frozen base. */
export interface QuantSettings {
  format: QuantFormat;
  /** NF4/FP4 only: the absmax values quantized again. */
  doubleQuant: boolean;
  /** NF4/FP4 block size, INT4 group size; INT8 quantizes per row and ignores it. */
  block: number;
}

/** Quantization-aware full fine-tuning: the weight format the projections train through. */
export interface QatSettings {
  format: QuantFormat;
  /** NF4/FP4 block size, INT4 group size; INT8 quantizes per row and ignores it. */
  block: number;
}

/** A studio method id: a registry id ("lora", "ia3", "full" …) or "qlora". */
export type MethodId = string;

/**
 * The settings of a run: the method, its own settings and the shared ones. LoRA, DoRA and QLoRA
 * keep theirs in `lora` (QLoRA also `quant`); every other method keeps its registry option values
 * (by config key, as parseMethodOptions gives them) in `options`.
 */
export type TrainSettings = {
  method: MethodId;
  lora?: LoraSettings;
  quant?: QuantSettings;
  /** Full fine-tuning only: quantization-aware for this weight format (the projections fake-quantized in every forward). */
  qat?: QatSettings;
  options?: MethodOptionValues;
} & CommonSettings;

/** What defaults and checks need to know of the chosen model. */
export interface ModelFacts {
  parameters: number;
  maxPositionEmbeddings: number;
}

/** A fine-tuning method as the Train screen offers it. */
export interface MethodSpec {
  id: MethodId;
  name: string;
  description: string;
  /** The registry method that makes the adapter (QLoRA: LoRA); its engine side is methods.ts's findMethod(id). */
  engine: MethodInfo;
  /** The base model is quantized while it trains (QLoRA). */
  quantized: boolean;
  fields: readonly FieldSpec[];
  defaults(model: ModelFacts): SettingsDraft;
  /** Reads the method's own fields; puts a message per bad field into `errors`. */
  parse(draft: SettingsDraft, errors: Record<string, string>): Pick<TrainSettings, 'method' | 'lora' | 'quant' | 'qat' | 'options'>;
}

/** The size class of a model, which its defaults follow. */
export function sizeClass(parameters: number): 'tiny' | 'small' | 'medium' | 'large' {
  if (parameters < 50e6) return 'tiny';
  if (parameters < 600e6) return 'small';
  if (parameters < 2.5e9) return 'medium';
  return 'large';
}

const LORA_FIELDS: readonly FieldSpec[] = [
  { key: 'lora.rank', label: 'Rank (r)', unit: '', kind: 'int', help: 'Size of the low-rank update; higher learns more and trains more parameters.' },
  { key: 'lora.alpha', label: 'Alpha', unit: '', kind: 'number', help: 'The update is scaled by alpha / rank; twice the rank is a common choice.' },
  { key: 'lora.dropout', label: 'Dropout', unit: '', kind: 'number', help: 'Share of the adapter input dropped in training, 0 to below 1.', advanced: true },
  {
    key: 'lora.targets',
    label: 'Target modules',
    unit: '',
    kind: 'text',
    help: `"all-linear", or names separated by commas from ${LINEAR_MODULE_NAMES.join(', ')}.`,
  },
];

/** The weight formats as the form's choice lists name them. */
const QUANT_FORMAT_LABELS: Record<QuantFormat, string> = { nf4: 'NF4 (4-bit normal float)', fp4: 'FP4 (4-bit float)', int8: 'INT8 (per row)', int4: 'INT4 (groups)' };

const QUANT_FIELDS: readonly FieldSpec[] = [
  {
    key: 'quant.format',
    label: 'Base quantization',
    unit: '',
    kind: 'select',
    options: QUANT_FORMATS.map((f) => ({ value: f, label: QUANT_FORMAT_LABELS[f] })),
    help: 'How the frozen projection weights are stored while training; the adapter itself trains in f32.',
  },
  {
    key: 'quant.doubleQuant',
    label: 'Double quantization',
    unit: '',
    kind: 'select',
    options: [
      { value: 'true', label: 'Yes' },
      { value: 'false', label: 'No' },
    ],
    help: 'NF4 and FP4 only: quantize the block scales too (about 0.4 bit per weight less).',
  },
  { key: 'quant.block', label: 'Block size', unit: 'weights', kind: 'int', help: 'NF4/FP4: a power of two from 32 to 4096; INT4: 32, 64 or 128; INT8 ignores it.', advanced: true },
];

const QAT_FIELDS: readonly FieldSpec[] = [
  {
    key: 'qat.format',
    label: 'Quantization-aware training',
    unit: '',
    kind: 'select',
    options: [
      { value: 'off', label: 'Off (f32 weights)' },
      ...QUANT_FORMATS.map((f) => ({ value: f, label: QUANT_FORMAT_LABELS[f] })),
    ],
    help: 'Trains through the quantized weights (each forward uses decode(encode(W)), the gradient reaches the f32 weights), and also saves the model in that format.',
  },
  { key: 'qat.block', label: 'QAT block size', unit: 'weights', kind: 'int', help: 'NF4/FP4: a power of two from 32 to 4096; INT4: 32, 64 or 128; INT8 ignores it.', advanced: true },
];

/** Quantization-aware training's settings, or undefined when off (an empty format is off). */
function parseQat(draft: SettingsDraft, errors: Record<string, string>): QatSettings | undefined {
  const raw = (draft['qat.format'] ?? '').trim();
  if (raw === '' || raw === 'off') return undefined;
  const format = raw as QuantFormat;
  if (!QUANT_FORMATS.includes(format)) {
    errors['qat.format'] = `Choose Off or a weight format: ${QUANT_FORMATS.join(', ')}.`;
    return undefined;
  }
  const block = readInt(draft, 'qat.block', 'The QAT block size', 1, 4096, errors);
  if (errors['qat.block'] === undefined) {
    try {
      resolveQuantOptions({ format, block, doubleQuant: false });
    } catch (e) {
      errors['qat.block'] = e instanceof Error ? e.message : String(e);
    }
  }
  return { format, block };
}

function loraDefaults(model: ModelFacts): SettingsDraft {
  const size = sizeClass(model.parameters);
  const rank = size === 'small' || size === 'medium' ? 16 : 8;
  return { 'lora.rank': String(rank), 'lora.alpha': String(2 * rank), 'lora.dropout': size === 'tiny' ? '0' : '0.05', 'lora.targets': 'all-linear' };
}

function parseLora(draft: SettingsDraft, errors: Record<string, string>): LoraSettings {
  const rank = readInt(draft, 'lora.rank', 'Rank', 1, 1024, errors);
  const alpha = readNumber(draft, 'lora.alpha', 'Alpha', errors, { min: 0, minExclusive: true, max: 1e6 });
  const dropout = readNumber(draft, 'lora.dropout', 'Dropout', errors, { min: 0, max: 1, maxExclusive: true });
  const targets = readTargets(draft, 'lora.targets', 'Target modules', errors) ?? '';
  return { rank, alpha, dropout, targets };
}

function parseQuant(draft: SettingsDraft, errors: Record<string, string>): QuantSettings {
  const format = draft['quant.format'] as QuantFormat;
  if (!QUANT_FORMATS.includes(format)) errors['quant.format'] = `Choose a quantization: ${QUANT_FORMATS.join(', ')}.`;
  const dq = draft['quant.doubleQuant'];
  if (dq !== 'true' && dq !== 'false') errors['quant.doubleQuant'] = 'Double quantization must be Yes or No.';
  const doubleQuant = dq === 'true';
  const block = readInt(draft, 'quant.block', 'The block size', 1, 4096, errors);
  if (errors['quant.format'] === undefined && errors['quant.block'] === undefined && errors['quant.doubleQuant'] === undefined) {
    try {
      resolveQuantOptions({ format, block, doubleQuant });
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      errors[/double/i.test(message) ? 'quant.doubleQuant' : 'quant.block'] = message;
    }
  }
  return { format, doubleQuant, block };
}

/** The field key of a registry option: `<method>.<config key>`. */
export function optionFieldKey(method: MethodInfo, option: MethodOption): string {
  return `${method.id}.${option.key}`;
}

/** A registry option as a form field (label, unit, help, kind and choices from the option). */
function optionField(method: MethodInfo, o: MethodOption): FieldSpec {
  const key = optionFieldKey(method, o);
  const bounds =
    o.type === 'int' || o.type === 'number'
      ? o.min !== undefined && o.max !== undefined
        ? ` From ${o.min} to ${o.maxExclusive ? 'below ' : ''}${o.max}.`
        : o.min !== undefined
          ? ` At least ${o.min}.`
          : ''
      : '';
  if (o.type === 'boolean') {
    return { key, label: o.label, unit: '', kind: 'select', options: [{ value: 'true', label: 'Yes' }, { value: 'false', label: 'No' }], help: o.help };
  }
  if (o.type === 'choice') return { key, label: o.label, unit: '', kind: 'select', options: (o.choices ?? []).map((c) => ({ value: c, label: c })), help: o.help };
  if (o.type === 'modules') {
    return { key, label: o.label, unit: '', kind: 'text', help: `${o.help} Names from ${LINEAR_MODULE_NAMES.join(', ')}${o.default === null ? '; empty for the default' : ''}.` };
  }
  if (o.type === 'text') return { key, label: o.label, unit: '', kind: 'text', help: `${o.help}${o.default === null ? ' Optional.' : ''}` };
  const unit = /tokens/i.test(o.label) ? 'tokens' : '';
  return { key, label: o.label, unit, kind: o.type, help: `${o.help}${bounds}` };
}

function optionDefault(o: MethodOption): string {
  const d = o.default;
  if (d === null) return '';
  if (Array.isArray(d)) return d.join(',');
  return String(d);
}

/** Reads a registry option's field; the typed value (undefined for "the default") or NaN/undefined with a message in `errors`. */
function readOption(method: MethodInfo, o: MethodOption, draft: SettingsDraft, errors: Record<string, string>): unknown {
  const key = optionFieldKey(method, o);
  const raw = (draft[key] ?? '').trim();
  switch (o.type) {
    case 'int': {
      const max = o.max === undefined ? Number.MAX_SAFE_INTEGER : o.maxExclusive ? o.max - 1 : o.max;
      return readInt(draft, key, o.label, o.min ?? 0, max, errors);
    }
    case 'number':
      return readNumber(draft, key, o.label, errors, { min: o.min ?? -Infinity, max: o.max ?? Infinity, maxExclusive: o.maxExclusive });
    case 'boolean':
      if (raw !== 'true' && raw !== 'false') errors[key] = `${o.label} must be Yes or No.`;
      return raw === 'true';
    case 'choice':
      if (!(o.choices ?? []).includes(raw)) errors[key] = `Choose ${o.label.toLowerCase()}: ${(o.choices ?? []).join(', ')}.`;
      return raw;
    case 'modules':
      if (raw === '' && o.default === null) return undefined;
      return readTargets(draft, key, o.label, errors) ?? undefined;
    case 'text':
      return raw === '' ? undefined : raw;
  }
}

/** The studio entry of a registry method; LoRA-family methods keep the LoRA fields. */
function specOf(method: MethodInfo): MethodSpec {
  if (method.peftType === 'LORA') {
    return {
      id: method.id,
      name: method.label,
      description: method.description,
      engine: method,
      quantized: false,
      fields: LORA_FIELDS,
      defaults: loraDefaults,
      parse: (draft, errors) => ({ method: method.id, lora: parseLora(draft, errors) }),
    };
  }
  const full = method.id === 'full';
  return {
    id: method.id,
    name: method.label,
    description: method.description,
    engine: method,
    quantized: false,
    // Full fine-tuning can train quantization-aware (its own fields come after the registry's).
    fields: [...method.options.map((o) => optionField(method, o)), ...(full ? QAT_FIELDS : [])],
    defaults: () => ({ ...Object.fromEntries(method.options.map((o) => [optionFieldKey(method, o), optionDefault(o)])), ...(full ? { 'qat.format': 'off', 'qat.block': '64' } : {}) }),
    parse(draft, errors) {
      if (full) {
        const qat = parseQat(draft, errors);
        const rest = parseRegistry(draft, errors);
        return qat ? { ...rest, qat } : rest;
      }
      return parseRegistry(draft, errors);
    },
  };

  function parseRegistry(draft: SettingsDraft, errors: Record<string, string>): Pick<TrainSettings, 'method' | 'options'> {
    const raw: Record<string, unknown> = {};
    for (const o of method.options) raw[o.flag] = readOption(method, o, draft, errors);
    const own = method.options.map((o) => optionFieldKey(method, o));
    if (own.some((k) => errors[k] !== undefined)) return { method: method.id, options: {} };
    // The registry's own checks (the same the CLI runs), on the values that passed the field checks.
    try {
      return { method: method.id, options: parseMethodOptions(method, raw) };
    } catch (e) {
      if (!(e instanceof InvalidArgumentError)) throw e;
      const o = method.options.find((x) => e.message.includes(`--${x.flag} `)) ?? method.options[0];
      errors[o ? optionFieldKey(method, o) : 'method'] = e.message;
      return { method: method.id, options: {} };
    }
  }
}

function qloraSpec(lora: MethodInfo): MethodSpec {
  return {
    id: 'qlora',
    name: 'QLoRA',
    description: 'LoRA over a base quantized as it loads (NF4, FP4, INT8 or INT4): the frozen weights take a quarter of the memory; the adapter is a LoRA adapter.',
    engine: lora,
    quantized: true,
    fields: [...LORA_FIELDS, ...QUANT_FIELDS],
    defaults: (model) => ({ ...loraDefaults(model), 'quant.format': 'nf4', 'quant.doubleQuant': 'true', 'quant.block': '64' }),
    parse: (draft, errors) => ({ method: 'qlora', lora: parseLora(draft, errors), quant: parseQuant(draft, errors) }),
  };
}

function buildMethods(): Record<MethodId, MethodSpec> {
  const out: Record<MethodId, MethodSpec> = {};
  for (const m of REGISTRY) {
    out[m.id] = specOf(m);
    if (m.id === 'lora') out.qlora = qloraSpec(m);
  }
  return out;
}

/** The methods the Train screen offers: every registry method in its order, QLoRA after LoRA. */
export const METHODS: Record<MethodId, MethodSpec> = buildMethods();

export const METHOD_IDS = Object.keys(METHODS) as MethodId[];

/** The registry method and its option values (by config key) that make a run's adapter. */
export function engineMethodOf(settings: Pick<TrainSettings, 'method' | 'lora' | 'options'>): { method: MethodInfo; values: MethodOptionValues } {
  const spec = METHODS[settings.method];
  if (!spec) throw new InvalidArgumentError(`The method ${JSON.stringify(settings.method)} is not available; use one of ${METHOD_IDS.join(', ')}.`);
  if (settings.lora) {
    const l = settings.lora;
    return { method: spec.engine, values: { r: l.rank, lora_alpha: l.alpha, lora_dropout: l.dropout, target_modules: loraTargets(l.targets), use_rslora: false } };
  }
  return { method: spec.engine, values: { ...(settings.options ?? {}) } };
}

/** The fields every method shares, in the form's order. */
export const COMMON_FIELDS: readonly FieldSpec[] = [
  { key: 'lr', label: 'Learning rate', unit: '', kind: 'number', help: 'Peak learning rate of AdamW, e.g. 2e-4.' },
  {
    key: 'schedule',
    label: 'Schedule',
    unit: '',
    kind: 'select',
    options: SCHEDULE_NAMES.map((n) => ({ value: n, label: n === 'constant' ? 'Constant' : n === 'linear' ? 'Linear decay' : 'Cosine decay' })),
    help: 'How the learning rate changes after the warmup.',
  },
  { key: 'warmup', label: 'Warmup', unit: 'steps or share', kind: 'number', help: 'Whole steps (e.g. 10), or a share of the run below 1 (e.g. 0.03).', advanced: true },
  { key: 'epochs', label: 'Epochs', unit: 'passes', kind: 'int', help: 'Passes over the training set (used when Steps is 0).' },
  { key: 'steps', label: 'Steps', unit: 'steps', kind: 'int', help: 'Optimizer steps of the run; 0 runs the epochs instead.' },
  { key: 'batchSize', label: 'Batch size', unit: 'rows', kind: 'int', help: 'Examples per micro-batch.' },
  { key: 'gradAccum', label: 'Gradient accumulation', unit: 'micro-batches', kind: 'int', help: 'Micro-batches per optimizer step.' },
  { key: 'seqLen', label: 'Sequence length', unit: 'tokens', kind: 'int', help: 'Longer examples are cut to it.' },
  { key: 'valFraction', label: 'Validation share', unit: 'of examples', kind: 'number', help: 'Examples held out to measure the validation loss, 0 to 0.5.', advanced: true },
  { key: 'evalEvery', label: 'Evaluate every', unit: 'steps', kind: 'int', help: '0 evaluates only at the end.', advanced: true },
  { key: 'saveEvery', label: 'Checkpoint every', unit: 'steps', kind: 'int', help: 'Pause, reload and crashes resume from the last checkpoint; 0 writes one only at the end.', advanced: true },
  { key: 'seed', label: 'Seed', unit: '', kind: 'int', help: 'The same seed repeats a run exactly.', advanced: true },
];

/** Defaults for `method` on a model of this size: they train the demo model on the sample dataset in a few clicks. */
export function defaultDraft(method: MethodId, model: ModelFacts): SettingsDraft {
  const size = sizeClass(model.parameters);
  const common: Record<typeof size, Omit<SettingsDraft, never>> = {
    tiny: { lr: '1e-3', warmup: '0', batchSize: '4', gradAccum: '1', seqLen: '128', saveEvery: '5', evalEvery: '0' },
    small: { lr: '2e-4', warmup: '0.03', batchSize: '4', gradAccum: '4', seqLen: '512', saveEvery: '100', evalEvery: '100' },
    medium: { lr: '1e-4', warmup: '0.03', batchSize: '2', gradAccum: '8', seqLen: '1024', saveEvery: '100', evalEvery: '100' },
    large: { lr: '1e-4', warmup: '0.03', batchSize: '1', gradAccum: '16', seqLen: '1024', saveEvery: '50', evalEvery: '100' },
  };
  const c = common[size];
  return {
    method,
    ...METHODS[method].defaults(model),
    ...c,
    seqLen: String(Math.min(Number(c.seqLen), model.maxPositionEmbeddings)),
    schedule: 'cosine',
    epochs: '1',
    steps: '0',
    valFraction: '0.1',
    seed: '42',
  };
}

export interface ParsedSettings {
  /** The settings, or null when a field is wrong. */
  settings: TrainSettings | null;
  /** A message per wrong field, by field key. */
  errors: Record<string, string>;
}

/** Reads and checks a draft for a model; every wrong field gets its own message. */
export function parseSettings(draft: SettingsDraft, model: ModelFacts): ParsedSettings {
  const errors: Record<string, string> = {};
  const method = draft.method as MethodId;
  if (!METHOD_IDS.includes(method)) {
    errors.method = `Choose a method: ${METHOD_IDS.map((m) => METHODS[m].name).join(', ')}.`;
    return { settings: null, errors };
  }
  const own = METHODS[method].parse(draft, errors);
  const lr = readNumber(draft, 'lr', 'The learning rate', errors, { min: 0, minExclusive: true, max: 1 });
  const schedule = draft.schedule as ScheduleName;
  if (!SCHEDULE_NAMES.includes(schedule)) errors.schedule = `Choose a schedule: ${SCHEDULE_NAMES.join(', ')}.`;
  const warmup = readNumber(draft, 'warmup', 'Warmup', errors, { min: 0, max: 1e6 });
  if (errors.warmup === undefined && warmup >= 1 && !Number.isInteger(warmup)) errors.warmup = 'Warmup must be a whole number of steps, or a share of the run below 1.';
  const epochs = readInt(draft, 'epochs', 'Epochs', 1, 1000, errors);
  const steps = readInt(draft, 'steps', 'Steps', 0, 10_000_000, errors);
  const batchSize = readInt(draft, 'batchSize', 'The batch size', 1, 4096, errors);
  const gradAccum = readInt(draft, 'gradAccum', 'Gradient accumulation', 1, 4096, errors);
  const seqLen = readInt(draft, 'seqLen', 'The sequence length', 8, model.maxPositionEmbeddings, errors, `the model's context of ${model.maxPositionEmbeddings} tokens`);
  const valFraction = readNumber(draft, 'valFraction', 'The validation share', errors, { min: 0, max: 0.5 });
  const evalEvery = readInt(draft, 'evalEvery', 'Evaluate every', 0, 10_000_000, errors);
  const saveEvery = readInt(draft, 'saveEvery', 'Checkpoint every', 0, 10_000_000, errors);
  const seed = readInt(draft, 'seed', 'The seed', 0, 0xffffffff, errors);
  if (Object.keys(errors).length > 0) return { settings: null, errors };
  return {
    settings: { ...own, lr, schedule, warmup, epochs, steps, batchSize, gradAccum, seqLen, valFraction, evalEvery, saveEvery, seed } as TrainSettings,
    errors,
  };
}

/** The draft that shows `settings` (a run's settings back in the form). */
export function draftOf(settings: TrainSettings): SettingsDraft {
  const out: SettingsDraft = { method: settings.method };
  for (const [k, v] of Object.entries(settings)) {
    if (k === 'method') continue;
    if (k === 'options') {
      // Registry option values: a field per option, empty for "the method's default".
      const spec = METHODS[settings.method];
      for (const o of spec?.engine.options ?? []) {
        const x = (v as MethodOptionValues)[o.key];
        out[optionFieldKey(spec.engine, o)] = x === null || x === undefined ? '' : Array.isArray(x) ? x.join(',') : String(x);
      }
    } else if (v !== null && typeof v === 'object') for (const [kk, vv] of Object.entries(v)) out[`${k}.${kk}`] = String(vv);
    else out[k] = String(v);
  }
  return out;
}

/** The fields of a method's form: its own, then the shared ones. */
export function fieldsOf(method: MethodId): readonly FieldSpec[] {
  return [...METHODS[method].fields, ...COMMON_FIELDS];
}

function present(draft: SettingsDraft, key: string, what: string, errors: Record<string, string>): string | null {
  const raw = (draft[key] ?? '').trim();
  if (raw === '') {
    errors[key] = `${what} is missing.`;
    return null;
  }
  return raw;
}

function readInt(draft: SettingsDraft, key: string, what: string, min: number, max: number, errors: Record<string, string>, maxName?: string): number {
  const raw = present(draft, key, what, errors);
  if (raw === null) return NaN;
  const v = Number(raw);
  if (!/^[+]?\d+$/.test(raw) || !Number.isSafeInteger(v)) {
    errors[key] = `${what} must be a whole number; got "${raw}".`;
    return NaN;
  }
  if (v < min || v > max) errors[key] = `${what} must be from ${min} to ${maxName ?? max}; got ${v}.`;
  return v;
}

function readNumber(
  draft: SettingsDraft,
  key: string,
  what: string,
  errors: Record<string, string>,
  range: { min: number; max: number; minExclusive?: boolean; maxExclusive?: boolean },
): number {
  const raw = present(draft, key, what, errors);
  if (raw === null) return NaN;
  const v = Number(raw);
  if (!Number.isFinite(v) || !/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(raw)) {
    errors[key] = `${what} must be a number (such as 0.1 or 2e-4); got "${raw}".`;
    return NaN;
  }
  const low = range.minExclusive ? v <= range.min : v < range.min;
  const high = range.maxExclusive ? v >= range.max : v > range.max;
  if (low || high) {
    const upper = Number.isFinite(range.max) ? ` and ${range.maxExclusive ? 'below' : 'at most'} ${range.max}` : '';
    errors[key] = `${what} must be ${range.minExclusive ? 'above' : 'at least'} ${range.min}${upper}; got ${v}.`;
  }
  return v;
}

/** A module list field: "all-linear" or projection names; the cleaned list, or null with a message. */
function readTargets(draft: SettingsDraft, key: string, what: string, errors: Record<string, string>): string | null {
  const raw = present(draft, key, what, errors);
  if (raw === null) return null;
  if (raw === 'all-linear') return raw;
  const names = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const unknown = names.filter((n) => !(LINEAR_MODULE_NAMES as readonly string[]).includes(n));
  if (names.length === 0 || unknown.length > 0) {
    errors[key] = `${what} must be "all-linear" or names from ${LINEAR_MODULE_NAMES.join(', ')}; ${unknown.length > 0 ? `"${unknown.join('", "')}" ${unknown.length === 1 ? 'is' : 'are'} not among them` : 'none was given'}.`;
    return raw;
  }
  return [...new Set(names)].join(',');
}

/** The targets as LoraConfig's target_modules. */
export function loraTargets(targets: string): string | string[] {
  return targets === 'all-linear' ? 'all-linear' : targets.split(',').map((s) => s.trim()).filter(Boolean);
}

/** A download a run's method has, or the one-line reason it has not. */
export interface ExportAvailability {
  format: ExportFormat;
  available: boolean;
  /** Why the download is absent (null when available). */
  reason: string | null;
}

/** The downloads of a finished run (method-info.ts's export formats). */
export type { ExportFormat };
export const EXPORT_FORMATS: readonly ExportFormat[] = ['peft', 'gguf', 'merged'];

/**
 * Which downloads a run of `method` has: its own files always; GGUF and the merged model where the
 * registry lists them (GGUF: LoRA and QLoRA; merged: LoRA, QLoRA, DoRA and IA3), each other one with
 * the reason it is absent.
 */
export function exportFormats(method: string): ExportAvailability[] {
  const spec = METHODS[method];
  const name = spec?.name ?? method;
  const has = (f: ExportFormat) => f === 'peft' || (spec?.engine.exports.includes(f) ?? false);
  const reasons: Record<Exclude<ExportFormat, 'peft'>, string> = {
    gguf: `llama.cpp and Ollama load LoRA adapters only; ${name} has no GGUF adapter.`,
    merged:
      method === 'full'
        ? 'The model download is already the whole model: every weight was trained, so there is nothing to merge.'
        : `${name} changes the forward pass itself (no weight update to fold in), so there is no merged model.`,
  };
  return EXPORT_FORMATS.map((format) => (has(format) ? { format, available: true, reason: null } : { format, available: false, reason: reasons[format as Exclude<ExportFormat, 'peft'>] }));
}

/** The label of the download of a run's own files: "PEFT zip" for PEFT's methods, else what the zip holds. */
export function adapterDownloadLabel(method: string): string {
  if (method === 'full') return 'Download model (Hugging Face folder zip)';
  return METHODS[method]?.engine.peftType ? 'Download adapter (PEFT zip)' : 'Download adapter (zip)';
}
