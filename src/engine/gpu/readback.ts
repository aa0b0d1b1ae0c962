// Copies tensors from the GPU to JavaScript. The only way data comes back; every readback also
// reports device errors, so a failed kernel surfaces as a typed error here at the latest.

import { type Tensor, type TypedArrayFor, type DType, typedArrayFor } from './tensor.ts';

const MAP_READ = 0x01;
const COPY_DST = 0x08;

/** Reads the whole tensor. f16 and bf16 come back as raw u16 values. */
export async function readTensor<D extends DType>(t: Tensor & { dtype: D }): Promise<TypedArrayFor<D>> {
  t.assertLive();
  const gpu = t.gpu;
  const out = typedArrayFor(t.dtype, t.numel);
  const dst = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  const encoder = gpu.device.createCommandEncoder({ label: 'readback' });
  const staging: { buffer: GPUBuffer; bytes: number; at: number }[] = [];
  let at = 0;
  for (const c of t.chunks) {
    const size = Math.ceil(c.bytes / 4) * 4;
    const buffer = gpu.allocator.acquire(size, MAP_READ | COPY_DST, 'readback');
    if (size > 0) encoder.copyBufferToBuffer(c.buffer, c.offset, buffer, 0, size);
    staging.push({ buffer, bytes: c.bytes, at });
    at += c.bytes;
  }
  gpu.device.queue.submit([encoder.finish()]);
  try {
    for (const s of staging) {
      if (s.bytes === 0) continue;
      await s.buffer.mapAsync(GPUMapMode.READ);
      dst.set(new Uint8Array(s.buffer.getMappedRange(0, s.bytes)), s.at);
      s.buffer.unmap();
    }
  } finally {
    for (const s of staging) gpu.allocator.release(s.buffer);
  }
  gpu.check();
  return out as TypedArrayFor<D>;
}

/** Reads `t` and widens it to float64 (f32, i32, u32, u8 only). */
export async function readFloat64(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await readTensor(t) as ArrayLike<number>);
}
