// The worker's Playground: one prompt answered by the loaded model (the "base" column) and by the
// same model with an adapter of any tuning method (the "tuned" column; a LoRA adapter at a chosen
// strength), streamed as text. The adapter is loaded through the method registry and enters
// generation through its inference options (withForwardOptions); prompt tuning's virtual tokens go
// in front of the prompt. A method whose generation the engine refuses fails with that typed error. The
// two generations are stepped in turn, one token each per round (each with its own KV cache, same
// seed), so both columns grow together; the text goes out in small batches through a callback. The
// adapters come from finished training runs in the store (`runs/<runId>/adapter/…`; a full
// fine-tune's model folder has no adapter_config.json and is not listed) or from PEFT LoRA files the
// person drops, kept in memory. EngineApi calls this inside its one-job-at-a-time guard;
// this file renders nothing and knows nothing of comlink.

import { type SerializedError, InvalidArgumentError, MissingFileError, describeError } from '../engine/errors.ts';
import { ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, importPeftLora } from '../engine/io/export-peft.ts';
import { type FileSet, blobFileSet } from '../engine/io/model-folder.ts';
import { readText } from '../engine/io/source.ts';
import { Generation, type GenerateResult } from '../engine/model/generate.ts';
import type { LlamaModel } from '../engine/model/llama.ts';
import { encodePrompt, stopTokenIds } from '../engine/model/prompting.ts';
import { checkSampling } from '../engine/model/sampling.ts';
import { StreamDecoder, type Tokenizer } from '../engine/model/tokenizer.ts';
import { checkLoraTensors } from '../engine/peft/lora/config.ts';
import { type PeftAdapter, withForwardOptions } from '../engine/peft/adapter.ts';
import type { LoraMethodAdapter } from '../engine/peft/lora/method.ts';
import { METHODS, loadAdapter } from '../engine/peft/methods.ts';
import type { BlobStore } from '../engine/store/store.ts';
import { storeFileSet } from './models.ts';

/** Store folder of training runs; a finished run keeps its PEFT adapter under `runs/<runId>/adapter/`. */
export const RUNS_PREFIX = 'runs/';
/** Adapter strength range of the slider: 0 is the base model, 1 the adapter as trained. */
export const MAX_STRENGTH = 2;
/** Most new tokens one Playground generation may ask for. */
export const MAX_PLAYGROUND_TOKENS = 4096;
/** Text is sent at most this often (a batch per message), and always at the end. */
export const CHUNK_INTERVAL_MS = 50;

export type Column = 'base' | 'tuned';

/** A PEFT LoRA adapter the Playground can apply. */
export interface AdapterEntry {
  /** `run:<runId>` for a training run in the store, `files:<name>` for dropped files. */
  id: string;
  name: string;
  source: 'run' | 'files';
  /** From adapter_config.json when it could be read. */
  r: number | null;
  alpha: number | null;
  targets: string | null;
  baseModel: string | null;
  /** Bytes of the two files. */
  bytes: number;
  /** The tuning method's registry id ("lora", "ia3" …) and label, from adapter_config.json; null when unknown. */
  method: string | null;
  methodLabel: string | null;
  /** Why the strength slider does not apply to this adapter (only LoRA's scale can be changed), or null. */
  strengthNote: string | null;
  /** Why the adapter cannot be used, when its config cannot be read. */
  error: SerializedError | null;
}

export interface PlaygroundRequest {
  prompt: string;
  /** Render the prompt as one user message with the chat template. */
  chat: boolean;
  maxNewTokens: number;
  /** 0 is greedy. */
  temperature: number;
  topP: number;
  /** 0 keeps every token. */
  topK: number;
  seed: number;
  /** The adapter of the tuned column, or null for the base column alone. */
  adapterId: string | null;
  /** Multiplies the adapter's scale, in [0, 2]. */
  strength: number;
}

/** New text of one column since the last chunk, with its running totals. */
export interface ColumnDelta {
  column: Column;
  text: string;
  /** Tokens generated so far. */
  tokens: number;
  /** Seconds since generation started. */
  seconds: number;
  done: boolean;
}

export interface ColumnResult {
  text: string;
  tokens: number;
  /** Seconds from the start until this column's last token. */
  seconds: number;
  tokensPerSecond: number;
  finishReason: GenerateResult['finishReason'];
}

export interface PlaygroundResult {
  promptTokens: number;
  base: ColumnResult;
  tuned: ColumnResult | null;
  adapter: AdapterEntry | null;
  strength: number;
  /** A note about the chat template (e.g. that the default ChatML was used), or null. */
  warning: string | null;
}

/** Collects column deltas and hands them out in batches, at most every `intervalMs` (a clock is given). */
export class ChunkBatcher {
  private pending = new Map<Column, ColumnDelta>();
  private last: number;

  constructor(
    private readonly now: () => number,
    private readonly intervalMs = CHUNK_INTERVAL_MS,
  ) {
    this.last = now();
  }

  /** Adds new text of a column; totals and `done` replace what was pending for it. */
  add(delta: ColumnDelta): void {
    const prev = this.pending.get(delta.column);
    this.pending.set(delta.column, prev ? { ...delta, text: prev.text + delta.text } : delta);
  }

  /** The pending deltas when some are pending and the interval has passed (or `force`), else null. */
  take(force = false): ColumnDelta[] | null {
    if (this.pending.size === 0) return null;
    const t = this.now();
    if (!force && t - this.last < this.intervalMs) return null;
    this.last = t;
    const out = [...this.pending.values()];
    this.pending = new Map();
    return out;
  }
}

/** Throws InvalidArgumentError for settings outside their ranges. */
export function checkRequest(r: PlaygroundRequest): void {
  if (typeof r.prompt !== 'string' || r.prompt.trim() === '') throw new InvalidArgumentError('The prompt is empty; write something for the model to continue.');
  if (!Number.isInteger(r.maxNewTokens) || r.maxNewTokens < 1 || r.maxNewTokens > MAX_PLAYGROUND_TOKENS) {
    throw new InvalidArgumentError(`Max new tokens must be a whole number from 1 to ${MAX_PLAYGROUND_TOKENS}; got ${r.maxNewTokens}.`);
  }
  if (!Number.isInteger(r.seed) || r.seed < 0 || r.seed > 0xffffffff) throw new InvalidArgumentError(`The seed must be a whole number from 0 to 4294967295; got ${r.seed}.`);
  if (!(Number.isFinite(r.strength) && r.strength >= 0 && r.strength <= MAX_STRENGTH)) {
    throw new InvalidArgumentError(`The adapter strength must be from 0 to ${MAX_STRENGTH}; got ${r.strength}.`);
  }
  checkSampling({ temperature: r.temperature, topP: r.topP, topK: r.topK });
}

/** The run id of `runs/<runId>/adapter/adapter_config.json`, or null for any other key. */
export function runOfAdapterKey(key: string): string | null {
  const m = /^runs\/([^/]+)\/adapter\/adapter_config\.json$/.exec(key);
  return m ? m[1] : null;
}

/** What an adapter_config.json says about an adapter, for the list; null fields where it is silent. */
function describeConfig(json: unknown): Pick<AdapterEntry, 'r' | 'alpha' | 'targets' | 'baseModel' | 'method' | 'methodLabel' | 'strengthNote'> {
  const c = (json !== null && typeof json === 'object' ? json : {}) as Record<string, unknown>;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const t = c.target_modules;
  const method = METHODS.find((m) => m.matches(c)) ?? null;
  return {
    method: method?.id ?? null,
    methodLabel: method?.label ?? null,
    strengthNote: strengthNote(method?.id ?? null, method?.label ?? null),
    r: num(c.r),
    alpha: num(c.lora_alpha),
    targets: typeof t === 'string' ? t : Array.isArray(t) ? t.filter((x) => typeof x === 'string').join(', ') : null,
    baseModel: typeof c.base_model_name_or_path === 'string' && c.base_model_name_or_path !== '' ? c.base_model_name_or_path : null,
  };
}

/** Why the strength slider does not apply to adapters of `method`, or null for LoRA (and a config no method claims). */
export function strengthNote(method: string | null, label: string | null): string | null {
  if (method === 'lora' || method === null) return null;
  if (method === 'dora') return 'DoRA rescales each output by its trained magnitude, so its update has no single scale: it applies as trained.';
  return `${label ?? 'This adapter'} has no update scale to turn down: it applies as trained.`;
}

export interface PlaygroundDeps {
  store: () => BlobStore;
  /** The loaded model and its tokenizer, or null. */
  active: () => { model: LlamaModel; tokenizer: Tokenizer } | null;
  /** Milliseconds, for speeds and batching; performance.now() by default. */
  now?: () => number;
}

interface Dropped {
  entry: AdapterEntry;
  files: FileSet;
}

export class PlaygroundService {
  private readonly dropped = new Map<string, Dropped>();
  /** The adapter last loaded onto the GPU, for the model it was loaded for. */
  private cached: { id: string; model: LlamaModel; adapter: PeftAdapter; stale: boolean } | null = null;
  private readonly now: () => number;

  constructor(private readonly deps: PlaygroundDeps) {
    this.now = deps.now ?? (() => performance.now());
  }

  /** Adapters of finished runs in the store (newest run id last), then the dropped ones. */
  async listAdapters(): Promise<AdapterEntry[]> {
    const store = this.deps.store();
    const blobs = await store.list(RUNS_PREFIX);
    const complete = new Map(blobs.filter((b) => b.complete).map((b) => [b.key, b.size]));
    const out: AdapterEntry[] = [];
    for (const [key, size] of complete) {
      const runId = runOfAdapterKey(key);
      if (runId === null) continue;
      // Every method's tensors are one .safetensors file (PEFT's name, or pytorch_adapter.safetensors for bottleneck adapters).
      const folder = `${RUNS_PREFIX}${runId}/adapter/`;
      const tensors = [...complete].filter(([k]) => k.startsWith(folder) && k.endsWith('.safetensors'));
      if (tensors.length === 0) continue; // a run still writing its adapter
      const weights = tensors.reduce((n, [, b]) => n + b, 0);
      const entry: AdapterEntry = {
        id: `run:${runId}`,
        name: runId,
        source: 'run',
        r: null,
        alpha: null,
        targets: null,
        baseModel: null,
        bytes: size + weights,
        method: null,
        methodLabel: null,
        strengthNote: null,
        error: null,
      };
      try {
        Object.assign(entry, describeConfig(JSON.parse(await readText(await store.read(key), 1 << 20))));
      } catch (e) {
        entry.error = describeError(new InvalidArgumentError(`${key} is not readable JSON: ${e instanceof Error ? e.message : String(e)}`, { file: key }));
      }
      out.push(entry);
    }
    out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return [...out, ...[...this.dropped.values()].map((d) => d.entry)];
  }

  /**
   * Takes a dropped PEFT adapter (its folder's files, or the two files): reads and checks its config
   * and tensors, against the loaded model when there is one (AdapterConfigError,
   * AdapterMismatchError), and keeps it in memory for this session under `files:<name>`.
   */
  async addAdapterFiles(files: readonly File[]): Promise<AdapterEntry> {
    const wanted = files.filter((f) => f.name === ADAPTER_CONFIG_NAME || f.name === ADAPTER_WEIGHTS_NAME);
    if (wanted.length === 0) {
      throw new MissingFileError(`None of the ${files.length} dropped file${files.length === 1 ? '' : 's'} is ${ADAPTER_CONFIG_NAME} or ${ADAPTER_WEIGHTS_NAME}.`, {
        hint: 'Drop a PEFT LoRA adapter folder, or its adapter_config.json and adapter_model.safetensors together.',
      });
    }
    const folders = new Set(files.map((f) => (f.webkitRelativePath || '').split('/')[0]).filter(Boolean));
    const name = folders.size === 1 ? [...folders][0] : 'dropped adapter';
    const set = blobFileSet(wanted, name);
    const active = this.deps.active();
    // Reading checks the config and the tensors; with a model loaded, their fit to it too. Nothing
    // goes to the GPU here (a generation may be running): the adapter loads when it is used.
    const imported = await importPeftLora(set, active?.model.config);
    if (active) checkLoraTensors(imported.config, active.model.config, imported.tensors);
    const id = `files:${name}`;
    const entry: AdapterEntry = {
      id,
      name,
      source: 'files',
      ...describeConfig(imported.config),
      bytes: wanted.reduce((n, f) => n + f.size, 0),
      error: null,
    };
    // An adapter of the same name on the GPU is replaced the next time it is used.
    if (this.cached?.id === id) this.cached.stale = true;
    this.dropped.set(id, { entry, files: set });
    return entry;
  }

  /** Loads adapter `id` for the loaded model (checking it fits) and describes it. */
  async checkAdapter(id: string): Promise<AdapterEntry> {
    const { model } = this.requireModel();
    await this.adapterFor(id, model);
    const entry = (await this.listAdapters()).find((a) => a.id === id);
    if (!entry) throw new MissingFileError(`Adapter ${id} is no longer available.`);
    return entry;
  }

  /**
   * Generates for `request.prompt` with the base model, and with the adapter at `strength` when one
   * is chosen, stepping both in turn; `onChunk` gets the new text in batches. Cancelling stops both
   * columns and returns what was generated (finishReason 'cancelled').
   */
  async generate(request: PlaygroundRequest, onChunk: (deltas: ColumnDelta[]) => void, signal: AbortSignal): Promise<PlaygroundResult> {
    checkRequest(request);
    const { model, tokenizer } = this.requireModel();
    const prompt = encodePrompt(tokenizer, request.prompt, request.chat);
    const adapter = request.adapterId === null ? null : await this.adapterFor(request.adapterId, model);
    const entry = request.adapterId === null ? null : ((await this.listAdapters()).find((a) => a.id === request.adapterId) ?? null);
    // Only LoRA's scale can be changed; other methods apply as trained (the UI disables the slider).
    if (adapter?.method === 'lora') (adapter as LoraMethodAdapter).lora.strength = request.strength;
    const options = {
      maxNewTokens: request.maxNewTokens,
      temperature: request.temperature,
      topP: request.topP,
      topK: request.topK,
      seed: request.seed,
      eosTokenIds: stopTokenIds(tokenizer, model.config),
      signal,
    };
    const start = this.now();
    const columns: { column: Column; gen: Generation; decoder: StreamDecoder; text: string; seconds: number }[] = [];
    const batcher = new ChunkBatcher(this.now);
    try {
      columns.push({ column: 'base', gen: new Generation(model, prompt.ids, options), decoder: new StreamDecoder(tokenizer, { skipSpecialTokens: true }), text: '', seconds: 0 });
      if (adapter) {
        // Prompt tuning feeds placeholders for its virtual tokens in front of the prompt; the view's hooks fill them.
        const ids = adapter.promptIds ? adapter.promptIds(prompt.ids) : prompt.ids;
        const gen = new Generation(withForwardOptions(model, adapter.inferenceOptions()), ids, options);
        columns.push({ column: 'tuned', gen, decoder: new StreamDecoder(tokenizer, { skipSpecialTokens: true }), text: '', seconds: 0 });
      }
      for (;;) {
        const live = columns.filter((c) => !c.gen.done);
        if (live.length === 0) break;
        // Each step submits its GPU work before it waits, so the columns' passes queue back to back.
        const settled = await Promise.allSettled(live.map((c) => c.gen.step()));
        const failed = settled.find((s) => s.status === 'rejected');
        if (failed) throw (failed as PromiseRejectedResult).reason;
        const seconds = (this.now() - start) / 1000;
        live.forEach((c, i) => {
          const id = (settled[i] as PromiseFulfilledResult<number | null>).value;
          let piece = id === null ? '' : c.decoder.push(id);
          if (c.gen.done) piece += c.decoder.flush();
          c.text += piece;
          c.seconds = seconds;
          batcher.add({ column: c.column, text: piece, tokens: c.gen.tokens.length, seconds, done: c.gen.done });
        });
        const chunk = batcher.take();
        if (chunk) onChunk(chunk);
      }
      const chunk = batcher.take(true);
      if (chunk) onChunk(chunk);
      const result = (c: (typeof columns)[number]): ColumnResult => ({
        text: c.text,
        tokens: c.gen.tokens.length,
        seconds: c.seconds,
        tokensPerSecond: c.seconds > 0 ? c.gen.tokens.length / c.seconds : 0,
        finishReason: c.gen.result().finishReason,
      });
      return {
        promptTokens: prompt.ids.length,
        base: result(columns[0]),
        tuned: columns[1] ? result(columns[1]) : null,
        adapter: entry,
        strength: adapter && adapter.method !== 'lora' ? 1 : request.strength,
        warning: prompt.warning,
      };
    } finally {
      for (const c of columns) c.gen.release();
    }
  }

  private requireModel(): { model: LlamaModel; tokenizer: Tokenizer } {
    const active = this.deps.active();
    if (!active) throw new InvalidArgumentError('No model is loaded.', { hint: 'Load a model on the Model screen first.' });
    return active;
  }

  /**
   * The LoRA adapter `id` on the GPU for `model`, loaded once and kept until another is asked for.
   * Called only inside the engine's one-job guard, so no generation uses the adapter it releases.
   */
  private async adapterFor(id: string, model: LlamaModel): Promise<PeftAdapter> {
    if (this.cached && this.cached.id === id && this.cached.model === model && !this.cached.stale) return this.cached.adapter;
    this.dropCached();
    const adapter = await loadAdapter(model, await this.filesOf(id));
    this.cached = { id, model, adapter, stale: false };
    return adapter;
  }

  private async filesOf(id: string): Promise<FileSet> {
    const dropped = this.dropped.get(id);
    if (dropped) return dropped.files;
    const run = /^run:([^/]+)$/.exec(id);
    if (!run) throw new MissingFileError(`There is no adapter ${JSON.stringify(id)}.`, { hint: 'Choose an adapter from the list, or drop a PEFT adapter folder.' });
    // The run's stored files, whatever its method saved (the model card aside).
    const prefix = `${RUNS_PREFIX}${run[1]}/adapter/`;
    const names = (await this.deps.store().list(prefix)).filter((b) => b.complete).map((b) => b.key.slice(prefix.length)).filter((n) => n !== 'README.md' && !n.includes('/'));
    return storeFileSet(this.deps.store(), prefix, names, `training run ${run[1]}`);
  }

  private dropCached(): void {
    this.cached?.adapter.release();
    this.cached = null;
  }
}
