import { beforeAll, describe, expect, it } from 'vitest';
import { GpuValidationError } from '../errors.ts';
import { fill } from '../kernels/elementwise.ts';
import { matmul } from '../kernels/matmul.ts';
import { SHADERS } from '../kernels/shaders.ts';
import { run } from './batch.ts';
import type { Gpu } from './device.ts';
import { readTensor } from './readback.ts';
import { createTensor, tensorFromArray } from './tensor.ts';
import { testGpu } from './testing.ts';

describe('the Node WebGPU device', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  it('has an adapter and a summary with the key limits', () => {
    const s = gpu.summary;
    expect(s.backend).toBe('node-dawn');
    expect(s.vendor.length).toBeGreaterThan(0);
    expect(s.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 1024 * 1024);
    expect(s.limits.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(256);
    expect(typeof s.f16).toBe('boolean');
    expect(s.f16).toBe(s.features.includes('shader-f16'));
  });

  it('requests the adapter maximum, not the default, limits', () => {
    // The WebGPU default for maxStorageBufferBindingSize is 128 MiB; SwiftShader and real GPUs offer more.
    expect(gpu.device.limits.maxStorageBufferBindingSize).toBe(gpu.summary.limits.maxStorageBufferBindingSize);
    expect(gpu.maxBindingBytes).toBe(gpu.device.limits.maxStorageBufferBindingSize);
  });

  it('turns an uncaptured validation error into a typed error at the next check', async () => {
    const bad = gpu.device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
    const enc = gpu.device.createCommandEncoder();
    // Copying from a buffer without COPY_SRC usage is a validation error.
    const dst = gpu.device.createBuffer({ size: 16, usage: GPUBufferUsage.COPY_DST });
    enc.copyBufferToBuffer(bad, 0, dst, 0, 16);
    gpu.device.queue.submit([enc.finish()]);
    await expect(gpu.sync()).rejects.toBeInstanceOf(GpuValidationError);
    bad.destroy();
    dst.destroy();
    await gpu.sync(); // the error was reported once, and the device still works
  });

  it('scoped() reports errors of setup work as typed errors', async () => {
    await expect(gpu.scoped(() => gpu.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE }))).rejects.toBeInstanceOf(
      GpuValidationError,
    );
  });
});

describe('allocator accounting and pool', () => {
  it('counts live and peak bytes and reuses released transients', async () => {
    const gpu = await testGpu();
    const before = gpu.allocator.stats();
    const p = createTensor(gpu, [1000], 'f32');
    let s = gpu.allocator.stats();
    expect(s.liveBytes - before.liveBytes).toBe(4000);

    const t1 = createTensor(gpu, [300, 7], 'f32', { transient: true });
    s = gpu.allocator.stats();
    const afterT1 = s.liveBytes;
    expect(afterT1 - before.liveBytes).toBeGreaterThanOrEqual(4000 + 8400);
    const buf = t1.buffer;
    t1.release();
    expect(gpu.allocator.stats().pooledBytes).toBeGreaterThanOrEqual(8400);
    expect(gpu.allocator.stats().liveBytes).toBe(afterT1);

    const hits = gpu.allocator.stats().poolHits;
    const t2 = createTensor(gpu, [2100], 'f32', { transient: true });
    expect(t2.buffer).toBe(buf);
    expect(gpu.allocator.stats().poolHits).toBe(hits + 1);
    t2.release();

    gpu.allocator.trim();
    p.release();
    s = gpu.allocator.stats();
    expect(s.liveBytes).toBe(before.liveBytes - before.pooledBytes);
    expect(s.peakBytes).toBeGreaterThanOrEqual(afterT1);
  });

  it('throws on use after release', async () => {
    const gpu = await testGpu();
    const t = createTensor(gpu, [4]);
    t.release();
    expect(() => t.binding()).toThrowError(/used after release/);
  });
});

describe('pipeline and bind-group caches', () => {
  it('a repeated step creates no pipeline, bind group or buffer', async () => {
    const gpu = await testGpu();
    const a = tensorFromArray(gpu, new Float32Array(12).map((_, i) => i), [3, 4]);
    const w = tensorFromArray(gpu, new Float32Array(20).map((_, i) => i / 10), [5, 4]);
    const y = createTensor(gpu, [3, 5]);
    const step = () =>
      run(gpu, (b) => {
        fill(b, y, 0);
        matmul(b, a, w, y);
      });
    step();
    await gpu.sync();
    const p0 = gpu.pipelines.stats();
    const a0 = gpu.allocator.stats();
    const d0 = gpu.counters.dispatches;
    for (let i = 0; i < 3; i++) step();
    await gpu.sync();
    const p1 = gpu.pipelines.stats();
    expect(p1.pipelines).toBe(p0.pipelines);
    expect(p1.bindGroups).toBe(p0.bindGroups);
    expect(p1.bindGroupHits).toBe(p0.bindGroupHits + 6);
    expect(gpu.allocator.stats().createdBuffers).toBe(a0.createdBuffers);
    expect(gpu.counters.dispatches).toBe(d0 + 6);
    const got = await readTensor(y);
    // y[0][0] = sum_k a[0][k] * w[0][k] = 0*0 + 1*0.1 + 2*0.2 + 3*0.3
    expect(got[0]).toBeCloseTo(1.4, 5);
    for (const t of [a, w, y]) t.release();
  });

  it('shaders load as text from shaders/', () => {
    expect(SHADERS.matmul.code).toContain('@compute');
    expect(SHADERS.elementwise.code).toContain('fn binary');
  });
});
