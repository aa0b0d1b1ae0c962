// A loaded model's current weights (trained, merged or pruned on the GPU) as a Hugging Face folder:
// config.json from the folder it was loaded from (plus given changes), model.safetensors with every
// weight the config stores (read back from the GPU one tensor at a time as the stream reaches it,
// in the source checkpoint's dtype unless told otherwise), and the source's tokenizer and
// generation files. Blocks shared across depth are written once, under their source layer.

import { InvalidArgumentError } from '../errors.ts';
import { readTensor } from '../gpu/readback.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { bf16ToF32, f16ToF32 } from '../io/half.ts';
import type { ModelFolder } from '../io/model-folder.ts';
import type { LazyTensorToWrite } from '../io/safetensors.ts';
import { expectedWeights } from '../model/config.ts';
import type { LlamaModel } from '../model/llama.ts';
import { type ExportedFile, type FloatStorage, encodeFloat, modelFolderFiles, storageLike } from './folder.ts';

/** A tensor's values as f32, read from the GPU whatever its storage. */
export async function readWeightF32(t: Tensor): Promise<Float32Array> {
  if (t.dtype === 'f32') return readTensor(t as Tensor & { dtype: 'f32' });
  if (t.dtype === 'bf16') return bf16ToF32(await readTensor(t as Tensor & { dtype: 'bf16' }));
  if (t.dtype === 'f16') return f16ToF32(await readTensor(t as Tensor & { dtype: 'f16' }));
  throw new InvalidArgumentError(`Weight ${t.describe()} is not a float tensor.`);
}

export interface ExportModelOptions {
  /** Storage of every tensor; by default each keeps the source's F16/BF16, F32 otherwise. */
  dtype?: FloatStorage;
  /** Called on each tensor's values before it is written (e.g. to restore a sparsity mask). */
  transform?: (name: string, values: Float32Array) => Float32Array | Promise<Float32Array>;
}

/** The model's weights as a folder; `source` is the folder it was loaded from (config, dtypes, tokenizer). */
export async function exportModel(model: LlamaModel, source: Pick<ModelFolder, 'files' | 'rawConfig' | 'weights'>, options: ExportModelOptions = {}): Promise<ExportedFile[]> {
  model.assertLive();
  const sourceDtype = new Map(source.weights.map((w) => [w.name, w.dtype]));
  const tensors: LazyTensorToWrite[] = expectedWeights(model.config).map((s) => {
    const dtype = options.dtype ?? storageLike(sourceDtype.get(s.name));
    return {
      name: s.name,
      dtype,
      shape: s.shape,
      data: async () => {
        let v = await readWeightF32(model.params[s.name]);
        if (options.transform) v = await options.transform(s.name, v);
        return encodeFloat(v, dtype);
      },
    };
  });
  const rawConfig: Record<string, unknown> = { ...source.rawConfig };
  if (options.dtype) rawConfig.torch_dtype = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[options.dtype];
  return modelFolderFiles(rawConfig, tensors, source);
}
