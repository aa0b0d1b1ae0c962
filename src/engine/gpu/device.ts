// The Gpu: one WebGPU device with its adapter summary, allocator, pipeline cache and the single
// place where device loss and uncaptured errors become typed errors. It does not know where the
// GPUAdapter came from: see browser.ts (navigator.gpu) and node.ts (Dawn through `webgpu`).

import { GpuDeviceLostError, GpuOutOfMemoryError, GpuUnavailableError, GpuValidationError, WhetstoneError } from '../errors.ts';
import { Allocator } from './allocator.ts';
import { PipelineCache } from './pipelines.ts';

export type GpuBackend = 'browser' | 'node-dawn';

/** The limits the engine reads; a subset of GPUSupportedLimits. */
export interface KeyLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  maxUniformBufferBindingSize: number;
  maxStorageBuffersPerShaderStage: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupSizeX: number;
  maxComputeWorkgroupSizeY: number;
  maxComputeWorkgroupSizeZ: number;
  maxComputeWorkgroupsPerDimension: number;
  minStorageBufferOffsetAlignment: number;
  minUniformBufferOffsetAlignment: number;
}

export const KEY_LIMIT_NAMES: readonly (keyof KeyLimits)[] = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxUniformBufferBindingSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'minStorageBufferOffsetAlignment',
  'minUniformBufferOffsetAlignment',
];

/** Optional features the engine asks for when the adapter has them. */
export const OPTIONAL_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;

/** A plain, cloneable description of the adapter and the device we got from it. */
export interface AdapterSummary {
  backend: GpuBackend;
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  /** Whether f16 storage and arithmetic (`shader-f16`) is available. */
  f16: boolean;
  subgroups: boolean;
  timestampQuery: boolean;
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
  /** Every feature the device was created with. */
  features: string[];
  limits: KeyLimits;
}

export interface GpuOptions {
  /**
   * Pretend the device binds at most this many bytes per storage buffer. Tests use it to force
   * the split path of large tensors on small data; it can only lower the real limit.
   */
  maxBindingBytes?: number;
}

type ErrorListener = (e: WhetstoneError) => void;

export class Gpu {
  readonly device: GPUDevice;
  readonly summary: AdapterSummary;
  readonly allocator: Allocator;
  readonly pipelines: PipelineCache;
  /** Bytes one storage binding may cover (the device limit, or lower in tests). */
  readonly maxBindingBytes: number;
  /** Dispatches recorded and command buffers submitted on this device so far. */
  readonly counters = { dispatches: 0, submits: 0 };
  private firstError: WhetstoneError | null = null;
  private lostError: WhetstoneError | null = null;
  private listeners = new Set<ErrorListener>();
  private destroyed = false;

  constructor(device: GPUDevice, summary: AdapterSummary, options: GpuOptions = {}) {
    this.device = device;
    this.summary = summary;
    const real = device.limits.maxStorageBufferBindingSize;
    this.maxBindingBytes = Math.min(real, options.maxBindingBytes ?? real);
    this.allocator = new Allocator(device);
    this.pipelines = new PipelineCache(device);

    device.addEventListener('uncapturederror', (ev) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      this.record(classifyGpuError(err));
    });
    void device.lost.then((info) => {
      if (this.destroyed) return;
      this.lostError = new GpuDeviceLostError(`GPU device lost (${info.reason}): ${info.message || 'no message'}`);
      this.record(this.lostError);
    });
  }

  get f16(): boolean {
    return this.summary.f16;
  }

  get lost(): boolean {
    return this.lostError !== null;
  }

  /** Calls `fn` with every error the device reports from now on. Returns an unsubscribe function. */
  onError(fn: ErrorListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Throws the first error the device reported since the last check, if any. */
  check(): void {
    if (this.lostError) throw this.lostError;
    const e = this.firstError;
    if (e) {
      this.firstError = null;
      throw e;
    }
  }

  /**
   * Runs `fn` inside validation and out-of-memory error scopes and throws what they caught as a
   * typed error. For setup work (allocation, pipeline creation), not for every dispatch.
   */
  async scoped<T>(fn: () => T): Promise<T> {
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    let value: T;
    try {
      value = fn();
    } finally {
      const validation = await this.device.popErrorScope();
      const oom = await this.device.popErrorScope();
      const err = oom ?? validation;
      if (err) throw classifyGpuError(err); // eslint-disable-line no-unsafe-finally
    }
    return value;
  }

  /** Waits until the GPU has finished everything submitted so far, then reports errors. */
  async sync(): Promise<void> {
    await this.device.queue.onSubmittedWorkDone();
    this.check();
  }

  destroy(): void {
    this.destroyed = true;
    this.allocator.destroyAll();
    this.device.destroy();
  }

  private record(e: WhetstoneError): void {
    if (!this.firstError) this.firstError = e;
    for (const fn of this.listeners) fn(e);
  }
}

/** Maps a GPUError to the engine's typed error. */
export function classifyGpuError(err: GPUError): WhetstoneError {
  const kind = err.constructor?.name ?? '';
  if (kind === 'GPUOutOfMemoryError' || /out of memory/i.test(err.message)) {
    return new GpuOutOfMemoryError(`GPU out of memory: ${err.message}`);
  }
  return new GpuValidationError(`WebGPU rejected a call: ${err.message}`);
}

/**
 * Creates a Gpu from an adapter: requests the adapter's maximum limits and the optional features
 * it supports, and summarises the result.
 */
export async function gpuFromAdapter(
  adapter: GPUAdapter,
  backend: GpuBackend,
  options: GpuOptions = {},
): Promise<Gpu> {
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const requiredLimits: Record<string, number> = {};
  for (const name of KEY_LIMIT_NAMES) {
    const v = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'whetstone' });
  } catch (cause) {
    throw new GpuUnavailableError(`The WebGPU adapter refused to create a device: ${String(cause)}`, { cause });
  }
  return new Gpu(device, summarize(adapter, device, backend), options);
}

function summarize(adapter: GPUAdapter, device: GPUDevice, backend: GpuBackend): AdapterSummary {
  const info = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  const limits = {} as KeyLimits;
  for (const name of KEY_LIMIT_NAMES) {
    limits[name] = (device.limits as unknown as Record<string, number>)[name];
  }
  const features = [...device.features].map(String).sort();
  return {
    backend,
    vendor: info?.vendor || 'unknown',
    architecture: info?.architecture || 'unknown',
    device: info?.device || '',
    description: info?.description || '',
    isFallbackAdapter: Boolean((info as { isFallbackAdapter?: boolean })?.isFallbackAdapter),
    f16: device.features.has('shader-f16'),
    subgroups: device.features.has('subgroups'),
    timestampQuery: device.features.has('timestamp-query'),
    subgroupMinSize: info?.subgroupMinSize || undefined,
    subgroupMaxSize: info?.subgroupMaxSize || undefined,
    features,
    limits,
  };
}
