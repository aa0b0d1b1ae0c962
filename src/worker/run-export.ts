// Downloads of a finished run, built in the worker as zip files (fflate): the PEFT adapter
// (adapter_config.json, adapter_model.safetensors, README.md model card, read from the run's blobs),
// the GGUF LoRA adapter for llama.cpp with its Ollama Modelfile, and the merged model as a Hugging
// Face folder (the base model must be loaded: the merge reads its weights from the GPU). Entries are
// streamed into the zip with progress in bytes and stop on the abort signal. The studio turns the
// returned Blob into a download; nothing is written to the store.

import { Zip, ZipDeflate, ZipPassThrough } from 'fflate';
import { CancelledError, InvalidArgumentError, MissingFileError } from '../engine/errors.ts';
import { ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, importPeftLora } from '../engine/io/export-peft.ts';
import { parseModelConfig } from '../engine/model/config.ts';
import { type ExportedFile, exportMergedModel, loadLora } from '../engine/peft/lora/index.ts';
import type { BlobStore } from '../engine/store/store.ts';
import { ggufAdapterFiles } from '../engine/train/adapter-files.ts';
import type { ModelService } from './models.ts';
import { type RunRecord, type RunStore, exportFileName, runKeys } from './runs.ts';
import { baseModelName } from './training.ts';

export type ExportFormat = 'peft' | 'gguf' | 'merged';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['peft', 'gguf', 'merged'];

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
  for (const need of [ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME]) {
    if (!out.has(need)) throw new MissingFileError(`The adapter of run ${run.id} lacks ${need} in the store.`, { hint: 'Delete the run and train it again.' });
  }
  return out;
}

/** Builds the download of `format` for a finished run. */
export async function exportRun(deps: ExportDeps, runId: string, format: ExportFormat, signal: AbortSignal, onProgress?: (p: ExportProgress) => void): Promise<ExportedDownload> {
  if (!EXPORT_FORMATS.includes(format)) throw new InvalidArgumentError(`Unknown export format ${JSON.stringify(format)}; expected ${EXPORT_FORMATS.join(', ')}.`);
  const run = await deps.runs().get(runId);
  if (!run) throw new MissingFileError(`There is no run ${runId}.`, { hint: 'It was deleted.' });
  const adapterFiles = await readAdapterFiles(deps.store(), run);
  let entries: ZipEntry[];
  let release = () => undefined as void;
  if (format === 'peft') {
    entries = [...adapterFiles].map(([name, bytes]) => bytesEntry(name, bytes, name !== ADAPTER_WEIGHTS_NAME));
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
    return { blob, fileName: exportFileName(run, format), bytes: blob.size, files: entries.map((e) => e.name) };
  } finally {
    release();
  }
}

/** The merged model's files, read from the loaded base model with the run's adapter merged in. */
async function mergedEntries(deps: ExportDeps, run: RunRecord, adapterFiles: Map<string, Uint8Array>): Promise<{ entries: ZipEntry[]; release(): void }> {
  const loaded = deps.models.active();
  const folder = deps.models.activeFolder();
  if (!loaded || !folder || loaded.summary.id !== run.model.id) {
    throw new InvalidArgumentError(`The merged model needs the run's base model, ${run.model.name}, loaded${loaded ? `; ${loaded.summary.name} is loaded now` : ''}.`, {
      hint: 'Load that model on the Model screen, then export the merged model again.',
    });
  }
  const adapter = await loadLora(loaded.model, adapterFiles);
  let files: ExportedFile[];
  try {
    files = await exportMergedModel(loaded.model, adapter, folder);
  } catch (e) {
    adapter.release();
    throw e;
  }
  // The merged weights are computed tensor by tensor as the zip reads them; the adapter goes afterwards.
  return {
    entries: files.map((f) => ({ name: f.name, bytes: f.bytes, compress: f.name.endsWith('.json'), chunks: () => f.chunks() })),
    release: () => adapter.release(),
  };
}
