// Weight sharing of a Hugging Face model folder, written as a new folder:
//  - blocks shared across depth: several layers run with one set of block weights. config.json gets
//    `layer_weight_source` (entry l = the layer whose weights layer l uses; a layer that uses its own
//    is a source), and model.safetensors stores the blocks of source layers only. A shared block is
//    the first layer of its group ('first') or the mean of the group's layers ('mean').
//  - weight clustering: each chosen tensor becomes a k-entry codebook (1-D k-means, quantile
//    initialisation, a seeded sample when the tensor is large, so runs repeat exactly) and one index
//    per value: `<name>.codebook` F32 [k] (ascending) and `<name>.indices` U8, shaped like the
//    weight for k > 16, or [ceil(n/2)] with two 4-bit indices per byte (even element in the high
//    nibble) for k ≤ 16. io/model-folder.ts reconstructs both when loading.
// The layouts are documented in docs/compression.md. Tensors are produced one at a time as the
// safetensors stream reaches them.

import { InvalidArgumentError, UnsupportedModelError } from '../errors.ts';
import type { ModelFolder } from '../io/model-folder.ts';
import type { LazyTensorToWrite } from '../io/safetensors.ts';
import { expectedWeights, parseModelConfig } from '../model/config.ts';
import { Rng } from '../random.ts';
import { type ExportedFile, WeightReader, encodeFloat, modelFolderFiles, storageLike } from './folder.ts';

/** Values used to fit a codebook; larger tensors are subsampled with the seed. */
const KMEANS_SAMPLE = 1 << 16;
const KMEANS_ITERATIONS = 40;

export interface Codebook {
  /** (k) ascending centroids. */
  codebook: Float32Array;
  /** (n) index of each value's centroid. */
  indices: Uint8Array;
}

/**
 * 1-D k-means of `values` into k ≤ 256 centroids: centroids start at evenly spaced quantiles of the
 * (seeded, when larger than 65536 values) sample, Lloyd iterations run on the sample until no
 * centroid moves, then every value is assigned to its nearest centroid. Deterministic for a seed.
 */
export function kmeans1d(values: Float32Array, k: number, seed: number): Codebook {
  if (!Number.isInteger(k) || k < 2 || k > 256) throw new InvalidArgumentError(`A codebook needs 2 to 256 entries; got ${k}.`);
  if (values.length === 0) throw new InvalidArgumentError('Cannot cluster an empty tensor.');
  let sample: Float64Array;
  if (values.length > KMEANS_SAMPLE) {
    const rng = new Rng(seed);
    sample = Float64Array.from({ length: KMEANS_SAMPLE }, () => values[rng.int(values.length)]);
  } else sample = Float64Array.from(values);
  sample.sort();
  const n = sample.length;
  let cent = Float64Array.from({ length: k }, (_, i) => sample[Math.min(n - 1, Math.floor(((i + 0.5) * n) / k))]);
  // Prefix sums make each centroid's mean over a sorted range O(1).
  const prefix = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) prefix[i + 1] = prefix[i] + sample[i];
  for (let it = 0; it < KMEANS_ITERATIONS; it++) {
    const next = new Float64Array(k);
    let start = 0;
    let moved = false;
    for (let c = 0; c < k; c++) {
      const end = c === k - 1 ? n : upperBound(sample, (cent[c] + cent[c + 1]) / 2, start);
      next[c] = end > start ? (prefix[end] - prefix[start]) / (end - start) : cent[c];
      if (next[c] !== cent[c]) moved = true;
      start = end;
    }
    next.sort();
    cent = next;
    if (!moved) break;
  }
  const codebook = Float32Array.from(cent);
  return { codebook, indices: assignIndices(values, codebook) };
}

/** The index of each value's nearest centroid in ascending `codebook`. */
export function assignIndices(values: Float32Array, codebook: Float32Array): Uint8Array {
  const indices = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) indices[i] = nearest(codebook, values[i]);
  return indices;
}

/** First index in sorted `a` from `from` on whose value exceeds x. */
function upperBound(a: Float64Array, x: number, from: number): number {
  let lo = from;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the centroid of ascending `c` nearest to x (the lower one on a tie). */
function nearest(c: Float32Array, x: number): number {
  let lo = 0;
  let hi = c.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x > (c[mid] + c[mid + 1]) / 2) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Indices as stored: one per byte, or two 4-bit indices per byte (even element high) when `packed`. */
export function packIndices(indices: Uint8Array, packed: boolean): Uint8Array {
  if (!packed) return indices;
  const out = new Uint8Array(Math.ceil(indices.length / 2));
  for (let i = 0; i < indices.length; i++) out[i >> 1] |= i % 2 === 0 ? indices[i] << 4 : indices[i];
  return out;
}

/** Which tensors clustering replaces. */
export type ClusterTargets = 'projections' | 'all-matrices';

export interface ShareOptions {
  /** Entry l: the layer whose block weights layer l uses (each entry ≤ l and a source itself). */
  layerSource?: readonly number[];
  /** How a shared block's weights are made. Default 'mean'. */
  init?: 'first' | 'mean';
  /** Codebook clustering of the chosen tensors. */
  cluster?: { k: number; seed?: number; targets?: ClusterTargets };
}

export interface ShareReport {
  layerSource: number[] | null;
  clustered: string[];
  parametersStored: number;
}

/** Groups of `size` consecutive layers sharing the first one's slot: [0,0,2,2,4] for 5 layers and size 2. */
export function groupedLayerSource(layers: number, size: number): number[] {
  if (!Number.isInteger(size) || size < 1) throw new InvalidArgumentError(`Layers per shared block must be a positive integer; got ${size}.`);
  return Array.from({ length: layers }, (_, l) => l - (l % size));
}

const MATRIX = /_proj\.weight$/;

/** Shares blocks and/or clusters weights of the model in `folder`; the files form a folder that loads back. */
export async function shareModel(folder: ModelFolder, options: ShareOptions): Promise<{ files: ExportedFile[]; report: ShareReport }> {
  const c = folder.config;
  if (!options.layerSource && !options.cluster) throw new InvalidArgumentError('Choose shared layers, clustering, or both.');
  const init = options.init ?? 'mean';
  if (init !== 'first' && init !== 'mean') throw new InvalidArgumentError(`Shared block initialisation must be "first" or "mean"; got ${JSON.stringify(init)}.`);
  const rawConfig: Record<string, unknown> = { ...folder.rawConfig };
  const source = options.layerSource ? [...options.layerSource] : null;
  if (source) {
    if (c.layerWeightSource) throw new UnsupportedModelError('This model already shares blocks across depth.');
    rawConfig.layer_weight_source = source;
  }
  const outConfig = parseModelConfig(rawConfig, 'config.json (shared)'); // checks layer_weight_source
  const reader = new WeightReader(folder);
  const cluster = options.cluster;
  if (cluster && (!Number.isInteger(cluster.k) || cluster.k < 2 || cluster.k > 256)) throw new InvalidArgumentError(`A codebook needs 2 to 256 entries; got ${cluster.k}.`);
  const targets = cluster?.targets ?? 'projections';
  if (targets !== 'projections' && targets !== 'all-matrices') throw new InvalidArgumentError(`Clustering targets must be "projections" or "all-matrices"; got ${JSON.stringify(targets)}.`);
  const clustered = (name: string, shape: readonly number[]) =>
    cluster !== undefined && shape.length === 2 && (MATRIX.test(name) || (targets === 'all-matrices' && (name === 'model.embed_tokens.weight' || name === 'lm_head.weight')));

  /** A weight of the output: the mean over its group when blocks are shared and averaged. */
  const values = async (name: string): Promise<Float32Array> => {
    const m = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
    if (!m || !source || init === 'first') return reader.read(name);
    const l = Number(m[1]);
    const group = source.map((s, i) => (s === l ? i : -1)).filter((i) => i >= 0);
    const sum = new Float64Array((await reader.read(name)).length);
    for (const i of group) {
      const w = await reader.read(`model.layers.${i}.${m[2]}`);
      for (let j = 0; j < w.length; j++) sum[j] += w[j];
    }
    return Float32Array.from(sum, (v) => v / group.length);
  };

  const tensors: LazyTensorToWrite[] = [];
  const clusteredNames: string[] = [];
  let stored = 0;
  const seed = cluster?.seed ?? 0;
  // Codebooks (k values each) are kept once fitted; the indices are assigned again from the weight.
  const books = new Map<string, Float32Array>();
  const codebookOf = async (name: string): Promise<Float32Array> => {
    let book = books.get(name);
    if (!book) books.set(name, (book = kmeans1d(await values(name), cluster!.k, seed).codebook));
    return book;
  };
  for (const s of expectedWeights(outConfig)) {
    const n = s.shape.reduce((a, d) => a * d, 1);
    stored += n;
    const dtype = storageLike(reader.dtype(s.name));
    if (clustered(s.name, s.shape)) {
      clusteredNames.push(s.name);
      const packed = cluster!.k <= 16;
      tensors.push({ name: `${s.name}.codebook`, dtype: 'F32', shape: [cluster!.k], data: () => codebookOf(s.name) });
      tensors.push({
        name: `${s.name}.indices`,
        dtype: 'U8',
        shape: packed ? [Math.ceil(n / 2)] : s.shape,
        data: async () => packIndices(assignIndices(await values(s.name), await codebookOf(s.name)), packed),
      });
    } else {
      tensors.push({ name: s.name, dtype, shape: s.shape, data: async () => encodeFloat(await values(s.name), dtype) });
    }
  }
  const files = await modelFolderFiles(rawConfig, tensors, folder);
  return { files, report: { layerSource: source, clustered: clusteredNames, parametersStored: stored } };
}
