// GPU buffer allocation with byte accounting: persistent buffers (parameters, optimizer state) and a
// pool of transients (activations, scratch) reused by size class. Every buffer the engine creates
// goes through here, so `stats()` is the device memory the engine holds. It does not split tensors
// (see tensor.ts) or schedule work.

import { GpuOutOfMemoryError } from '../errors.ts';

/**
 * The usage every tensor buffer gets: STORAGE | COPY_SRC | COPY_DST. The values are fixed by the
 * WebGPU spec and spelled out so this module loads before any WebGPU implementation does.
 */
export const TENSOR_USAGE = 0x80 | 0x04 | 0x08;

export interface AllocatorStats {
  /** Bytes in every buffer that exists now, pooled ones included. */
  liveBytes: number;
  /** The highest liveBytes reached since creation or the last resetPeak(). */
  peakBytes: number;
  /** Bytes sitting idle in the transient pool. */
  pooledBytes: number;
  /** Bytes handed out and not yet released or destroyed. */
  inUseBytes: number;
  liveBuffers: number;
  /** Buffers created since the allocator was made. */
  createdBuffers: number;
  /** Transient requests served from the pool without creating a buffer. */
  poolHits: number;
}

/** Rounds a byte count up to its pool size class: 256-byte multiples, then steps of 2^k·{1, 1.25, 1.5, 1.75}. */
export function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 256) * 256);
  const p = 2 ** Math.floor(Math.log2(b));
  const step = Math.max(256, p / 4);
  return Math.ceil(b / step) * step;
}

export class Allocator {
  private readonly device: GPUDevice;
  private readonly sizes = new Map<GPUBuffer, number>();
  private readonly ids = new WeakMap<GPUBuffer, number>();
  private readonly pool = new Map<string, GPUBuffer[]>();
  private readonly pooled = new Set<GPUBuffer>();
  private nextId = 1;
  private live = 0;
  private peak = 0;
  private pooledBytes = 0;
  private created = 0;
  private hits = 0;

  constructor(device: GPUDevice) {
    this.device = device;
  }

  /** A buffer that lives until destroy(). `bytes` is rounded up to a multiple of 4. */
  create(bytes: number, usage: number = TENSOR_USAGE, label?: string): GPUBuffer {
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const max = this.device.limits.maxBufferSize;
    if (size > max) {
      throw new GpuOutOfMemoryError(
        `A buffer of ${formatBytes(size)}${label ? ` (${label})` : ''} exceeds this GPU's maxBufferSize of ${formatBytes(max)}.`,
      );
    }
    const buffer = this.device.createBuffer({ size, usage, label });
    this.sizes.set(buffer, size);
    this.ids.set(buffer, this.nextId++);
    this.created++;
    this.live += size;
    if (this.live > this.peak) this.peak = this.live;
    return buffer;
  }

  destroy(buffer: GPUBuffer): void {
    const size = this.sizes.get(buffer);
    if (size === undefined) return;
    if (this.pooled.has(buffer)) {
      this.pooled.delete(buffer);
      this.pooledBytes -= size;
      const list = this.pool.get(poolKey(size, buffer.usage));
      if (list) list.splice(list.indexOf(buffer), 1);
    }
    this.sizes.delete(buffer);
    this.live -= size;
    buffer.destroy();
  }

  /** A transient buffer of at least `bytes`, from the pool when one of its size class is idle. */
  acquire(bytes: number, usage: number = TENSOR_USAGE, label?: string): GPUBuffer {
    const size = sizeClass(bytes);
    const list = this.pool.get(poolKey(size, usage));
    const reused = list?.pop();
    if (reused) {
      this.pooled.delete(reused);
      this.pooledBytes -= size;
      this.hits++;
      return reused;
    }
    return this.create(size, usage, label);
  }

  /** Returns a transient buffer to the pool. The caller must not use it afterwards. */
  release(buffer: GPUBuffer): void {
    const size = this.sizes.get(buffer);
    if (size === undefined || this.pooled.has(buffer)) return;
    const key = poolKey(size, buffer.usage);
    let list = this.pool.get(key);
    if (!list) this.pool.set(key, (list = []));
    list.push(buffer);
    this.pooled.add(buffer);
    this.pooledBytes += size;
  }

  /** Destroys every idle pooled buffer. */
  trim(): void {
    for (const buffer of [...this.pooled]) this.destroy(buffer);
  }

  destroyAll(): void {
    for (const buffer of [...this.sizes.keys()]) this.destroy(buffer);
  }

  /** A number that identifies the buffer for as long as it lives (bind-group cache keys). */
  id(buffer: GPUBuffer): number {
    let id = this.ids.get(buffer);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(buffer, id);
    }
    return id;
  }

  resetPeak(): void {
    this.peak = this.live;
  }

  stats(): AllocatorStats {
    return {
      liveBytes: this.live,
      peakBytes: this.peak,
      pooledBytes: this.pooledBytes,
      inUseBytes: this.live - this.pooledBytes,
      liveBuffers: this.sizes.size,
      createdBuffers: this.created,
      poolHits: this.hits,
    };
  }
}

function poolKey(size: number, usage: number): string {
  return `${usage}:${size}`;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[u]}`;
}
