// The autograd tape: records differentiable ops as they run forward and replays their backward
// rules in reverse. Leaves that do not require a gradient (frozen weights, inputs) never get a
// gradient buffer; tensors an op saved for backward, and intermediate values, are released as soon
// as backward has used them. The rules themselves live in ops.ts; this file only schedules them.

import { InvalidArgumentError } from '../errors.ts';
import type { Batch } from '../gpu/batch.ts';
import { type Tensor, createTensor } from '../gpu/tensor.ts';
import { accumulate, affine } from '../kernels/elementwise.ts';

let nextVarId = 1;

/** A value in the graph: a tensor, whether it needs a gradient, and the gradient once computed. */
export class Var {
  readonly id = nextVarId++;
  readonly value: Tensor;
  readonly requiresGrad: boolean;
  /** Leaves are owned by the caller (parameters, inputs); the tape never releases them. */
  readonly leaf: boolean;
  readonly name?: string;
  /**
   * The gradient. For a leaf it is the caller's buffer (if given) that backward accumulates into;
   * for an intermediate it is a transient tensor that backward consumes and releases.
   */
  grad: Tensor | null;

  constructor(value: Tensor, requiresGrad: boolean, leaf: boolean, name?: string, grad: Tensor | null = null) {
    this.value = value;
    this.requiresGrad = requiresGrad;
    this.leaf = leaf;
    this.name = name;
    this.grad = grad;
  }
}

/**
 * The backward rule of one recorded op: given the gradients of its outputs (null where an output
 * received none), returns a gradient per input (null where `needs[i]` is false). Returned tensors
 * become the tape's to accumulate and release. A rule may read its inputs' and outputs' values:
 * the tape releases an intermediate value only after the rule of the op that produced it has run,
 * which is after every op that consumed it.
 */
export type BackwardRule = (b: Batch, gradOutputs: (Tensor | null)[], needs: boolean[]) => (Tensor | null)[];

interface Node {
  name: string;
  inputs: Var[];
  outputs: Var[];
  backward: BackwardRule;
  saved: Tensor[];
}

export class Tape {
  /** When false, ops run forward only: nothing is recorded and saved tensors are freed at once. */
  recording = true;
  private readonly nodes: Node[] = [];
  /** Values of unrecorded ops that a recorded op consumed; released with their first consumer. */
  private readonly adopted = new Set<Var>();
  /** Values produced while not recording (forward-only work); see releaseUnrecorded(). */
  private readonly unrecorded: Var[] = [];
  /**
   * Values of ops that needed no gradient while recording (frozen paths). Those a recorded op
   * consumed are freed with it; the rest are freed when backward or discard() finishes.
   */
  private readonly orphans: Var[] = [];

  /** A leaf: a parameter (requiresGrad, optionally with a persistent gradient buffer) or an input. */
  leaf(value: Tensor, opts: { requiresGrad?: boolean; grad?: Tensor; name?: string } = {}): Var {
    const requiresGrad = opts.requiresGrad ?? opts.grad !== undefined;
    if (opts.grad && opts.grad.numel !== value.numel) {
      throw new InvalidArgumentError(`Gradient buffer ${opts.grad.describe()} does not match parameter ${value.describe()}.`);
    }
    return new Var(value, requiresGrad, true, opts.name ?? value.label, opts.grad ?? null);
  }

  /**
   * Records an op that produced `outputs` from `inputs`. `saved` are transients the rule reads in
   * backward; they are released after it runs (or at once when nothing needs a gradient).
   */
  record(name: string, inputs: Var[], outputs: Tensor[], saved: Tensor[], backward: BackwardRule): Var[] {
    const requiresGrad = this.recording && inputs.some((v) => v.requiresGrad);
    const outs = outputs.map((t) => new Var(t, requiresGrad, false, name));
    if (requiresGrad) {
      // An intermediate that no recorded op produced (its inputs needed no gradient) is freed
      // after the backward rule of its first consumer, which runs last among its consumers.
      const held = [...saved];
      for (const v of inputs) {
        if (!v.leaf && !v.requiresGrad && !this.adopted.has(v)) {
          this.adopted.add(v);
          held.push(v.value);
        }
      }
      this.nodes.push({ name, inputs, outputs: outs, backward, saved: held });
    } else {
      for (const t of saved) t.release();
      if (this.recording) this.orphans.push(...outs);
      else this.unrecorded.push(...outs);
    }
    return outs;
  }

  /** Frees every value produced while not recording, except those in `keep`. */
  releaseUnrecorded(keep: Var[] = []): void {
    const kept = new Set(keep);
    for (const v of this.unrecorded) if (!kept.has(v)) v.value.release();
    this.unrecorded.length = 0;
  }

  /**
   * Gradient checkpointing: runs `fn` forward without keeping its intermediate values, and in
   * backward runs it again on a recording tape to get its gradients. `params` are the leaves
   * `fn` uses by closure (their gradients accumulate as usual); `inputs` are passed to `fn`.
   * Trades one extra forward of the block for the memory of its activations.
   */
  checkpoint(b: Batch, inputs: Var[], params: Var[], fn: (tape: Tape, b: Batch, inputs: Var[]) => Var[]): Var[] {
    if (!this.recording || ![...inputs, ...params].some((v) => v.requiresGrad)) return fn(this, b, inputs);
    const ahead = new Tape();
    ahead.recording = false;
    const outs = fn(ahead, b, inputs);
    ahead.releaseUnrecorded(outs);
    return this.record('checkpoint', [...inputs, ...params], outs.map((v) => v.value), [], (bb, gradOutputs) => {
      const again = new Tape();
      const leaves = inputs.map((v) => again.leaf(v.value, { requiresGrad: v.requiresGrad, name: v.name }));
      const outs2 = fn(again, bb, leaves);
      const roots: Var[] = [];
      const seeds: Tensor[] = [];
      outs2.forEach((v, i) => {
        const g = gradOutputs[i];
        if (!g || !v.requiresGrad) return;
        const seed = createTensor(bb.gpu, g.shape, 'f32', { transient: true, label: 'checkpoint.seed' });
        affine(bb, g, seed, 1, 0);
        roots.push(v);
        seeds.push(seed);
      });
      again.backwardFrom(bb, roots, seeds);
      // Recomputed outputs that received no gradient were not released by backward.
      again.discard();
      for (const v of outs2) if (!roots.includes(v)) v.value.release();
      return [...leaves.map((l) => l.grad), ...params.map(() => null)];
    });
  }

  /** Number of ops recorded and not yet run backward. */
  get size(): number {
    return this.nodes.length;
  }

  /**
   * Runs backward from `root` with the gradient `seed` (same shape as root; the tape takes it).
   * Gradients of leaves accumulate into their buffers (or are left in `leaf.grad` as new tensors);
   * every intermediate value, gradient and saved tensor is released on the way.
   */
  backward(b: Batch, root: Var, seed: Tensor): void {
    if (!root.requiresGrad) throw new InvalidArgumentError('backward(): the root does not depend on anything that requires a gradient.');
    this.backwardFrom(b, [root], [seed]);
  }

  /** backward() from several roots at once, each with its seed (the tape takes the seeds). */
  backwardFrom(b: Batch, roots: Var[], seeds: Tensor[]): void {
    roots.forEach((root, i) => this.addGrad(b, root, seeds[i]));
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const node = this.nodes[i];
      const gradOutputs = node.outputs.map((v) => v.grad);
      if (gradOutputs.some((g) => g !== null)) {
        const needs = node.inputs.map((v) => v.requiresGrad);
        const grads = node.backward(b, gradOutputs, needs);
        for (let j = 0; j < node.inputs.length; j++) {
          const g = grads[j];
          if (!g) continue;
          if (!needs[j]) {
            g.release();
            continue;
          }
          this.addGrad(b, node.inputs[j], g);
        }
      }
      releaseNode(node);
    }
    this.nodes.length = 0;
    this.releaseOrphans();
  }

  /** Forgets the recorded ops and frees what they held (forward-only use, or an abandoned step). */
  discard(): void {
    for (const node of this.nodes) releaseNode(node);
    this.nodes.length = 0;
    this.releaseOrphans();
  }

  private releaseOrphans(): void {
    for (const v of this.orphans) v.value.release();
    this.orphans.length = 0;
    this.adopted.clear();
  }

  private addGrad(b: Batch, v: Var, g: Tensor): void {
    if (v.grad === null) {
      // An intermediate's first gradient, or a leaf given no buffer (the caller then owns it).
      v.grad = g;
      return;
    }
    accumulate(b, v.grad, g);
    g.release();
  }
}

/** Frees what a node held: its saved tensors, its outputs' values and any gradients they still have. */
function releaseNode(node: Node): void {
  for (const t of node.saved) t.release();
  for (const v of node.outputs) {
    v.grad?.release();
    v.grad = null;
    v.value.release();
  }
}
