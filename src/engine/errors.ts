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

export type WhetstoneErrorClass = ReturnType<typeof defineError>;

/** Turns anything thrown into a SerializedError for display. */
export function describeError(e: unknown): SerializedError {
  if (e instanceof WhetstoneError) return e.toJSON();
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: 'Error', message: String(e) };
}
