// The merged model of any adapter that has one, as a Hugging Face folder streamed tensor by tensor:
// the one merge path `whetstone export --format merged` and the studio's "merged model" download
// share. LoRA adds scale · B · A to each weight on the CPU as the weight streams (the model is left
// as it is; f32, 16-bit and quantized bases all work); DoRA and IA3 merge into the model's f32
// weights on the GPU when model.safetensors starts to stream and unmerge when it ends. Methods
// without a merge (prompt, prefix, bottleneck adapters) are refused with a typed error, as is full
// fine-tuning, whose own saved folder is already the whole model. Not here: reading or writing files.

import { InvalidArgumentError } from '../errors.ts';
import type { LlamaModel } from '../model/llama.ts';
import type { PeftAdapter } from './adapter.ts';
import { type ExportMergedOptions, type ExportedFile, type MergedModelSource, exportInPlaceMerged, exportMergedModel } from './lora/model.ts';
import { LoraMethodAdapter } from './lora/method.ts';

/**
 * The files of `model` with `adapter` merged in (config.json, model.safetensors, the tokenizer and
 * generation files of `source`), computed as they stream. DoRA and IA3 hold the model merged while
 * model.safetensors streams (the stream's end or abandonment unmerges it, leaving the weights as they
 * were up to f32 rounding), need f32 projection weights, and so must not share the model with other
 * GPU work until the stream ends. Throws InvalidArgumentError for a method without a merge.
 */
export async function exportMergedFolder(model: LlamaModel, adapter: PeftAdapter, source: MergedModelSource, options: ExportMergedOptions = {}): Promise<ExportedFile[]> {
  if (adapter instanceof LoraMethodAdapter && adapter.method === 'lora') return exportMergedModel(model, adapter.lora, source, options);
  if (adapter.method === 'full') {
    throw new InvalidArgumentError('A full fine-tune has no merged model: its saved folder already holds every trained weight.', {
      hint: 'Export its own files (--format peft), which are a Hugging Face model folder.',
    });
  }
  return exportInPlaceMerged(model, adapter, source, options);
}
