// The files a finished LoRA run leaves, shared by `whetstone train` and the studio's worker: the
// PEFT pair (adapter_config.json, adapter_model.safetensors) with its README.md model card built
// from the run's settings, dataset statistics and losses; and the GGUF LoRA adapter with the Ollama
// Modelfile that loads it. It writes nothing to disk or store: the caller puts the bytes where they go.

import { exportGgufLora, ollamaModelfile } from '../io/export-gguf.ts';
import { type AdapterDType, exportPeftLora } from '../io/export-peft.ts';
import { type CardMethod, modelCard } from '../io/model-card.ts';
import type { ModelConfig } from '../model/config.ts';
import type { LoraConfig, LoraTensors } from '../peft/lora/config.ts';
import type { TrainOptions, TrainResult } from './trainer.ts';

/** What the model card says about the run. */
export interface TrainedRun {
  /** The base model's Hub id or name. */
  baseModel: string;
  options: TrainOptions;
  result: Pick<TrainResult, 'warmupSteps' | 'steps' | 'epochs' | 'trainLoss' | 'valLoss'>;
  /** How the base weights were stored in training ("f32", "bf16"). */
  precision: string;
  dataset: { name: string; format: string; trainExamples: number; validationExamples: number; tokens: number; countedTokens: number };
  /** Where the adapter files will live (a folder, a Hub repo); shown in the card's snippets. */
  adapterRepo?: string;
}

/** The model card (README.md) of a trained adapter: a LoRA config, or (any method) the method with its settings. */
export function trainedModelCard(config: LoraConfig | undefined, modelConfig: ModelConfig, run: TrainedRun, method?: CardMethod): string {
  const o = run.options;
  return modelCard({
    baseModel: run.baseModel,
    config,
    method,
    modelConfig,
    training: {
      learningRate: o.lr,
      schedule: o.schedule ?? 'linear',
      warmupSteps: run.result.warmupSteps,
      steps: run.result.steps,
      epochs: Number(run.result.epochs.toFixed(2)),
      batchSize: o.batchSize ?? 8,
      gradientAccumulationSteps: o.gradAccum,
      seqLen: o.seqLen,
      seed: o.seed,
      optimizer: 'AdamW',
      weightDecay: o.weightDecay,
      precision: run.precision,
    },
    dataset: {
      name: run.dataset.name,
      stats: {
        format: run.dataset.format,
        'training examples': run.dataset.trainExamples,
        'validation examples': run.dataset.validationExamples,
        tokens: run.dataset.tokens,
        'counted tokens': run.dataset.countedTokens,
      },
    },
    losses: { train: run.result.trainLoss, validation: run.result.valLoss },
    adapterRepo: run.adapterRepo,
  });
}

/** adapter_config.json, adapter_model.safetensors and README.md of a trained LoRA adapter, by file name. */
export function trainedAdapterFiles(config: LoraConfig, tensors: LoraTensors, modelConfig: ModelConfig, run: TrainedRun, dtype?: AdapterDType): Map<string, Uint8Array> {
  const files = exportPeftLora({ config, tensors, modelConfig, dtype });
  files.set('README.md', new TextEncoder().encode(trainedModelCard(config, modelConfig, run)));
  return files;
}

export interface GgufAdapterOptions {
  config: LoraConfig;
  tensors: LoraTensors;
  modelConfig: ModelConfig;
  /** The adapter's name in the GGUF metadata. */
  name: string;
  /** The base model as Ollama should find it (a library name or the base GGUF file). */
  baseModel: string;
  /** File name of the adapter beside the Modelfile. Default "adapter.gguf". */
  adapterFile?: string;
  dtype?: 'f32' | 'f16' | 'bf16';
}

/** A llama.cpp LoRA adapter and the Ollama Modelfile that loads it on `baseModel`. */
export function ggufAdapterFiles(o: GgufAdapterOptions): { gguf: Uint8Array; modelfile: string; adapterFile: string } {
  const adapterFile = o.adapterFile ?? 'adapter.gguf';
  const gguf = exportGgufLora({ config: o.config, tensors: o.tensors, modelConfig: o.modelConfig, dtype: o.dtype ?? 'f32', name: o.name });
  return { gguf, modelfile: ollamaModelfile({ baseModel: o.baseModel, adapterFile }), adapterFile };
}
