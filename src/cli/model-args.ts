// Shared pieces of the CLI's model commands (info, eval, generate, train, export): resolving `--model` to a model
// folder on disk or in the Hub download cache, loading the model (and an adapter of any registered method) onto the Node GPU, and parsing
// numeric flags into typed errors; the folder's tokenizer comes from the engine
// (model/tokenizer-folder.ts) and is re-exported here for the commands. It prints nothing; the commands do.

import { InvalidArgumentError } from '../engine/errors.ts';
import type { Gpu } from '../engine/gpu/device.ts';
import { openNodeGpu } from '../engine/gpu/node.ts';
import { formatBytes } from '../engine/gpu/allocator.ts';
import { downloadModel, formatHubRef, parseHubRef } from '../engine/io/hub.ts';
import { type ModelFolder, openModelFolder } from '../engine/io/model-folder.ts';
import { openModelDirectory } from '../engine/io/model-folder-node.ts';
import { defaultStoreRoot, openNodeStore } from '../engine/store/store-node.ts';
import { type LlamaModel, type WeightStorage, loadModel } from '../engine/model/llama.ts';
import type { QuantOptions } from '../engine/quant/format.ts';
import { nodeFileSet } from '../engine/io/model-folder-node.ts';
import { type LoraAdapter, loadLora } from '../engine/peft/lora/index.ts';
import type { PeftAdapter } from '../engine/peft/adapter.ts';
import { loadAdapter } from '../engine/peft/methods.ts';

export { loadFolderTokenizer } from '../engine/model/tokenizer-folder.ts';

/**
 * Opens the folder named by `--model`: a directory, or `hub:ORG/NAME[@REVISION]`, which is
 * downloaded (resumably) into the local cache first. HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE work
 * as they do for the Hugging Face tools; progress goes to stderr.
 */
export async function openModelArg(model: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<ModelFolder> {
  if (model === undefined || model === '') {
    throw new InvalidArgumentError('--model DIR is required: the folder of a Hugging Face model (config.json, *.safetensors, tokenizer files), or hub:ORG/NAME.');
  }
  if (model.startsWith('hub:')) {
    const ref = parseHubRef(model);
    const store = openNodeStore(defaultStoreRoot(env));
    const files = await downloadModel(ref, {
      store,
      endpoint: env.HF_ENDPOINT || undefined,
      token: env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || undefined,
      offline: ['1', 'true', 'yes', 'on'].includes((env.HF_HUB_OFFLINE ?? '').toLowerCase()),
      onProgress: (p) => {
        if (!process.stderr.isTTY && p.bytes < p.total) return;
        const pct = p.total > 0 ? ((100 * p.bytes) / p.total).toFixed(1) : '?';
        process.stderr.write(`\rdownloading ${formatHubRef(ref)}: ${formatBytes(p.bytes)} of ${formatBytes(p.total)} (${pct}%), ${formatBytes(p.bytesPerSecond)}/s   ${p.bytes >= p.total ? '\n' : ''}`);
      },
    });
    return openModelFolder(files);
  }
  return openModelDirectory(model);
}

/** Opens the GPU and loads the model with the given projection storage (quantized with `quant` when given). */
export async function loadCliModel(folder: ModelFolder, dtype: string | undefined, quant?: QuantOptions): Promise<{ gpu: Gpu; model: LlamaModel }> {
  const storage = (dtype ?? 'f32') as WeightStorage;
  if (storage !== 'f32' && storage !== 'bf16') throw new InvalidArgumentError(`--dtype must be f32 or bf16; got ${JSON.stringify(dtype)}.`);
  const gpu = await openNodeGpu();
  try {
    return { gpu, model: await loadModel(gpu, folder, { dtype: storage, quant }) };
  } catch (e) {
    gpu.destroy();
    throw e;
  }
}

/** An integer flag within [min, max], or `fallback` when absent. */
export function intArg(name: string, value: string | undefined, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    throw new InvalidArgumentError(`--${name} must be an integer from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ' up'}; got ${JSON.stringify(value)}.`);
  }
  return n;
}

/** A finite number flag, or `fallback` when absent. */
export function numberArg(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`--${name} must be a number; got ${JSON.stringify(value)}.`);
  return n;
}

/** Loads a PEFT LoRA adapter folder onto the model as a LoraAdapter (dropout off), for commands that need LoRA itself. */
export async function loadCliAdapter(model: LlamaModel, dir: string): Promise<LoraAdapter> {
  return loadLora(model, await nodeFileSet(dir));
}

/** Loads the adapter folder named by `--adapter` onto the model, its method detected from the saved files (training off): eval, generate, train. */
export async function loadCliMethodAdapter(model: LlamaModel, dir: string): Promise<PeftAdapter> {
  return loadAdapter(model, await nodeFileSet(dir));
}
