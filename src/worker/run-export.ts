// Downloads of a finished run, built in the worker as zip files (fflate): the adapter as its method
// saved it (PEFT's adapter_config.json and adapter_model.safetensors for PEFT's methods, Whetstone's
// bottleneck layout, a whole model folder for full fine-tuning; each with its README.md model card,
// read from the run's blobs); for LoRA and QLoRA the GGUF LoRA adapter for llama.cpp with its Ollama
// Modelfile; for LoRA, QLoRA, DoRA and IA3 the merged model as a Hugging Face folder (the base model
// must be loaded: the merge reads its weights from the GPU). `exportFormats` says which downloads a
// run has and why the others are absent. Entries are streamed into the zip with progress in bytes and
// stop on the abort signal. The studio turns the returned Blob into a download; nothing is written
// to the store.

import { Zip, ZipDeflate, ZipPassThrough } from 'fflate';
import { CancelledError, InvalidArgumentError, MissingFileError } from '../engine/errors.ts';
import { ADAPTER_CONFIG_NAME, importPeftLora } from '../engine/io/export-peft.ts';
import { parseModelConfig } from '../engine/model/config.ts';
import type { ExportedFile } from '../engine/peft/lora/index.ts';
import { exportMergedFolder } from '../engine/peft/merged-export.ts';
import { detectMethod } from '../engine/peft/methods.ts';
import type { BlobStore } from '../engine/store/store.ts';
import { ggufAdapterFiles } from '../engine/train/adapter-files.ts';
import type { ModelService } from './models.ts';
import { type RunRecord, type RunStore, exportFileName, runKeys } from './runs.ts';
import { EXPORT_FORMATS, type ExportFormat, METHODS, exportFormats } from './train-settings.ts';
import { baseModelName } from './training.ts';

export type { ExportAvailability, ExportFormat } from './train-settings.ts';
export { EXPORT_FORMATS, exportFormats } from './train-settings.ts';

export interface ExportProgress {
  /** The file being written into the zip. */
  file: string;
  bytesDone: number;
  bytesTotal: number;
}

export interface ExportedDownload {
  blob: Blob;
  fileName: string;
  bytes: number;
  /** The names inside the zip. */
  files: string[];
}

export interface ExportDeps {
  store: () => BlobStore;
  runs: () => RunStore;
  models: ModelService;
}

/** One file to put into a zip. */
interface ZipEntry {
  name: string;
  bytes: number;
  /** Deflate it (text) or store it as is (tensors, which barely compress). */
  compress: boolean;
  chunks(): AsyncIterable<Uint8Array>;
}

/** Bytes of zip output gathered before they are handed to a Blob (which the browser may keep on disk). */
const BLOB_PART_BYTES = 64 * 1024 * 1024;

/** Streams `entries` into a zip; progress by input bytes; CancelledError when `signal` aborts. */
export async function zipEntries(entries: readonly ZipEntry[], signal: AbortSignal, onProgress?: (p: ExportProgress) => void): Promise<Blob> {
  const blobs: Blob[] = [];
  let parts: Uint8Array[] = [];
  let partBytes = 0;
  let failure: Error | null = null;
  const flush = () => {
    if (parts.length === 0) return;
    blobs.push(new Blob(parts as BlobPart[]));
    parts = [];
    partBytes = 0;
  };
  const zip = new Zip((err, data) => {
    if (err) {
      failure = err;
      return;
    }
    parts.push(data);
    partBytes += data.byteLength;
    if (partBytes >= BLOB_PART_BYTES) flush();
  });
  const total = entries.reduce((n, e) => n + e.bytes, 0);
  let done = 0;
  for (const e of entries) {
    const entry = e.compress ? new ZipDeflate(e.name, { level: 6 }) : new ZipPassThrough(e.name);
    zip.add(entry);
    let held: Uint8Array | null = null;
    for await (const chunk of e.chunks()) {
      if (signal.aborted) {
        zip.terminate();
        throw new CancelledError('The export was cancelled.', { hint: 'Nothing was downloaded; start the export again when ready.' });
      }
      if (held) entry.push(held);
      held = chunk;
      done += chunk.byteLength;
      onProgress?.({ file: e.name, bytesDone: done, bytesTotal: total });
    }
    entry.push(held ?? new Uint8Array(0), true);
    if (failure) throw failure;
  }
  zip.end();
  if (failure) throw failure;
  flush();
  return new Blob(blobs, { type: 'application/zip' });
}

function bytesEntry(name: string, bytes: Uint8Array, compress: boolean): ZipEntry {
  return {
    name,
    bytes: bytes.byteLength,
    compress,
    async *chunks() {
      yield bytes;
    },
  };
}

/** The stored files of a finished run's adapter, by name. */
export async function readAdapterFiles(store: BlobStore, run: RunRecord): Promise<Map<string, Uint8Array>> {
  if (run.status !== 'completed' || !run.result) {
    throw new InvalidArgumentError(`Run ${run.id} is ${run.status}; only a completed run has an adapter to export.`, { hint: 'Resume the run and let it finish, or start a new one.' });
  }
  const out = new Map<string, Uint8Array>();
  for (const { key } of run.result.files) {
    const src = await store.read(key);
    try {
      out.set(key.slice(runKeys.adapterFolder(run.id).length), await src.read(0, src.size));
    } finally {
      await src.close?.();
    }
  }
  // Every method saves a config: adapter_config.json, or config.json for a full fine-tune's model folder.
  const need = run.settings.method === 'full' ? 'config.json' : ADAPTER_CONFIG_NAME;
  if (!out.has(need)) throw new MissingFileError(`The adapter of run ${run.id} lacks ${need} in the store.`, { hint: 'Delete the run and train it again.' });
  return out;
}

/** Builds the download of `format` for a finished run. */
export async function exportRun(deps: ExportDeps, runId: string, format: ExportFormat, signal: AbortSignal, onProgress?: (p: ExportProgress) => void): Promise<ExportedDownload> {
  if (!EXPORT_FORMATS.includes(format)) throw new InvalidArgumentError(`Unknown export format ${JSON.stringify(format)}; expected ${EXPORT_FORMATS.join(', ')}.`);
  const run = await deps.runs().get(runId);
  if (!run) throw new MissingFileError(`There is no run ${runId}.`, { hint: 'It was deleted.' });
  const availability = exportFormats(run.settings.method).find((a) => a.format === format);
  if (availability && !availability.available) throw new InvalidArgumentError(availability.reason ?? `Run ${run.id} has no ${format} download.`, { hint: 'Download the adapter files instead.' });
  const adapterFiles = await readAdapterFiles(deps.store(), run);
  let entries: ZipEntry[];
  let release = () => undefined as void;
  if (format === 'peft') {
    entries = [...adapterFiles].map(([name, bytes]) => bytesEntry(name, bytes, !name.endsWith('.safetensors')));
  } else if (format === 'gguf') {
    const modelConfig = parseModelConfig(run.model.config, `${run.model.name}/config.json`);
    const imported = await importPeftLora(adapterFiles, modelConfig);
    const { gguf, modelfile, adapterFile } = ggufAdapterFiles({ config: imported.config, tensors: imported.tensors, modelConfig, name: `${baseModelName(run)} LoRA ${run.id}`, baseModel: baseModelName(run) });
    entries = [bytesEntry(adapterFile, gguf, false), bytesEntry('Modelfile', new TextEncoder().encode(modelfile), true)];
    const card = adapterFiles.get('README.md');
    if (card) entries.push(bytesEntry('README.md', card, true));
  } else {
    ({ entries, release } = await mergedEntries(deps, run, adapterFiles));
  }
  try {
    const blob = await zipEntries(entries, signal, onProgress);
    // The method's own files are "peft" for PEFT's methods, "adapter" for bottleneck adapters, "model" for a full fine-tune.
    const suffix = format !== 'peft' ? format : run.settings.method === 'full' ? 'model' : METHODS[run.settings.method]?.engine.peftType ? 'peft' : 'adapter';
    return { blob, fileName: exportFileName(run, suffix), bytes: blob.size, files: entries.map((e) => e.name) };
  } finally {
    release();
  }
}

/**
 * The merged model's files, read from the loaded base model with the run's adapter merged in through
 * the engine's one merge path (peft/merged-export.ts, as `whetstone export --format merged`). Nothing
 * is materialised whole: model.safetensors is computed tensor by tensor as the zip reads it (LoRA adds
 * its update to each weight on the CPU and leaves the model as it is; DoRA and IA3 are merged into the
 * loaded model's f32 weights on the GPU while that one file streams, and unmerged when it ends or the
 * export is cancelled, inside the export's GPU job so no generation sees the merged weights).
 */
async function mergedEntries(deps: ExportDeps, run: RunRecord, adapterFiles: Map<string, Uint8Array>): Promise<{ entries: ZipEntry[]; release(): void }> {
  const loaded = deps.models.active();
  const folder = deps.models.activeFolder();
  if (!loaded || !folder || loaded.summary.id !== run.model.id) {
    throw new InvalidArgumentError(`The merged model needs the run's base model, ${run.model.name}, loaded${loaded ? `; ${loaded.summary.name} is loaded now` : ''}.`, {
      hint: 'Load that model on the Model screen, then export the merged model again.',
    });
  }
  const method = await detectMethod(adapterFiles);
  if (method.id !== 'lora' && (loaded.model.quantization || loaded.model.weightDtype !== 'f32')) {
    throw new InvalidArgumentError(
      `Merging a ${method.label} adapter rewrites the projection weights in f32, and the studio holds ${run.model.name} ${loaded.model.quantization ? `quantized (${loaded.model.quantization})` : `in ${loaded.model.weightDtype}`} (models over 1 GiB of f32 weights load as bf16).`,
      { hint: 'Download the adapter files and merge them with PEFT (merge_and_unload), or run `whetstone export --format merged`, which loads the base in f32.' },
    );
  }
  const adapter = await method.load(loaded.model, adapterFiles);
  let files: ExportedFile[];
  try {
    files = await exportMergedFolder(loaded.model, adapter, folder);
  } catch (e) {
    adapter.release();
    throw e;
  }
  // The adapter goes once the zip has read every file (and a DoRA or IA3 merge has been undone).
  return {
    entries: files.map((f) => ({ name: f.name, bytes: f.bytes, compress: f.name.endsWith('.json'), chunks: () => f.chunks() })),
    release: () => adapter.release(),
  };
}
