// Pruning a Hugging Face model folder into a new one: layer dropping (whole blocks removed, the rest
// renumbered), structured pruning of attention heads (whole KV groups, or the same number of query
// heads in every KV group, so grouped-query attention stays valid) and of MLP neurons, which shrink
// the tensors and config.json (num_attention_heads, num_key_value_heads, head_dim written
// explicitly, intermediate_size, num_hidden_layers); then unstructured magnitude pruning (per tensor
// or against one global threshold), Wanda (|W| · input activation norm, per output row) or N:M
// sparsity on the projection weights, which keep their shapes and gain zeros. Structured choices are
// made in a planning pass over the weights (and the calibration norms of calibrate.ts for the
// activation criterion); the output tensors are computed one at a time as the safetensors stream
// reaches them. Embeddings, norms and lm_head are never pruned. The recovery fine-tune is recover.ts.

import { InvalidArgumentError, UnsupportedModelError } from '../errors.ts';
import type { ModelFolder } from '../io/model-folder.ts';
import type { LazyTensorToWrite } from '../io/safetensors.ts';
import { expectedWeights, parseModelConfig } from '../model/config.ts';
import type { ActivationNorms } from './calibrate.ts';
import { type ExportedFile, WeightReader, encodeFloat, modelFolderFiles, storageLike } from './folder.ts';
import {
  GlobalThreshold,
  applyThreshold,
  headRows,
  keepLargest,
  magnitudePrune,
  neuronScores,
  nmPrune,
  queryHeadScores,
  takeCols,
  takeRows,
  wandaPrune,
} from './prune-math.ts';

/** Which weights count as importance: their magnitudes alone, or magnitudes times calibration activation norms. */
export type PruneCriterion = 'magnitude' | 'wanda';

export interface PruneOptions {
  /** Layers (source indices) removed entirely. */
  dropLayers?: readonly number[];
  /** Attention heads removed in every layer. */
  heads?: {
    /** 'kv-groups': `remove` whole KV heads with their query heads; 'query-heads': `remove` query heads from every KV group. */
    mode: 'kv-groups' | 'query-heads';
    remove: number;
  };
  /** MLP neurons (intermediate channels) removed in every layer. */
  neurons?: { remove: number };
  /** Unstructured sparsity of the projection weights: per tensor ('layer'; Wanda compares within each output row) or one global magnitude threshold. */
  unstructured?: { sparsity: number; scope?: 'layer' | 'global' };
  /** N:M semi-structured sparsity of the projection weights (e.g. 2:4). */
  nm?: { n: number; m: number };
  /** Importance criterion of every step. 'wanda' needs `norms`. Default 'magnitude'. */
  criterion?: PruneCriterion;
  /** Per-input-channel activation norms of each projection, from calibrate.ts (for 'wanda'). */
  norms?: ActivationNorms;
}

export interface PruneReport {
  /** Parameters the config stores, before and after. */
  parametersBefore: number;
  parametersAfter: number;
  /** Projection weights zeroed by unstructured / N:M pruning, and their total after structured pruning. */
  zeroed: number;
  projectionValues: number;
  /** The config.json keys changed, with their new values. */
  configChanges: Record<string, unknown>;
  /** Kept source indices per (output) layer: heads, KV heads and neurons; and which source layer each output layer is. */
  layers: { source: number; queryHeads: number[]; kvHeads: number[]; neurons: number[] }[];
}

export interface PruneResult {
  files: ExportedFile[];
  report: PruneReport;
}

const PROJECTIONS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'] as const;

function count(shape: readonly number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}

/** Prunes the model in `folder` as `options` say; the returned files form a folder that loads back. */
export async function pruneModel(folder: ModelFolder, options: PruneOptions): Promise<PruneResult> {
  const c = folder.config;
  const criterion = options.criterion ?? 'magnitude';
  if (criterion !== 'magnitude' && criterion !== 'wanda') throw new InvalidArgumentError(`The pruning criterion must be "magnitude" or "wanda"; got ${JSON.stringify(criterion)}.`);
  const norms = options.norms;
  if (criterion === 'wanda' && !norms) throw new InvalidArgumentError('The "wanda" criterion needs calibration activation norms.', { hint: 'Give a calibration dataset.' });
  const sparsity = options.unstructured?.sparsity;
  if (sparsity !== undefined && !(sparsity >= 0 && sparsity < 1)) throw new InvalidArgumentError(`Sparsity must be at least 0 and below 1; got ${sparsity}.`);
  if (options.nm && !(Number.isInteger(options.nm.n) && Number.isInteger(options.nm.m) && options.nm.n >= 1 && options.nm.n < options.nm.m)) {
    throw new InvalidArgumentError(`N:M sparsity needs integers 1 ≤ N < M; got ${options.nm.n}:${options.nm.m}.`);
  }
  if (options.unstructured && options.nm) throw new InvalidArgumentError('Choose unstructured sparsity or N:M sparsity, not both.');
  if (options.unstructured?.scope === 'global' && criterion === 'wanda') {
    throw new InvalidArgumentError('Wanda compares weights within each output row; a global threshold is for magnitude pruning.');
  }
  if (c.layerWeightSource && (options.dropLayers?.length || options.heads || options.neurons)) {
    throw new UnsupportedModelError('This model shares blocks across depth; structured pruning and layer dropping need one set of weights per layer.');
  }
  const L = c.numHiddenLayers;
  const D = c.headDim;
  const Hq = c.numAttentionHeads;
  const Hkv = c.numKeyValueHeads;
  const g = Hq / Hkv;
  const C = c.hiddenSize;
  const F = c.intermediateSize;
  const reader = new WeightReader(folder);
  const normOf = (module: string): Float64Array | undefined => {
    if (criterion !== 'wanda') return undefined;
    const n = norms?.get(module);
    if (!n) throw new InvalidArgumentError(`No calibration activation norms for ${module}.`);
    return n;
  };

  // Layers kept.
  const drop = new Set(options.dropLayers ?? []);
  for (const l of drop) {
    if (!Number.isInteger(l) || l < 0 || l >= L) throw new InvalidArgumentError(`Layer ${l} cannot be dropped: the model has layers 0 to ${L - 1}.`);
  }
  const keptLayers = Array.from({ length: L }, (_, l) => l).filter((l) => !drop.has(l));
  if (keptLayers.length === 0) throw new InvalidArgumentError('Every layer would be dropped; keep at least one.');

  // Heads and neurons kept, per kept layer.
  let HqOut = Hq;
  let HkvOut = Hkv;
  let FOut = F;
  if (options.heads) {
    const { mode, remove } = options.heads;
    if (mode !== 'kv-groups' && mode !== 'query-heads') throw new InvalidArgumentError(`Head pruning mode must be "kv-groups" or "query-heads"; got ${JSON.stringify(mode)}.`);
    if (mode === 'kv-groups') {
      if (!Number.isInteger(remove) || remove < 1 || remove >= Hkv) {
        throw new InvalidArgumentError(`Can remove 1 to ${Hkv - 1} of the ${Hkv} KV groups; got ${remove}.`, { hint: Hkv === 1 ? 'With one KV head, remove query heads instead (mode query-heads).' : undefined });
      }
      HkvOut = Hkv - remove;
      HqOut = HkvOut * g;
    } else {
      if (!Number.isInteger(remove) || remove < 1 || remove >= g) {
        throw new InvalidArgumentError(`Can remove 1 to ${g - 1} of the ${g} query heads of each KV group; got ${remove}.`, { hint: g === 1 ? 'Each KV head serves one query head here: remove whole KV groups (mode kv-groups).' : undefined });
      }
      HqOut = Hkv * (g - remove);
    }
  }
  if (options.neurons) {
    const r = options.neurons.remove;
    if (!Number.isInteger(r) || r < 1 || r >= F) throw new InvalidArgumentError(`Can remove 1 to ${F - 1} of the ${F} MLP neurons per layer; got ${r}.`);
    FOut = F - r;
  }

  const layers: PruneReport['layers'] = [];
  for (const l of keptLayers) {
    const p = `model.layers.${l}.`;
    let queryHeads = Array.from({ length: Hq }, (_, h) => h);
    let kvHeads = Array.from({ length: Hkv }, (_, h) => h);
    let neurons = Array.from({ length: F }, (_, j) => j);
    if (options.heads) {
      const q = await reader.read(`${p}self_attn.q_proj.weight`);
      const o = await reader.read(`${p}self_attn.o_proj.weight`);
      const scores = queryHeadScores(q, o, C, Hq, D, normOf(`${p}self_attn.o_proj`));
      if (options.heads.mode === 'kv-groups') {
        const groupScores = Array.from({ length: Hkv }, (_, k) => {
          let s = 0;
          for (let i = 0; i < g; i++) s += scores[k * g + i];
          return s;
        });
        kvHeads = keepLargest(groupScores, HkvOut);
        queryHeads = kvHeads.flatMap((k) => Array.from({ length: g }, (_, i) => k * g + i));
      } else {
        const per = HqOut / Hkv;
        queryHeads = kvHeads.flatMap((k) => keepLargest(scores.subarray(k * g, (k + 1) * g), per).map((i) => k * g + i));
      }
    }
    if (options.neurons) {
      const gate = await reader.read(`${p}mlp.gate_proj.weight`);
      const up = await reader.read(`${p}mlp.up_proj.weight`);
      const down = await reader.read(`${p}mlp.down_proj.weight`);
      neurons = keepLargest(neuronScores(gate, up, down, C, F, normOf(`${p}mlp.down_proj`)), FOut);
    }
    layers.push({ source: l, queryHeads, kvHeads, neurons });
  }

  // The new config.
  const configChanges: Record<string, unknown> = {};
  if (keptLayers.length !== L) configChanges.num_hidden_layers = keptLayers.length;
  if (HqOut !== Hq) configChanges.num_attention_heads = HqOut;
  if (HkvOut !== Hkv) configChanges.num_key_value_heads = HkvOut;
  if (options.heads) configChanges.head_dim = D; // hidden_size / heads no longer gives it
  if (FOut !== F) configChanges.intermediate_size = FOut;
  const rawConfig = { ...folder.rawConfig, ...configChanges };
  const outConfig = parseModelConfig(rawConfig, 'config.json (pruned)');

  // What each output tensor is made of.
  const sourceName = (name: string): { name: string; layer: PruneReport['layers'][number] | null; rest: string } => {
    const m = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
    if (!m) return { name, layer: null, rest: name };
    const layer = layers[Number(m[1])];
    return { name: `model.layers.${layer.source}.${m[2]}`, layer, rest: m[2] };
  };
  const structured = (rest: string, layer: PruneReport['layers'][number], w: Float32Array): Float32Array => {
    const qRows = headRows(layer.queryHeads, D);
    const kvRows = headRows(layer.kvHeads, D);
    switch (rest) {
      case 'self_attn.q_proj.weight':
        return options.heads ? takeRows(w, C, qRows) : w;
      case 'self_attn.q_proj.bias':
        return options.heads ? takeRows(w, 1, qRows) : w;
      case 'self_attn.k_proj.weight':
      case 'self_attn.v_proj.weight':
        return options.heads ? takeRows(w, C, kvRows) : w;
      case 'self_attn.k_proj.bias':
      case 'self_attn.v_proj.bias':
        return options.heads ? takeRows(w, 1, kvRows) : w;
      case 'self_attn.o_proj.weight':
        return options.heads ? takeCols(w, C, Hq * D, qRows) : w;
      case 'mlp.gate_proj.weight':
      case 'mlp.up_proj.weight':
        return options.neurons ? takeRows(w, C, layer.neurons) : w;
      case 'mlp.down_proj.weight':
        return options.neurons ? takeCols(w, C, F, layer.neurons) : w;
      default:
        return w;
    }
  };
  const isProjection = (rest: string) => PROJECTIONS.some((p) => rest === `${p}.weight`);
  /** Activation norms of a projection's kept input channels. */
  const keptNorms = (rest: string, layer: PruneReport['layers'][number]): Float64Array | undefined => {
    const module = rest.slice(0, -'.weight'.length);
    const n = normOf(`model.layers.${layer.source}.${module}`);
    if (!n) return undefined;
    if (module === 'self_attn.o_proj' && options.heads) return Float64Array.from(headRows(layer.queryHeads, D), (j) => n[j]);
    if (module === 'mlp.down_proj' && options.neurons) return Float64Array.from(layer.neurons, (j) => n[j]);
    return n;
  };

  const outSpecs = expectedWeights(outConfig);
  const values = async (name: string): Promise<Float32Array> => {
    const src = sourceName(name);
    const w = await reader.read(src.name);
    return src.layer ? structured(src.rest, src.layer, w) : w;
  };

  // Unstructured pruning after the structured step; how many values it zeroes follows from the shapes.
  let zeroed = 0;
  let projectionValues = 0;
  for (const s of outSpecs) {
    if (!isProjection(sourceName(s.name).rest)) continue;
    const [rows, cols] = s.shape;
    projectionValues += rows * cols;
    if (options.nm) zeroed += ((options.nm.m - options.nm.n) * rows * cols) / options.nm.m;
    else if (options.unstructured && options.unstructured.scope !== 'global') {
      zeroed += criterion === 'wanda' ? Math.floor(options.unstructured.sparsity * cols) * rows : Math.floor(options.unstructured.sparsity * rows * cols);
    }
  }
  if (options.unstructured?.scope === 'global') zeroed = Math.floor(options.unstructured.sparsity * projectionValues);
  let global: { t: number; budget: { left: number } } | null = null;
  if (options.unstructured?.scope === 'global') {
    const th = new GlobalThreshold(projectionValues, options.unstructured.sparsity);
    const projNames = outSpecs.filter((s) => sourceName(s.name).layer && isProjection(sourceName(s.name).rest)).map((s) => s.name);
    for (const n of projNames) th.add(await values(n));
    th.next();
    for (const n of projNames) th.add(await values(n));
    const { t, atThreshold } = th.threshold();
    global = { t, budget: { left: atThreshold } };
  }
  const sparsify = (name: string, w: Float32Array, shape: readonly number[]): Float32Array => {
    const src = sourceName(name);
    if (!src.layer || !isProjection(src.rest)) return w;
    const [rows, cols] = shape;
    if (options.nm) nmPrune(w, rows, cols, options.nm.n, options.nm.m, keptNorms(src.rest, src.layer));
    else if (options.unstructured) {
      if (global) applyThreshold(w, global.t, global.budget);
      else if (criterion === 'wanda') wandaPrune(w, rows, cols, keptNorms(src.rest, src.layer) as Float64Array, options.unstructured.sparsity);
      else magnitudePrune(w, options.unstructured.sparsity);
    }
    return w;
  };
  if (options.nm) {
    for (const s of outSpecs) {
      const src = sourceName(s.name);
      if (src.layer && isProjection(src.rest) && s.shape[1] % options.nm.m !== 0) {
        throw new InvalidArgumentError(`N:M ${options.nm.n}:${options.nm.m} needs input sizes that are multiples of ${options.nm.m}; ${s.name} has ${s.shape[1]}.`);
      }
    }
  }

  // A global threshold is applied in the stream's order, so the values equal to t are taken in a fixed order.
  const tensors: LazyTensorToWrite[] = outSpecs.map((s) => ({
    name: s.name,
    dtype: storageLike(reader.dtype(sourceName(s.name).name)),
    shape: s.shape,
    data: async () => encodeFloat(sparsify(s.name, await values(s.name), s.shape), storageLike(reader.dtype(sourceName(s.name).name))),
  }));
  const files = await modelFolderFiles(rawConfig, tensors, folder);
  const report: PruneReport = {
    parametersBefore: expectedWeights(c).reduce((a, s) => a + count(s.shape), 0),
    parametersAfter: outSpecs.reduce((a, s) => a + count(s.shape), 0),
    zeroed,
    projectionValues,
    configChanges,
    layers,
  };
  return { files, report };
}
