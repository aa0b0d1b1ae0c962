// Typed errors of the engine. Each has a stable `name` that code can switch on, a message a person
// can act on, and a `hint` saying what to do next. This file holds no recovery logic.

export interface ErrorDetails {
  /** What to do about it, in one or two sentences. */
  hint?: string;
  /** The file the problem is in, when there is one. */
  file?: string;
  /** 1-based line number inside `file`. */
  line?: number;
  /** Byte offset inside `file`. */
  byteOffset?: number;
  /** The underlying error, when this one wraps another. */
  cause?: unknown;
}

export class WhetstoneError extends Error {
  readonly hint?: string;
  readonly file?: string;
  readonly line?: number;
  readonly byteOffset?: number;

  constructor(message: string, details: ErrorDetails = {}) {
    super(withLocation(message, details), details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'WhetstoneError';
    this.hint = details.hint;
    this.file = details.file;
    this.line = details.line;
    this.byteOffset = details.byteOffset;
  }

  /** A plain object that survives structured cloning (worker messages) and JSON. */
  toJSON(): SerializedError {
    return {
      name: this.name,
      message: this.message,
      hint: this.hint,
      file: this.file,
      line: this.line,
      byteOffset: this.byteOffset,
    };
  }
}

export interface SerializedError {
  name: string;
  message: string;
  hint?: string;
  file?: string;
  line?: number;
  byteOffset?: number;
}

function withLocation(message: string, d: ErrorDetails): string {
  if (d.file === undefined) return message;
  let where = d.file;
  if (d.line !== undefined) where += `:${d.line}`;
  if (d.byteOffset !== undefined) where += ` (byte ${d.byteOffset})`;
  return `${where}: ${message}`;
}

function defineError(name: string, defaultHint?: string) {
  const cls = class extends WhetstoneError {
    constructor(message: string, details: ErrorDetails = {}) {
      super(message, { ...details, hint: details.hint ?? defaultHint });
      this.name = name;
    }
  };
  Object.defineProperty(cls, 'name', { value: name });
  return cls;
}

/** No WebGPU implementation or no adapter could be found. */
export const GpuUnavailableError = defineError(
  'GpuUnavailableError',
  'Use a browser with WebGPU (Chrome or Edge 113+, or Chromium with --enable-unsafe-webgpu). ' +
    'In Node, install Debian\'s `chromium` package (it ships the SwiftShader Vulkan driver) or a Vulkan GPU driver; ' +
    '`bash scripts/setup.sh` does this for you.',
);
/** The device was lost (driver reset, tab in the background too long, out of memory). */
export const GpuDeviceLostError = defineError(
  'GpuDeviceLostError',
  'The GPU was reset. Reload the page or rerun the command; training resumes from its last checkpoint.',
);
/** WebGPU rejected a call: a bug in a kernel or its dispatcher. */
export const GpuValidationError = defineError(
  'GpuValidationError',
  'This is a bug in Whetstone. Please report it with the adapter summary.',
);
/** An allocation failed or would exceed a device limit. */
export const GpuOutOfMemoryError = defineError(
  'GpuOutOfMemoryError',
  'Use a smaller model, a shorter sequence length, a smaller batch, or QLoRA.',
);
/** Tensors with incompatible shapes or dtypes were combined. */
export const ShapeError = defineError('ShapeError');
/** A value given by the user (flag, setting) is out of range or malformed. */
export const InvalidArgumentError = defineError('InvalidArgumentError');
/** The user cancelled a long operation. */
export const CancelledError = defineError('CancelledError', 'Nothing was lost; start it again when ready.');

export const EngineBusyError = defineError('EngineBusyError', 'Wait for the running job to finish, or cancel it, then try again.');
/** A tokenizer file (tokenizer.json, tokenizer_config.json, generation_config.json) is malformed or unsupported. */
export const TokenizerError = defineError(
  'TokenizerError',
  'Use the tokenizer files published with the model (tokenizer.json from a "fast" tokenizer, tokenizer_config.json); ' +
    'models that ship only a SentencePiece tokenizer.model need converting to tokenizer.json first.',
);
/** A chat template failed to parse, failed while rendering, or rejected a conversation through raise_exception. */
export const ChatTemplateError = defineError(
  'ChatTemplateError',
  'Check the conversation against what the model\'s chat template accepts (roles, their order, a leading system ' +
    'message), or choose another chat template.',
);
/** Bytes could not be read from a file, blob or URL (a read past the end, a short read, an HTTP failure). */
export const FileReadError = defineError(
  'FileReadError',
  'Check that the file is complete and still where it was (for a URL: that the server is reachable and allows Range requests).',
);
/** A safetensors file is malformed: truncated, a bad header, offsets or sizes that do not add up. */
export const SafetensorsFormatError = defineError(
  'SafetensorsFormatError',
  'The file is damaged or is not a safetensors file. Download it again, or re-save it with the safetensors library.',
);
/** A model's config.json (or another JSON file of a model folder) lacks a key or has a bad value. */
export const ModelConfigError = defineError(
  'ModelConfigError',
  'Compare the file with the config.json of the model on the Hugging Face Hub; it may be damaged or from an unsupported tool.',
);
/** A model architecture, or a feature of one, that the engine does not implement. */
export const UnsupportedModelError = defineError(
  'UnsupportedModelError',
  'Pick a Llama-family model: Llama 2/3, TinyLlama, SmolLM/SmolLM2, Mistral, Qwen2/2.5 or Qwen3.',
);
/** Weights in a format that can run code when loaded (pickled PyTorch files); they are never read. */
export const UnsafeWeightsError = defineError(
  'UnsafeWeightsError',
  'Convert the checkpoint to safetensors first (the Hugging Face "convert to safetensors" Space does it, or safetensors.torch.save_file in Python).',
);
/** A file that a model folder needs (config.json, a weight shard named by the index) is not there. */
export const MissingFileError = defineError('MissingFileError', 'Add the missing file to the folder (download the model again if needed).');
/** A checkpoint's tensors do not match its config: a tensor is missing or has the wrong shape or dtype. */
export const WeightMismatchError = defineError(
  'WeightMismatchError',
  'The weights and config.json belong to different models, or the checkpoint is incomplete. Download the model again.',
);
/** An adapter config (adapter_config.json, or one built in the app) lacks a key, has a bad value, or asks for what an export cannot write. */
export const AdapterConfigError = defineError(
  'AdapterConfigError',
  'Compare the config with PEFT\'s adapter_config.json for the method (for LoRA: peft_type "LORA", r, lora_alpha, target_modules).',
);
/** An adapter's tensors do not match its config or the base model: a missing or unknown module, a wrong shape or dtype. */
export const AdapterMismatchError = defineError(
  'AdapterMismatchError',
  'The adapter was trained for another base model or with other settings, or its files are incomplete. Use the base model it was trained on.',
);

/** The local store (the file-system cache in Node, IndexedDB in the browser) could not be read or written. */
export const StoreError = defineError(
  'StoreError',
  'Check that there is free disk space and that the store location is writable (in Node it is WHETSTONE_HOME, or ~/.cache/whetstone).',
);
/** A Hugging Face Hub reference (hub:ORG/NAME@REVISION) is malformed. */
export const HubRefError = defineError(
  'HubRefError',
  'Write the model as hub:ORG/NAME or hub:ORG/NAME@REVISION, as in hub:HuggingFaceTB/SmolLM2-135M-Instruct@main.',
);
/** The Hub refused a request for lack of valid credentials: a gated or private model, or a rejected token. */
export const HubAuthError = defineError(
  'HubAuthError',
  'Gated models (e.g. Llama 3.2) need an access token: create one at https://huggingface.co/settings/tokens, pass it ' +
    '(HF_TOKEN), and accept the license on the model page.',
);
/** The Hub has no such repository, revision or file. */
export const HubNotFoundError = defineError(
  'HubNotFoundError',
  'Check the repository id (ORG/NAME, as in the model page URL), the revision and the file name on the Hub.',
);
/** A download failed: the connection broke, the server answered an error, or the bytes do not match the expected size. */
export const DownloadError = defineError('DownloadError', 'Run the download again; it resumes from the bytes already saved.');
/** A dataset file is unreadable as a whole: empty, not in a known format, bad JSON on a line, a line over the length limit. */
export const DatasetFormatError = defineError(
  'DatasetFormatError',
  'Fix the file at the place named (or export it again from the tool that made it), or choose its format explicitly.',
);

/** Where a bad dataset row is and what was expected of it. */
export interface BadRow {
  /** The file the row is in. */
  file?: string;
  /** 1-based line of the row (JSONL, CSV, text); absent for Parquet and JSON arrays. */
  line?: number;
  /** 0-based position of the row among the rows of its file. */
  rowIndex: number;
  /** What is wrong with the row. */
  message: string;
  /** What the row should hold instead. */
  expected: string;
}

/** Rows of a dataset that cannot become training examples. `rows` lists the first of them, `total` counts them all. */
export class DatasetRowsError extends defineError(
  'DatasetRowsError',
  'Fix the rows listed, map the columns to the format explicitly, or import with "skip bad rows" to leave them out (they are counted).',
) {
  readonly rows: readonly BadRow[];
  readonly total: number;

  constructor(message: string, rows: readonly BadRow[], total: number = rows.length, details: ErrorDetails = {}) {
    super(message, details);
    this.rows = rows;
    this.total = total;
  }

  override toJSON(): SerializedError & { rows: BadRow[]; total: number } {
    return { ...super.toJSON(), rows: this.rows.map((r) => ({ ...r })), total: this.total };
  }
}

export type WhetstoneErrorClass = ReturnType<typeof defineError>;

/** Turns anything thrown into a SerializedError for display. */
export function describeError(e: unknown): SerializedError {
  if (e instanceof WhetstoneError) return e.toJSON();
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: 'Error', message: String(e) };
}
