// A Batch records the dispatches of one unit of work (a kernel call, a training step) into one
// command encoder, with their small uniform parameters packed into a persistent arena, and submits
// them together. Kernels only ever talk to the GPU through a Batch. It does not own tensors.

import { InvalidArgumentError } from '../errors.ts';
import type { Gpu } from './device.ts';
import type { Constants, ShaderSource } from './pipelines.ts';

const UNIFORM_USAGE = 0x40 | 0x08; // UNIFORM | COPY_DST
const PAGE_BYTES = 64 * 1024;
const SLOT_ALIGN = 256;

/** Uniform pages shared by all batches of a Gpu; a batch writes its slots just before it submits. */
class UniformArena {
  readonly pages: GPUBuffer[] = [];
  constructor(private readonly gpu: Gpu) {}
  page(i: number): GPUBuffer {
    while (this.pages.length <= i) this.pages.push(this.gpu.allocator.create(PAGE_BYTES, UNIFORM_USAGE, `uniforms#${this.pages.length}`));
    return this.pages[i];
  }
}

const arenas = new WeakMap<Gpu, UniformArena>();

export type Workgroups = number | readonly [number, number?, number?];

export class Batch {
  readonly gpu: Gpu;
  private readonly commands: GPUCommandEncoder;
  /** The compute pass that consecutive dispatches share; ended before copies and at submit. */
  private pass: GPUComputePassEncoder | null = null;
  dispatches = 0;
  private readonly arena: UniformArena;
  private readonly pages: Uint8Array<ArrayBuffer>[] = [];
  private slot = 0;
  private submitted = false;

  constructor(gpu: Gpu, label = 'batch') {
    this.gpu = gpu;
    this.commands = gpu.device.createCommandEncoder({ label });
    let arena = arenas.get(gpu);
    if (!arena) arenas.set(gpu, (arena = new UniformArena(gpu)));
    this.arena = arena;
  }

  /** Places `data` (at most 256 bytes) in the uniform arena and returns its binding. */
  uniform(data: ArrayBufferView): GPUBufferBinding {
    if (data.byteLength > SLOT_ALIGN) throw new InvalidArgumentError(`Uniform block of ${data.byteLength} bytes exceeds ${SLOT_ALIGN}.`);
    const perPage = PAGE_BYTES / SLOT_ALIGN;
    const page = Math.floor(this.slot / perPage);
    const offset = (this.slot % perPage) * SLOT_ALIGN;
    this.slot++;
    while (this.pages.length <= page) this.pages.push(new Uint8Array(PAGE_BYTES));
    this.pages[page].set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
    return { buffer: this.arena.page(page), offset, size: SLOT_ALIGN };
  }

  /**
   * Records one dispatch of `shader`'s `entry` with `bindings` at group 0, binding i. A single
   * workgroup count larger than the per-dimension limit is folded into a 2-D grid; kernels that
   * take a 1-D count recover their index as `wg.x + wg.y * num_workgroups.x` and bound-check it.
   */
  dispatch(shader: ShaderSource, entry: string, constants: Constants, bindings: GPUBufferBinding[], workgroups: Workgroups): void {
    if (this.submitted) throw new InvalidArgumentError('Batch was already submitted.');
    const [x, y, z] = typeof workgroups === 'number' ? fold(workgroups, this.gpu.summary.limits.maxComputeWorkgroupsPerDimension) : [workgroups[0], workgroups[1] ?? 1, workgroups[2] ?? 1];
    if (x === 0 || y === 0 || z === 0) return;
    const pipeline = this.gpu.pipelines.get(shader, entry, constants);
    const group = this.gpu.pipelines.bindGroup(pipeline, bindings, (b) => this.gpu.allocator.id(b));
    // One pass for a run of dispatches: WebGPU orders and synchronises dispatches within a pass,
    // and beginning a pass per dispatch costs CPU time on every backend.
    if (!this.pass) this.pass = this.commands.beginComputePass();
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, group);
    this.pass.dispatchWorkgroups(x, y, z);
    this.dispatches++;
    this.gpu.counters.dispatches++;
  }

  /** The command encoder, for copies between dispatches: ends the open compute pass first. */
  get encoder(): GPUCommandEncoder {
    this.endPass();
    return this.commands;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  /** Writes the uniforms and submits the recorded work. */
  submit(): void {
    if (this.submitted) return;
    this.endPass();
    this.submitted = true;
    const used = this.slot;
    const perPage = PAGE_BYTES / SLOT_ALIGN;
    for (let p = 0; p < this.pages.length; p++) {
      const bytes = Math.min(PAGE_BYTES, (used - p * perPage) * SLOT_ALIGN);
      if (bytes > 0) this.gpu.device.queue.writeBuffer(this.arena.page(p), 0, this.pages[p], 0, bytes);
    }
    this.gpu.device.queue.submit([this.commands.finish()]);
    this.gpu.counters.submits++;
  }
}

/** Folds a 1-D workgroup count into (x, y, 1) with x and y within `max`. */
export function fold(n: number, max: number): [number, number, number] {
  if (n <= max) return [n, 1, 1];
  const y = Math.ceil(n / max);
  if (y > max) throw new InvalidArgumentError(`Dispatch of ${n} workgroups exceeds ${max}² on this GPU.`);
  return [Math.ceil(n / y), y, 1];
}

/** Runs `fn` with a fresh Batch and submits it. */
export function run<T>(gpu: Gpu, fn: (b: Batch) => T, label?: string): T {
  const b = new Batch(gpu, label);
  const out = fn(b);
  b.submit();
  return out;
}
