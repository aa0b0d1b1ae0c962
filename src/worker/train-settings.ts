// The settings of a training run as the studio edits them: the fine-tuning methods it offers (one
// registry, METHODS, where a new method adds its fields, defaults and checks), the hyperparameters
// every method shares, defaults scaled to the size of the chosen model, and the parsing and checking
// of what a person typed, field by field, with messages that say what is wrong and what is allowed.
// Pure data and functions: the Train screen imports them to check the form as it is typed, and the
// worker checks the same settings again before it trains. Nothing here trains or touches the GPU.

import { SCHEDULE_NAMES, type ScheduleName } from '../engine/optim/schedule.ts';

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

export interface LoraSettings {
  rank: number;
  alpha: number;
  dropout: number;
  /** "all-linear", or module names separated by commas. */
  targets: string;
}

/** The settings of a run: the method, its own settings and the shared ones. */
export type TrainSettings = { method: 'lora'; lora: LoraSettings } & CommonSettings;
export type MethodId = TrainSettings['method'];

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
  fields: readonly FieldSpec[];
  defaults(model: ModelFacts): SettingsDraft;
  /** Reads the method's own fields; puts a message per bad field into `errors`. */
  parse(draft: SettingsDraft, errors: Record<string, string>): Omit<TrainSettings, keyof CommonSettings>;
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

/** The methods the Train screen offers. A new method adds its entry here and its adapter builder in training.ts. */
export const METHODS: Record<MethodId, MethodSpec> = {
  lora: {
    id: 'lora',
    name: 'LoRA',
    description: 'Low-rank adapters beside the chosen projections; the base weights stay frozen. Exports to PEFT, GGUF (llama.cpp, Ollama) and a merged model.',
    fields: LORA_FIELDS,
    defaults(model) {
      const size = sizeClass(model.parameters);
      const rank = size === 'small' || size === 'medium' ? 16 : 8;
      return { 'lora.rank': String(rank), 'lora.alpha': String(2 * rank), 'lora.dropout': size === 'tiny' ? '0' : '0.05', 'lora.targets': 'all-linear' };
    },
    parse(draft, errors) {
      const rank = readInt(draft, 'lora.rank', 'Rank', 1, 1024, errors);
      const alpha = readNumber(draft, 'lora.alpha', 'Alpha', errors, { min: 0, minExclusive: true, max: 1e6 });
      const dropout = readNumber(draft, 'lora.dropout', 'Dropout', errors, { min: 0, max: 1, maxExclusive: true });
      const targets = readTargets(draft, errors);
      return { method: 'lora', lora: { rank, alpha, dropout, targets } };
    },
  },
};

export const METHOD_IDS = Object.keys(METHODS) as MethodId[];

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
    if (v !== null && typeof v === 'object') for (const [kk, vv] of Object.entries(v)) out[`${k}.${kk}`] = String(vv);
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
    errors[key] = `${what} must be ${range.minExclusive ? 'above' : 'at least'} ${range.min} and ${range.maxExclusive ? 'below' : 'at most'} ${range.max}; got ${v}.`;
  }
  return v;
}

function readTargets(draft: SettingsDraft, errors: Record<string, string>): string {
  const raw = present(draft, 'lora.targets', 'Target modules', errors);
  if (raw === null) return '';
  if (raw === 'all-linear') return raw;
  const names = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const unknown = names.filter((n) => !(LINEAR_MODULE_NAMES as readonly string[]).includes(n));
  if (names.length === 0 || unknown.length > 0) {
    errors['lora.targets'] = `Target modules must be "all-linear" or names from ${LINEAR_MODULE_NAMES.join(', ')}; ${unknown.length > 0 ? `"${unknown.join('", "')}" ${unknown.length === 1 ? 'is' : 'are'} not among them` : 'none was given'}.`;
    return raw;
  }
  return [...new Set(names)].join(',');
}

/** The targets as LoraConfig's target_modules. */
export function loraTargets(targets: string): string | string[] {
  return targets === 'all-linear' ? 'all-linear' : targets.split(',').map((s) => s.trim()).filter(Boolean);
}
