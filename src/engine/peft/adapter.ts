// What every tuning method's adapter offers the rest of the engine (the trainer's TrainableAdapter
// plus export, inference and bookkeeping), and a LlamaModel view that applies forward options —
// an adapter's inference hooks — to every forward, loss and logits call, so evaluateLoss and
// generation see the adapted model. The methods themselves live in their folders; methods.ts lists them.

import type { Tape, Var } from '../autograd/tape.ts';
import type { Batch } from '../gpu/batch.ts';
import type { AdapterDType } from '../io/export-peft.ts';
import { type ForwardOptions, LlamaModel, type ModelInputs } from '../model/llama.ts';
import type { TrainableAdapter } from '../train/evaluate.ts';

/** Files of a saved adapter, by name. */
export type SavedFiles = Map<string, Uint8Array>;

/** A trainable adapter of any method, as the registry hands it out. */
export interface PeftAdapter extends TrainableAdapter {
  /** The registry id of its method ("lora", "ia3", ...). */
  readonly method: string;
  /** Trainable values in all. */
  readonly parameterCount: number;
  /** Bytes of GPU memory its parameters and gradients take. */
  readonly parameterBytes: number;
  /** The adapter's config as saved (adapter_config.json's object, or the method's own config file). */
  readonly savedConfig: Record<string, unknown>;
  /** When false the adapter adds nothing: forwardOptions and inferenceOptions give the base model. True by default. */
  enabled: boolean;
  /** One line for logs: what is adapted, e.g. "24 modules". */
  describe(): string;
  forwardOptions(tape: Tape, leaves: Map<string, Var>, step?: number): ForwardOptions;
  /** Forward options for inference: no gradients, no dropout. */
  inferenceOptions(): ForwardOptions;
  /** The files its users load (PEFT's adapter_config.json + adapter_model.safetensors, or the method's own layout). */
  exportFiles(options?: { dtype?: AdapterDType }): Promise<SavedFiles>;
  /** Virtual tokens the adapter puts before every sequence (prompt tuning); 0 or absent otherwise. */
  readonly virtualTokens?: number;
  /** A prompt's ids as generation must feed them (prompt tuning prepends placeholders for its virtual tokens). */
  promptIds?(ids: readonly number[]): number[];
  /** Folds the adapter into `model`'s f32 weights in place (methods that have a merge); its hooks then add nothing. */
  merge?(model: LlamaModel): Promise<void>;
  /** Undoes merge. */
  unmerge?(model: LlamaModel): Promise<void>;
  /** Sets every gradient buffer to 0 (recorded in `b`). */
  zeroGrads(b: Batch): void;
  release(): void;
}

/** A view of `base` whose forward, loss and logits use `options` (hooks); it owns nothing. */
class ForwardView extends LlamaModel {
  private readonly base: LlamaModel;
  private readonly extra: ForwardOptions;

  constructor(base: LlamaModel, extra: ForwardOptions) {
    super(base.gpu, base.config, base.params, base.weightDtype, base.invFreq);
    this.base = base;
    this.extra = extra;
  }

  override forward(tape: Tape, b: Batch, inputs: ModelInputs, options: ForwardOptions = {}): Var {
    return super.forward(tape, b, inputs, { ...this.extra, ...definedOnly(options) });
  }

  override loss(tape: Tape, b: Batch, inputs: ModelInputs, options: ForwardOptions = {}): Var {
    return super.loss(tape, b, inputs, { ...this.extra, ...definedOnly(options) });
  }

  /** The adapter's hooks, which every pass applies (generation reads the prefix hook to seed its KV cache). */
  override forwardDefaults(): ForwardOptions {
    return this.extra;
  }

  /** The lm_head of the options' parameter overrides (full fine-tuning trains it too). */
  override headLogits(tape: Tape, b: Batch, h: Var, params: Readonly<Record<string, Var>> = {}): Var {
    return super.headLogits(tape, b, h, { ...(this.extra.params ?? {}), ...params });
  }

  /** The weights belong to the base model: releasing the view frees nothing. */
  override release(): void {}

  override assertLive(): void {
    this.base.assertLive();
  }
}

function definedOnly(o: ForwardOptions): ForwardOptions {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as ForwardOptions;
}

/**
 * `model` with forward options applied to every forward pass (an adapter's inferenceOptions()): a
 * LlamaModel view for evaluateLoss, logits and generation. It shares the base model's weights.
 */
export function withForwardOptions(model: LlamaModel, options: ForwardOptions): LlamaModel {
  model.assertLive();
  return new ForwardView(model, options);
}
