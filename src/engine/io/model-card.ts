// The README.md model card that goes with a trained adapter of any tuning method: YAML front matter
// the Hugging Face Hub reads (base_model, library_name, tags, pipeline_tag), then the base model,
// the method and its settings, the training hyperparameters, dataset statistics, final losses, and
// how to load the files: with PEFT (a Python snippet) for PEFT's methods, with llama.cpp and Ollama
// for LoRA (the only method with a GGUF adapter), as a model folder for full fine-tuning, and as
// Whetstone's bottleneck layout for bottleneck adapters. The card is plain text built from the
// values given; this file computes nothing about training.

import { InvalidArgumentError } from '../errors.ts';
import type { ModelConfig } from '../model/config.ts';
import { ollamaModelfile } from './export-gguf.ts';
import { type LoraConfig, parseLoraConfig, savedTargetModules, scaling, targetModules } from '../peft/lora/config.ts';

export interface TrainingSummary {
  learningRate: number;
  /** Learning-rate schedule, e.g. "cosine" or "linear". */
  schedule: string;
  warmupSteps?: number;
  /** Optimizer steps taken. */
  steps: number;
  /** Passes over the training set (may be fractional). */
  epochs: number;
  /** Sequences per optimizer step, before gradient accumulation. */
  batchSize: number;
  gradientAccumulationSteps?: number;
  /** Maximum sequence length in tokens. */
  seqLen: number;
  seed: number;
  /** e.g. "AdamW". */
  optimizer?: string;
  weightDecay?: number;
  /** Base weight format during training, e.g. "bf16" or "nf4 (QLoRA)". */
  precision?: string;
}

/** The tuning method of a card that is not a plain LoRA adapter, and its settings as rows. */
export interface CardMethod {
  /** Registry id: "lora", "dora", "ia3", "prompt", "prefix", "adapter", "full" … */
  id: string;
  /** e.g. "IA3", "Prompt tuning". */
  label: string;
  /** adapter_config.json's peft_type, or null for a method PEFT does not have. */
  peftType: string | null;
  /** The method's settings, as (name, value) rows. */
  settings: [string, string][];
  /** The adapter can be folded into the base weights (PEFT's merge_and_unload). */
  mergeable?: boolean;
}

export interface ModelCardOptions {
  /** The base model's Hub id (e.g. "HuggingFaceTB/SmolLM2-135M-Instruct") or name. */
  baseModel: string;
  /** The LoRA config (LoRA, DoRA and QLoRA cards); the method rows come from it. */
  config?: LoraConfig;
  /** The method of a card that is not plain LoRA; required when `config` is absent. */
  method?: CardMethod;
  /** The base model's config; with it the card lists the resolved target modules and their count. */
  modelConfig?: ModelConfig;
  training: TrainingSummary;
  /** Dataset statistics by label (rows, tokens, mean length ...); `name` titles them. */
  dataset: { name?: string; stats: Record<string, number | string> };
  /** Final losses; null when not measured. */
  losses: { train: number | null; validation: number | null };
  /** Card title; "<base model> LoRA adapter" by default. */
  title?: string;
  /** A paragraph under the title. */
  description?: string;
  /** Where the PEFT files will live: a Hub repo id or a folder; "path/to/adapter" by default. */
  adapterRepo?: string;
  /** File name of the GGUF adapter, when one is exported; "adapter.gguf" by default. */
  ggufFile?: string;
  /** The base model as Ollama knows it (e.g. "smollm2:135m"); the base GGUF file by default. */
  ollamaBase?: string;
  /** SPDX license id for the front matter. */
  license?: string;
  /** Extra tags after the standard ones. */
  tags?: string[];
}

/** A YAML scalar: plain when it is safe as one, else a double-quoted (JSON) string. */
function yamlScalar(s: string): string {
  return /^[A-Za-z0-9][A-Za-z0-9._/+-]*$/.test(s) && !/^(true|false|null|yes|no|on|off|~)$/i.test(s) && !/^[0-9.+-]+$/.test(s)
    ? s
    : JSON.stringify(s);
}

/** A table cell: pipes escaped, line breaks made spaces. */
function cell(v: string | number | boolean): string {
  return String(v).replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Number.isInteger(n)) return n.toLocaleString('en-US');
  const a = Math.abs(n);
  const p = Number(n.toPrecision(6));
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? p.toExponential() : String(p);
}

function requireText(what: string, v: unknown): string {
  if (typeof v !== 'string' || v.trim() === '') throw new InvalidArgumentError(`The model card needs ${what}; got ${JSON.stringify(v)}.`);
  return v.trim();
}

/** README.md text for an adapter. Throws InvalidArgumentError for a missing base model or a non-numeric hyperparameter. */
export function modelCard(options: ModelCardOptions): string {
  const base = requireText('the base model', options.baseModel);
  const config = options.config ? parseLoraConfig(options.config as unknown as Record<string, unknown>) : null;
  if (!config && !options.method) throw new InvalidArgumentError('The model card needs a LoRA config or a method.');
  const method: CardMethod = options.method ?? { id: 'lora', label: 'LoRA', peftType: 'LORA', settings: [], mergeable: true };
  const isLora = config !== null && (method.id === 'lora' || method.id === 'qlora');
  const label = config && method.id === 'lora' && config.use_rslora ? 'LoRA (rank-stabilized, rsLoRA)' : method.label;
  const t = options.training;
  for (const key of ['learningRate', 'steps', 'epochs', 'batchSize', 'seqLen', 'seed'] as const) {
    if (typeof t[key] !== 'number' || !Number.isFinite(t[key])) {
      throw new InvalidArgumentError(`The model card needs training.${key} as a number; got ${JSON.stringify(t[key])}.`);
    }
  }
  const repo = options.adapterRepo?.trim() || 'path/to/adapter';
  const gguf = options.ggufFile?.trim() || 'adapter.gguf';
  const full = method.id === 'full';
  const title = options.title?.trim() || `${base} ${full ? 'fine-tuned model' : `${method.label} adapter`}`;

  const methodTag = method.id === 'qlora' ? ['lora', 'qlora'] : method.id === 'adapter' ? ['bottleneck-adapter'] : full ? ['full-fine-tuning'] : [method.id];
  const peft = method.peftType !== null;
  const tags = [...new Set([...methodTag, ...(peft ? ['peft'] : []), 'whetstone', 'text-generation', `base_model:${full ? 'finetune' : 'adapter'}:${base}`, ...(options.tags ?? [])])];
  const front = ['---', `base_model: ${yamlScalar(base)}`, `library_name: ${peft ? 'peft' : 'transformers'}`];
  if (options.license) front.push(`license: ${yamlScalar(options.license)}`);
  front.push('pipeline_tag: text-generation', 'tags:', ...tags.map((tag) => `- ${yamlScalar(tag)}`), '---');

  const accum = t.gradientAccumulationSteps ?? 1;
  const hyper: [string, string][] = [['Method', label]];
  if (config) {
    const targets = options.modelConfig ? savedTargetModules(config, options.modelConfig) : (config.target_modules ?? ['q_proj', 'v_proj']);
    const targetText = Array.isArray(targets) ? targets.map((x) => `\`${x}\``).join(', ') : `\`${targets}\``;
    const moduleCount = options.modelConfig ? ` (${targetModules(config, options.modelConfig).length} modules)` : '';
    hyper.push(
      ['Rank (r)', String(config.r)],
      ['Alpha (lora_alpha)', formatNumber(config.lora_alpha)],
      ['Scaling', `${formatNumber(scaling(config))} (${config.use_rslora ? 'alpha / sqrt(r)' : 'alpha / r'})`],
      ['Dropout', formatNumber(config.lora_dropout)],
      ['Target modules', targetText + moduleCount],
      ['rsLoRA', config.use_rslora ? 'yes' : 'no'],
    );
    if (Object.keys(config.rank_pattern).length > 0) hyper.push(['Rank pattern', `\`${JSON.stringify(config.rank_pattern)}\``]);
    if (Object.keys(config.alpha_pattern).length > 0) hyper.push(['Alpha pattern', `\`${JSON.stringify(config.alpha_pattern)}\``]);
  }
  hyper.push(...method.settings);
  if (t.optimizer) hyper.push(['Optimizer', t.optimizer]);
  hyper.push(['Learning rate', formatNumber(t.learningRate)], ['Schedule', t.schedule]);
  if (t.warmupSteps !== undefined) hyper.push(['Warmup steps', formatNumber(t.warmupSteps)]);
  if (t.weightDecay !== undefined) hyper.push(['Weight decay', formatNumber(t.weightDecay)]);
  hyper.push(
    ['Steps', formatNumber(t.steps)],
    ['Epochs', formatNumber(t.epochs)],
    ['Batch size', accum > 1 ? `${t.batchSize} × ${accum} accumulation steps = ${t.batchSize * accum}` : String(t.batchSize)],
    ['Sequence length', formatNumber(t.seqLen)],
    ['Seed', String(t.seed)],
  );
  if (t.precision) hyper.push(['Base weights', t.precision]);

  const stats = Object.entries(options.dataset.stats);
  const lossText = (v: number | null) => (v === null || !Number.isFinite(v) ? 'not measured' : v.toFixed(4));
  const baseLink = /^[\w.-]+\/[\w.-]+$/.test(base) ? `[${base}](https://huggingface.co/${base})` : `\`${base}\``;
  const what = full ? `A fine-tuned copy of ${baseLink} (every weight trained)` : `${/^[AEIOU]/.test(label) ? 'An' : 'A'} ${label} adapter for ${baseLink}`;

  const usage: string[] = full
    ? [
        '## Use with transformers',
        '',
        'The files are a whole Hugging Face model folder (config.json, model.safetensors and the tokenizer):',
        '',
        '```python',
        'from transformers import AutoModelForCausalLM, AutoTokenizer',
        '',
        `model = AutoModelForCausalLM.from_pretrained(${JSON.stringify(repo)})`,
        `tokenizer = AutoTokenizer.from_pretrained(${JSON.stringify(repo)})`,
        '```',
        '',
      ]
    : peft
      ? [
          '## Use with PEFT',
          '',
          '```python',
          'from peft import PeftModel',
          'from transformers import AutoModelForCausalLM, AutoTokenizer',
          '',
          `base = AutoModelForCausalLM.from_pretrained(${JSON.stringify(base)})`,
          `tokenizer = AutoTokenizer.from_pretrained(${JSON.stringify(base)})`,
          `model = PeftModel.from_pretrained(base, ${JSON.stringify(repo)})`,
          ...((method.mergeable ?? isLora) ? ['model = model.merge_and_unload()  # optional: fold the adapter into the weights'] : []),
          '```',
          '',
        ]
      : [
          '## Files',
          '',
          '`adapter_config.json` and `pytorch_adapter.safetensors` in Whetstone\'s bottleneck-adapter layout, with the',
          "module names of the AdapterHub `adapters` library's double (Houlsby) bottleneck. PEFT has no such method;",
          'Whetstone loads the folder back (`whetstone eval --adapter DIR`).',
          '',
        ];
  if (isLora) {
    usage.push(
      '## Use with llama.cpp and Ollama',
      '',
      `The GGUF adapter \`${gguf}\` applies on top of a GGUF file of the same base model (the adapter's`,
      'architecture must match the base):',
      '',
      '```sh',
      `llama-cli -m base-model.gguf --lora ${gguf}`,
      '```',
      '',
      'With Ollama, put the adapter next to this `Modelfile`:',
      '',
      '```',
      ollamaModelfile({ baseModel: options.ollamaBase?.trim() || './base-model.gguf', adapterFile: gguf }).trimEnd(),
      '```',
      '',
      'and create the model with `ollama create NAME -f Modelfile`, then `ollama run NAME`.',
      '',
    );
  }

  const lines: string[] = [
    ...front,
    '',
    `# ${title}`,
    '',
    ...(options.description ? [options.description.trim(), ''] : []),
    `${what}, trained with Whetstone (${method.label} fine-tuning on WebGPU).`,
    '',
    '## Base model',
    '',
    `\`${base}\`${config?.revision ? ` at revision \`${config.revision}\`` : ''}. ${full ? 'The model was trained from these weights.' : 'The adapter works only on top of this model.'}`,
    '',
    '## Method and hyperparameters',
    '',
    '| Setting | Value |',
    '| --- | --- |',
    ...hyper.map(([k, v]) => `| ${cell(k)} | ${cell(v)} |`),
    '',
    '## Dataset',
    '',
    ...(options.dataset.name ? [`Trained on ${options.dataset.name}.`, ''] : []),
    ...(stats.length > 0
      ? ['| Statistic | Value |', '| --- | --- |', ...stats.map(([k, v]) => `| ${cell(k)} | ${cell(typeof v === 'number' ? formatNumber(v) : v)} |`)]
      : ['No dataset statistics were recorded.']),
    '',
    '## Results',
    '',
    '| Loss | Final value |',
    '| --- | --- |',
    `| Training | ${lossText(options.losses.train)} |`,
    `| Validation | ${lossText(options.losses.validation)} |`,
    '',
    ...usage,
  ];
  return lines.join('\n');
}
