// Hugging Face model folders: finds config.json, the safetensors weights (model.safetensors, or the
// shards named by model.safetensors.index.json), generation_config.json and which tokenizer files
// exist; checks every tensor the config needs against the safetensors headers (presence, shape,
// dtype) before any weight is read; then streams the weights one tensor at a time so a loader can
// upload each to the GPU and drop it. Pickled PyTorch checkpoints are refused, never parsed.
// Files come through a FileSet (Blobs/Files or URLs here; a Node directory in model-folder-node.ts).
// This file neither tokenizes nor touches the GPU.

import {
  CancelledError,
  FileReadError,
  MissingFileError,
  ModelConfigError,
  UnsafeWeightsError,
  UnsupportedModelError,
  WeightMismatchError,
} from '../errors.ts';
import { type ModelConfig, type WeightSpec, expectedWeights, parseModelConfig } from '../model/config.ts';
import {
  type ReadOptions,
  type SafetensorsDType,
  type SafetensorsIndex,
  type TensorEntry,
  readSafetensorsIndex,
  readTensor,
  readTensorF32,
} from './safetensors.ts';
import { type ByteSource, type UrlSourceOptions, blobSource, openUrlSource, readText } from './source.ts';
import { type QuantizedParts, READABLE_QUANT_METHODS, assembleQuantized, locateQuantized, partNames } from '../quant/bnb-format.ts';
import { type QuantizedMatrix, dequantizeMatrix } from '../quant/format.ts';

/** The files of one folder, opened by name. */
export interface FileSet {
  /** Shown in messages (a directory path, "dropped files"). */
  readonly name?: string;
  /** File names (relative, '/'-separated) in the folder. */
  list(): string[];
  /** Opens a listed file; the caller closes it when the source has `close`. */
  open(name: string): ByteSource | Promise<ByteSource>;
}

/** A FileSet over Blobs or Files, e.g. from a directory drop or an `<input type=file multiple>`. */
export function blobFileSet(files: Iterable<File> | Record<string, Blob>, name = 'selected files'): FileSet {
  const map = new Map<string, Blob>();
  if (Symbol.iterator in Object(files)) {
    for (const f of files as Iterable<File>) map.set(baseName(f.webkitRelativePath || f.name), f);
  } else {
    for (const [k, v] of Object.entries(files as Record<string, Blob>)) map.set(k, v);
  }
  return {
    name,
    list: () => [...map.keys()].sort(),
    open(file) {
      const blob = map.get(file);
      if (!blob) throw new MissingFileError(`${file} is not among the ${name}.`, { file });
      return blobSource(blob, file);
    },
  };
}

/**
 * A FileSet over files served under one base URL (e.g. `https://huggingface.co/<repo>/resolve/<rev>/`),
 * with the names known beforehand (from a repository listing). Each file is read with Range requests.
 */
export function urlFileSet(baseUrl: string, names: readonly string[], options: UrlSourceOptions = {}): FileSet {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const listed = new Set(names);
  const sizes = new Map<string, number>(); // learned at first open, so reopening costs no probe
  return {
    name: base,
    list: () => [...listed].sort(),
    async open(file) {
      if (!listed.has(file)) throw new MissingFileError(`${file} is not listed under ${base}.`, { file: base + file });
      const source = await openUrlSource(base + file.split('/').map(encodeURIComponent).join('/'), { ...options, size: sizes.get(file) });
      sizes.set(file, source.size);
      return source;
    },
  };
}

function baseName(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? path : path.slice(i + 1);
}

export const CONFIG_FILE = 'config.json';
export const GENERATION_CONFIG_FILE = 'generation_config.json';
export const SINGLE_WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';
/** Tokenizer files whose presence is reported. */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'chat_template.jinja',
  'chat_template.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
] as const;

/** Upper bound for the JSON files of a folder (config, generation config, weight index). */
export const MAX_JSON_BYTES = 64 * 1024 * 1024;

const PICKLE_NAME = /(^|\/)(pytorch_model[^/]*\.bin(\.index\.json)?|[^/]+\.(pt|pth|ckpt|bin))$/i;

export const CONVERT_HINT =
  'Whetstone reads only safetensors: pickled PyTorch files can run code when loaded. Convert the checkpoint first: ' +
  'on the Hugging Face Hub the "safetensors/convert" Space opens a pull request with converted weights; locally run ' +
  '`python -c "import torch; from safetensors.torch import save_file; sd = torch.load(\'pytorch_model.bin\', map_location=\'cpu\', weights_only=True); ' +
  "save_file({k: v.clone().contiguous() for k, v in sd.items()}, 'model.safetensors', metadata={'format': 'pt'})\"` " +
  '(for a sharded checkpoint: `AutoModelForCausalLM.from_pretrained(folder).save_pretrained(out)` writes safetensors shards).';

/** Where one expected weight lives. */
export interface WeightLocation {
  name: string;
  shape: number[];
  dtype: SafetensorsDType;
  /** The weight file holding it. */
  file: string;
  entry: TensorEntry;
  /**
   * A clustered weight (docs/compression.md): `entry` is `<name>.indices` (U8) and this is
   * `<name>.codebook` (F32 [k]) in the same file; the weight reads as F32 codebook[index].
   */
  codebook?: TensorEntry;
  /**
   * A quantized weight (bitsandbytes NF4/FP4 or LLM.int8 layout, or INT4 groups; quant/bnb-format.ts):
   * its parts in `file`; `entry` is the packed weight.
   */
  quantized?: QuantizedParts;
}

export interface ModelFolder {
  files: FileSet;
  config: ModelConfig;
  /** config.json as parsed. */
  rawConfig: Record<string, unknown>;
  /** generation_config.json as parsed, or null when the folder has none. */
  generationConfig: Record<string, unknown> | null;
  /** Which of TOKENIZER_FILES the folder has. */
  tokenizerFiles: string[];
  /** The safetensors files read, in read order, with their validated headers. */
  shards: { file: string; index: SafetensorsIndex }[];
  /** The weights the config needs, in read order (shard by shard, by file offset). */
  weights: WeightLocation[];
  /** Tensors in the weight files that the config does not use (e.g. a tied lm_head.weight); never read. */
  unusedTensors: string[];
  /** Bytes of weight data that streamWeights reads. */
  weightBytes: number;
}

export interface OpenOptions {
  signal?: AbortSignal;
}

async function withSource<T>(files: FileSet, name: string, fn: (s: ByteSource) => Promise<T>): Promise<T> {
  const source = await files.open(name);
  try {
    return await fn(source);
  } finally {
    await source.close?.();
  }
}

async function readJson(files: FileSet, name: string): Promise<{ value: unknown; file: string }> {
  return withSource(files, name, async (source) => {
    const text = await readText(source, MAX_JSON_BYTES);
    try {
      return { value: JSON.parse(text), file: source.name };
    } catch (e) {
      const m = /position (\d+)/.exec((e as Error).message);
      const byteOffset = m ? new TextEncoder().encode(text.slice(0, Number(m[1]))).byteLength : 0;
      throw new ModelConfigError(`The file is not valid JSON: ${(e as Error).message}`, { file: source.name, byteOffset, cause: e });
    }
  });
}

function checkCancelled(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new CancelledError(`${what} was cancelled.`);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

const FLOAT_DTYPES: readonly SafetensorsDType[] = ['F32', 'F16', 'BF16', 'F64'];

/**
 * Opens a model folder: reads config.json, generation_config.json and the safetensors headers,
 * and checks that every weight the config needs is present with the right shape and a float
 * dtype. Reads no weight data.
 */
export async function openModelFolder(files: FileSet, options: OpenOptions = {}): Promise<ModelFolder> {
  const where = files.name ?? 'the model folder';
  const names = new Set(files.list());

  if (!names.has(CONFIG_FILE)) {
    const adapter = names.has('adapter_config.json');
    throw new MissingFileError(`${where} has no ${CONFIG_FILE}.`, {
      file: CONFIG_FILE,
      hint: adapter
        ? 'This is an adapter folder (adapter_config.json); open its base model folder and load the adapter onto it.'
        : 'Choose the folder that holds config.json, the safetensors weights and the tokenizer files of a Hugging Face model.',
    });
  }
  const cfg = await readJson(files, CONFIG_FILE);
  const config = parseModelConfig(cfg.value, cfg.file);
  // bitsandbytes (NF4/FP4, LLM.int8) and INT4-group checkpoints are read (quant/bnb-format.ts); other methods are not.
  if (config.quantization !== null && !READABLE_QUANT_METHODS.includes(config.quantization)) {
    throw new UnsupportedModelError(`The checkpoint is pre-quantized (${config.quantization}); its weights are not plain float tensors.`, {
      file: cfg.file,
      hint: 'Load the unquantized (float16/bfloat16) model, or a bitsandbytes one; Whetstone quantizes it itself for QLoRA.',
    });
  }

  let generationConfig: Record<string, unknown> | null = null;
  if (names.has(GENERATION_CONFIG_FILE)) {
    const g = await readJson(files, GENERATION_CONFIG_FILE);
    if (g.value === null || typeof g.value !== 'object' || Array.isArray(g.value)) {
      throw new ModelConfigError('generation_config.json must be a JSON object.', { file: g.file });
    }
    generationConfig = g.value as Record<string, unknown>;
  }
  const tokenizerFiles = TOKENIZER_FILES.filter((f) => names.has(f));

  // Which weight files, and (for a sharded checkpoint) which shard each tensor is in.
  let shardFiles: string[];
  let weightMap: Map<string, string> | null = null;
  let indexFile = WEIGHTS_INDEX_FILE;
  if (names.has(WEIGHTS_INDEX_FILE)) {
    const idx = await readJson(files, WEIGHTS_INDEX_FILE);
    indexFile = idx.file;
    weightMap = parseWeightMap(idx.value, idx.file);
    shardFiles = [...new Set(weightMap.values())].sort();
    for (const s of shardFiles) {
      if (!names.has(s)) {
        throw new MissingFileError(`Shard ${s}, named in ${WEIGHTS_INDEX_FILE}, is not in ${where}.`, { file: idx.file });
      }
    }
  } else if (names.has(SINGLE_WEIGHTS_FILE)) {
    shardFiles = [SINGLE_WEIGHTS_FILE];
  } else {
    const pickles = [...names].filter((n) => PICKLE_NAME.test(n));
    if (pickles.length > 0) {
      throw new UnsafeWeightsError(
        `${where} has PyTorch pickle weights (${pickles.slice(0, 4).join(', ')}${pickles.length > 4 ? ', …' : ''}) and no ${SINGLE_WEIGHTS_FILE}; pickles are never loaded.`,
        { file: pickles[0], hint: CONVERT_HINT },
      );
    }
    const others = [...names].filter((n) => n.endsWith('.safetensors'));
    throw new MissingFileError(
      `${where} has neither ${SINGLE_WEIGHTS_FILE} nor ${WEIGHTS_INDEX_FILE}${others.length ? ` (found ${others.slice(0, 4).join(', ')})` : ''}.`,
      { file: SINGLE_WEIGHTS_FILE },
    );
  }

  const shards: ModelFolder['shards'] = [];
  for (const s of shardFiles) {
    checkCancelled(options.signal, `Opening ${where}`);
    shards.push({ file: s, index: await withSource(files, s, readSafetensorsIndex) });
  }
  const shardByFile = new Map(shards.map((s) => [s.file, s]));

  // Where each tensor is: the index decides for sharded checkpoints.
  const located = new Map<string, { file: string; index: SafetensorsIndex; entry: TensorEntry }>();
  if (weightMap) {
    for (const [tensor, file] of weightMap) {
      const shard = shardByFile.get(file) as (typeof shards)[number];
      const entry = shard.index.tensors.get(tensor);
      if (!entry) {
        throw new WeightMismatchError(`${WEIGHTS_INDEX_FILE} places tensor "${tensor}" in ${file}, but that file does not contain it.`, {
          file: shard.index.file,
        });
      }
      located.set(tensor, { file, index: shard.index, entry });
    }
  } else {
    const shard = shards[0];
    for (const entry of shard.index.tensors.values()) located.set(entry.name, { file: shard.file, index: shard.index, entry });
  }

  const expected = expectedWeights(config);
  const clustered = (name: string) => located.has(`${name}.indices`) && located.has(`${name}.codebook`);
  const missing = expected.filter((w) => !located.has(w.name) && !clustered(w.name));
  if (missing.length > 0) {
    const list = missing.slice(0, 5).map((w) => w.name);
    throw new WeightMismatchError(
      `The checkpoint lacks ${missing.length} tensor${missing.length > 1 ? 's' : ''} that ${config.architecture} with this config needs: ${list.join(', ')}${missing.length > 5 ? ', …' : ''}.`,
      { file: weightMap ? indexFile : shards[0].index.file },
    );
  }
  const weights: WeightLocation[] = [];
  type Located = { file: string; index: SafetensorsIndex; entry: TensorEntry };
  const int4Group = int4GroupSize(cfg.value);
  for (const w of expected) {
    const at = located.get(w.name);
    const quantized = at ? locateQuantized(w.name, w.shape, (n) => located.get(n)) : null;
    if (quantized) {
      weights.push({ name: w.name, shape: w.shape, dtype: quantized.entries.weight.dtype, file: quantized.file, entry: quantized.entries.weight, quantized: { ...quantized, groupSize: int4Group } });
      continue;
    }
    weights.push(at ? checkWeight(w, at) : checkClustered(w, located.get(`${w.name}.indices`) as Located, located.get(`${w.name}.codebook`) as Located));
  }
  const order = new Map(shardFiles.map((f, i) => [f, i]));
  weights.sort((a, b) => (order.get(a.file) as number) - (order.get(b.file) as number) || a.entry.offset - b.entry.offset);

  const expectedNames = new Set(weights.flatMap((w) => (w.codebook ? [w.entry.name, w.codebook.name] : w.quantized ? partNames(w.quantized) : [w.name])));
  const unused = new Set([...located.keys()].filter((n) => !expectedNames.has(n)));
  for (const s of shards) for (const n of s.index.tensors.keys()) if (!expectedNames.has(n)) unused.add(n);

  return {
    files,
    config,
    rawConfig: cfg.value as Record<string, unknown>,
    generationConfig,
    tokenizerFiles,
    shards,
    weights,
    unusedTensors: [...unused],
    weightBytes: weights.reduce((a, w) => a + locationBytes(w), 0),
  };
}

/** Bytes of every tensor a weight reads. */
function locationBytes(w: WeightLocation): number {
  if (w.quantized) return Object.values(w.quantized.entries).reduce((a, e) => a + e.byteLength, 0);
  return w.entry.byteLength + (w.codebook?.byteLength ?? 0);
}

/** config.json's quantization_config.group_size for INT4 folders (default 64). */
function int4GroupSize(raw: unknown): number {
  const q = (raw as { quantization_config?: { quant_method?: unknown; group_size?: unknown } }).quantization_config;
  return q && q.quant_method === 'whetstone-int4' && typeof q.group_size === 'number' ? q.group_size : 64;
}

/** Reads every part of a quantized weight and decodes them into a QuantizedMatrix. */
async function readQuantized(source: ByteSource, w: WeightLocation, options: ReadOptions): Promise<QuantizedMatrix> {
  const q = w.quantized as QuantizedParts;
  const bytes: Record<string, Uint8Array> = {};
  for (const [role, entry] of Object.entries(q.entries)) bytes[role] = await readTensor(source, entry, options);
  return assembleQuantized(w.name, w.shape, q, bytes, q.groupSize);
}

function checkWeight(w: WeightSpec, at: { file: string; index: SafetensorsIndex; entry: TensorEntry }): WeightLocation {
  const { entry, index } = at;
  if (!sameShape(entry.shape, w.shape)) {
    throw new WeightMismatchError(
      `Tensor "${w.name}" has shape [${entry.shape.join(', ')}] but the config needs [${w.shape.join(', ')}].`,
      { file: index.file, byteOffset: entry.offset },
    );
  }
  if (!FLOAT_DTYPES.includes(entry.dtype)) {
    throw new WeightMismatchError(`Tensor "${w.name}" has dtype ${entry.dtype}; a float dtype (${FLOAT_DTYPES.join(', ')}) is needed.`, {
      file: index.file,
      byteOffset: entry.offset,
    });
  }
  return { name: w.name, shape: w.shape, dtype: entry.dtype, file: at.file, entry };
}

/** A clustered weight's indices and codebook, checked against the shape the config needs. */
function checkClustered(w: WeightSpec, indices: { file: string; index: SafetensorsIndex; entry: TensorEntry }, codebook: { file: string; entry: TensorEntry }): WeightLocation {
  const file = indices.index.file;
  const n = w.shape.reduce((a, d) => a * d, 1);
  const k = codebook.entry.shape.reduce((a, d) => a * d, 1);
  const count = indices.entry.shape.reduce((a, d) => a * d, 1);
  const fail = (what: string) => new WeightMismatchError(`Clustered weight "${w.name}": ${what}`, { file, byteOffset: indices.entry.offset });
  if (indices.file !== codebook.file) throw fail(`its indices (${indices.file}) and codebook (${codebook.file}) must be in the same file.`);
  if (indices.entry.dtype !== 'U8' || codebook.entry.dtype !== 'F32') {
    throw fail(`indices must be U8 and the codebook F32; got ${indices.entry.dtype} and ${codebook.entry.dtype}.`);
  }
  if (codebook.entry.shape.length !== 1 || k < 1 || k > 256) throw fail(`the codebook must be a vector of 1 to 256 values; got shape [${codebook.entry.shape.join(', ')}].`);
  const packed = k <= 16 && indices.entry.shape.length === 1 && count === Math.ceil(n / 2) && count !== n;
  if (!packed && !(count === n && sameShape(indices.entry.shape, w.shape))) {
    throw fail(
      `indices have shape [${indices.entry.shape.join(', ')}]; expected [${w.shape.join(', ')}] (one byte per value)${k <= 16 ? ` or [${Math.ceil(n / 2)}] (two 4-bit indices per byte)` : ''}.`,
    );
  }
  return { name: w.name, shape: w.shape, dtype: 'F32', file: indices.file, entry: indices.entry, codebook: codebook.entry };
}

/**
 * Values of a clustered weight: codebook[index] per element. Indices are one byte per value, or two
 * 4-bit indices per byte (the even element in the high nibble) when `indices` has ceil(n / 2) bytes.
 */
export function decodeClusteredValues(indices: Uint8Array, codebook: Float32Array, n: number, name: string): Float32Array {
  const packed = indices.length !== n;
  if (packed && (codebook.length > 16 || indices.length !== Math.ceil(n / 2))) {
    throw new WeightMismatchError(`Clustered weight "${name}" has ${indices.length} index bytes for ${n} values and a codebook of ${codebook.length}.`);
  }
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const k = packed ? (i % 2 === 0 ? indices[i >> 1] >> 4 : indices[i >> 1] & 15) : indices[i];
    if (k >= codebook.length) throw new WeightMismatchError(`Clustered weight "${name}": index ${k} at element ${i} is outside its codebook of ${codebook.length}.`);
    out[i] = codebook[k];
  }
  return out;
}

/** Reads and reconstructs a clustered weight (f32). */
async function readClustered(source: ByteSource, w: WeightLocation, options: ReadOptions): Promise<Float32Array> {
  const codebookEntry = w.codebook as TensorEntry;
  const codebook = await readTensorF32(source, codebookEntry, options);
  const indices = await readTensor(source, w.entry, options);
  return decodeClusteredValues(indices, codebook, w.shape.reduce((a, d) => a * d, 1), w.name);
}

function parseWeightMap(v: unknown, file: string): Map<string, string> {
  const wm = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>).weight_map : undefined;
  if (wm === null || typeof wm !== 'object' || Array.isArray(wm)) {
    throw new ModelConfigError('Key "weight_map" is missing or not an object mapping tensor names to shard files.', { file });
  }
  const map = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof shard !== 'string' || !shard.endsWith('.safetensors') || shard.startsWith('/') || shard.split(/[\\/]/).includes('..')) {
      throw new ModelConfigError(`weight_map entry "${tensor}" names ${JSON.stringify(shard)}; expected a .safetensors file name in the folder.`, {
        file,
      });
    }
    map.set(tensor, shard);
  }
  return map;
}

/** One weight, read. */
export interface LoadedWeight {
  name: string;
  /** The dtype stored in the file. */
  dtype: SafetensorsDType;
  shape: number[];
  data: Float32Array;
}

/** One weight, raw. */
export interface RawWeight {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Little-endian elements of `dtype`. */
  bytes: Uint8Array;
  /** A quantized weight, decoded from its parts (`bytes` then holds its packed codes). */
  quantized?: QuantizedMatrix;
}

export interface StreamOptions extends ReadOptions {
  /** Called after each tensor with bytes read so far and in all. */
  onProgress?: (p: { tensor: string; done: number; total: number; bytesDone: number; bytesTotal: number }) => void;
}

async function* streamLocations<T>(
  folder: ModelFolder,
  options: StreamOptions,
  read: (source: ByteSource, w: WeightLocation) => Promise<T>,
): AsyncGenerator<T> {
  let bytesDone = 0;
  let done = 0;
  for (const shard of folder.shards) {
    const mine = folder.weights.filter((w) => w.file === shard.file);
    if (mine.length === 0) continue;
    checkCancelled(options.signal, 'Loading the weights');
    const source = await folder.files.open(shard.file);
    try {
      if (source.size !== shard.index.size) {
        throw new FileReadError(`The file is now ${source.size} bytes; it was ${shard.index.size} when the folder was opened.`, {
          file: source.name,
        });
      }
      for (const w of mine) {
        checkCancelled(options.signal, 'Loading the weights');
        const value = await read(source, w);
        bytesDone += locationBytes(w);
        done++;
        options.onProgress?.({ tensor: w.name, done, total: folder.weights.length, bytesDone, bytesTotal: folder.weightBytes });
        yield value;
      }
    } finally {
      await source.close?.();
    }
  }
}

/**
 * Yields every weight the config needs, one at a time, converted to f32. Only the current tensor
 * (plus one read chunk) is held; drop each after uploading it.
 */
export function streamWeights(folder: ModelFolder, options: StreamOptions = {}): AsyncGenerator<LoadedWeight> {
  return streamLocations(folder, options, async (source, w) => ({
    name: w.name,
    dtype: w.dtype,
    shape: w.shape,
    data: await readLocationF32(source, w, options),
  }));
}

/** One weight's values as f32 from its opened file: plain, clustered or quantized (decoded). */
function readLocationF32(source: ByteSource, w: WeightLocation, options: ReadOptions): Promise<Float32Array> {
  if (w.codebook) return readClustered(source, w, options);
  if (w.quantized) return readQuantized(source, w, options).then(dequantizeMatrix);
  return readTensorF32(source, w.entry, options);
}

/** Reads one weight of the folder (one of `folder.weights`) as f32, opening and closing its file. */
export async function readWeightF32(folder: ModelFolder, w: WeightLocation, options: ReadOptions = {}): Promise<Float32Array> {
  const source = await folder.files.open(w.file);
  try {
    return await readLocationF32(source, w, options);
  } finally {
    await source.close?.();
  }
}

/** Like streamWeights, but yields the stored bytes unconverted (for bf16/f16 GPU storage). */
export function streamRawWeights(folder: ModelFolder, options: StreamOptions = {}): AsyncGenerator<RawWeight> {
  return streamLocations(folder, options, async (source, w) => {
    if (w.quantized) {
      const quantized = await readQuantized(source, w, options);
      return { name: w.name, dtype: w.dtype, shape: w.shape, bytes: quantized.codes, quantized };
    }
    return {
      name: w.name,
      dtype: w.dtype,
      shape: w.shape,
      bytes: w.codebook ? new Uint8Array((await readClustered(source, w, options)).buffer) : await readTensor(source, w.entry, options),
    };
  });
}
