import { describe, expect, it } from 'vitest';
import { AdapterConfigError, InvalidArgumentError } from '../errors.ts';
import { parseModelConfig } from '../model/config.ts';
import { createLoraConfig } from '../peft/lora/config.ts';
import { type ModelCardOptions, modelCard } from './model-card.ts';

const MODEL = parseModelConfig({
  architectures: ['LlamaForCausalLM'],
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 32,
});

const OPTIONS: ModelCardOptions = {
  baseModel: 'HuggingFaceTB/SmolLM2-135M-Instruct',
  config: createLoraConfig({ r: 16, lora_alpha: 32, lora_dropout: 0.05, target_modules: 'all-linear', use_rslora: true }),
  modelConfig: MODEL,
  training: {
    learningRate: 2e-4,
    schedule: 'cosine',
    warmupSteps: 10,
    steps: 300,
    epochs: 3,
    batchSize: 4,
    gradientAccumulationSteps: 2,
    seqLen: 512,
    seed: 42,
    optimizer: 'AdamW',
  },
  dataset: { name: 'alpaca-mini.jsonl', stats: { Examples: 1200, 'Mean tokens | example': 87.25, Format: 'alpaca' } },
  losses: { train: 1.23456, validation: null },
  adapterRepo: 'me/smollm2-lora',
  ggufFile: 'smollm2-lora.gguf',
  ollamaBase: 'smollm2:135m',
  license: 'apache-2.0',
};

describe('modelCard', () => {
  it('starts with YAML front matter the Hub reads', () => {
    const card = modelCard(OPTIONS);
    const front = card.split('---\n')[1];
    expect(card.startsWith('---\n')).toBe(true);
    expect(front).toBe(
      [
        'base_model: HuggingFaceTB/SmolLM2-135M-Instruct',
        'library_name: peft',
        'license: apache-2.0',
        'pipeline_tag: text-generation',
        'tags:',
        '- lora',
        '- peft',
        '- whetstone',
        '- text-generation',
        '- "base_model:adapter:HuggingFaceTB/SmolLM2-135M-Instruct"',
        '',
      ].join('\n'),
    );
  });

  it('lists the method, hyperparameters, dataset statistics and losses', () => {
    const card = modelCard(OPTIONS);
    for (const row of [
      '| Method | LoRA (rank-stabilized, rsLoRA) |',
      '| Rank (r) | 16 |',
      '| Alpha (lora_alpha) | 32 |',
      '| Scaling | 8 (alpha / sqrt(r)) |',
      '| Dropout | 0.05 |',
      '| Target modules | `down_proj`, `gate_proj`, `k_proj`, `o_proj`, `q_proj`, `up_proj`, `v_proj` (14 modules) |',
      '| rsLoRA | yes |',
      '| Optimizer | AdamW |',
      '| Learning rate | 2e-4 |',
      '| Schedule | cosine |',
      '| Warmup steps | 10 |',
      '| Steps | 300 |',
      '| Epochs | 3 |',
      '| Batch size | 4 × 2 accumulation steps = 8 |',
      '| Sequence length | 512 |',
      '| Seed | 42 |',
      '| Examples | 1,200 |',
      '| Mean tokens \\| example | 87.25 |',
      '| Format | alpaca |',
      '| Training | 1.2346 |',
      '| Validation | not measured |',
    ]) {
      expect(card).toContain(row);
    }
    expect(card).toContain('Trained on alpaca-mini.jsonl.');
    for (const heading of ['## Base model', '## Method and hyperparameters', '## Dataset', '## Results', '## Use with PEFT', '## Use with llama.cpp and Ollama']) {
      expect(card).toContain(`\n${heading}\n`);
    }
  });

  it('shows how to load the adapter with PEFT, llama.cpp and Ollama', () => {
    const card = modelCard(OPTIONS);
    expect(card).toContain(
      [
        '```python',
        'from peft import PeftModel',
        'from transformers import AutoModelForCausalLM, AutoTokenizer',
        '',
        'base = AutoModelForCausalLM.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")',
        'tokenizer = AutoTokenizer.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")',
        'model = PeftModel.from_pretrained(base, "me/smollm2-lora")',
      ].join('\n'),
    );
    expect(card).toContain('llama-cli -m base-model.gguf --lora smollm2-lora.gguf');
    expect(card).toContain('FROM smollm2:135m\nADAPTER ./smollm2-lora.gguf\n```');
    expect(card).toContain('`ollama create NAME -f Modelfile`');
  });

  it('uses defaults without a model config, and plain LoRA wording without rsLoRA', () => {
    const card = modelCard({
      ...OPTIONS,
      modelConfig: undefined,
      config: createLoraConfig({ r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] }),
      training: { ...OPTIONS.training, gradientAccumulationSteps: undefined },
      dataset: { stats: {} },
      adapterRepo: undefined,
      ggufFile: undefined,
      ollamaBase: undefined,
      license: undefined,
    });
    expect(card).toContain('| Method | LoRA |');
    expect(card).toContain('| Scaling | 2 (alpha / r) |');
    expect(card).toContain('| Target modules | `q_proj`, `v_proj` |');
    expect(card).toContain('| Batch size | 4 |');
    expect(card).toContain('No dataset statistics were recorded.');
    expect(card).toContain('PeftModel.from_pretrained(base, "path/to/adapter")');
    expect(card).toContain('FROM ./base-model.gguf\nADAPTER ./adapter.gguf');
    expect(card).not.toContain('license:');
  });

  it('rejects a missing base model, bad numbers and a bad config', () => {
    expect(() => modelCard({ ...OPTIONS, baseModel: ' ' })).toThrow(InvalidArgumentError);
    expect(() => modelCard({ ...OPTIONS, training: { ...OPTIONS.training, steps: Number.NaN } })).toThrow(/training\.steps/);
    expect(() => modelCard({ ...OPTIONS, config: { ...OPTIONS.config!, r: 0 } })).toThrow(AdapterConfigError);
  });
});

describe('the model card of every method', () => {
  const { config: _lora, ...common } = OPTIONS;
  const card = (method: NonNullable<ModelCardOptions['method']>, config?: ModelCardOptions['config']) => modelCard({ ...common, config, method });

  it('names QLoRA and DoRA with the LoRA rows, and keeps the GGUF section for LoRA and QLoRA only', () => {
    const q = card({ id: 'qlora', label: 'QLoRA', peftType: 'LORA', settings: [['Base quantization', 'NF4 (4-bit normal float)']] }, createLoraConfig({ r: 4, lora_alpha: 8 }));
    expect(q).toContain('| Method | QLoRA |');
    expect(q).toContain('| Rank (r) | 4 |');
    expect(q).toContain('| Base quantization | NF4 (4-bit normal float) |');
    expect(q).toContain('- qlora');
    expect(q).toContain('llama-cli -m base-model.gguf --lora smollm2-lora.gguf');
    const d = card({ id: 'dora', label: 'DoRA', peftType: 'LORA', settings: [], mergeable: true }, createLoraConfig({ r: 4, lora_alpha: 8, use_dora: true }));
    expect(d).toContain('# HuggingFaceTB/SmolLM2-135M-Instruct DoRA adapter');
    expect(d).toContain('| Method | DoRA |');
    expect(d).toContain('model = model.merge_and_unload()');
    expect(d).not.toContain('llama-cli');
  });

  it('lists the settings of IA3, prompt and prefix tuning with a PEFT snippet and no merge where there is none', () => {
    const ia3 = card({ id: 'ia3', label: 'IA3', peftType: 'IA3', settings: [['Target modules', 'k_proj,v_proj,down_proj']], mergeable: true });
    expect(ia3).toContain('An IA3 adapter for [HuggingFaceTB/SmolLM2-135M-Instruct]');
    expect(ia3).toContain('| Target modules | k_proj,v_proj,down_proj |');
    expect(ia3).toContain('library_name: peft');
    expect(ia3).toContain('- ia3\n- peft');
    expect(ia3).toContain('PeftModel.from_pretrained(base, "me/smollm2-lora")');
    expect(ia3).toContain('merge_and_unload');
    expect(ia3).not.toContain('Rank (r)');
    for (const [id, label] of [
      ['prompt', 'Prompt tuning'],
      ['prefix', 'Prefix tuning'],
    ]) {
      const c = card({ id, label, peftType: id === 'prompt' ? 'PROMPT_TUNING' : 'PREFIX_TUNING', settings: [['Virtual tokens', '20']] });
      expect(c).toContain(`| Method | ${label} |`);
      expect(c).toContain('| Virtual tokens | 20 |');
      expect(c).toContain('PeftModel.from_pretrained');
      expect(c).not.toContain('merge_and_unload');
      expect(c).not.toContain('llama-cli');
      expect(c).toContain('| Learning rate | 2e-4 |');
    }
  });

  it('describes bottleneck adapters as Whetstone files and a full fine-tune as a model folder', () => {
    const b = card({ id: 'adapter', label: 'Bottleneck adapters', peftType: null, settings: [['Reduction factor', '16']] });
    expect(b).toContain('library_name: transformers');
    expect(b).toContain('- bottleneck-adapter');
    expect(b).not.toContain('- peft');
    expect(b).toContain('pytorch_adapter.safetensors');
    expect(b).not.toContain('PeftModel');
    const f = card({ id: 'full', label: 'Full fine-tuning', peftType: null, settings: [] });
    expect(f).toContain('# HuggingFaceTB/SmolLM2-135M-Instruct fine-tuned model');
    expect(f).toContain('base_model:finetune:HuggingFaceTB/SmolLM2-135M-Instruct');
    expect(f).toContain('AutoModelForCausalLM.from_pretrained("me/smollm2-lora")');
    expect(f).toContain('The model was trained from these weights.');
    expect(f).not.toContain('PeftModel');
  });

  it('needs a LoRA config or a method', () => {
    expect(() => modelCard(common)).toThrow(/needs a LoRA config or a method/);
  });
});
