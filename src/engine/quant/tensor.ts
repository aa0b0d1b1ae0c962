// A quantized frozen weight on the GPU: a Tensor whose shape is the logical (rows, cols) matrix
// and whose own buffer holds the codes, with the scales, auxiliary bytes and dynamic map in
// tensors of their own. The kernels of shaders/quant.wgsl read it (kernels/quant.ts); nothing
// trains it. Upload is one matrix at a time, from a QuantizedMatrix (format.ts).

import { ShapeError } from '../errors.ts';
import type { Gpu } from '../gpu/device.ts';
import { Tensor, tensorFromArray } from '../gpu/tensor.ts';
import type { QuantFormat, QuantizedMatrix } from './format.ts';

export class QuantizedTensor extends Tensor {
  readonly format: QuantFormat;
  readonly block: number;
  readonly doubleQuant: boolean;
  readonly offset: number;
  /** Whether INT4 codes have zero points (asymmetric). */
  readonly zeros: boolean;
  readonly scales: Tensor;
  /** Double-quantized codes or INT4 zero points (a 4-byte placeholder when unused). */
  readonly aux: Tensor;
  /** The map of double-quantized codes (a 4-byte placeholder when unused). */
  readonly dmap: Tensor;
  /** The packed codes as a plain u8 tensor. */
  readonly codes: Tensor;

  constructor(m: QuantizedMatrix, codes: Tensor, scales: Tensor, aux: Tensor, dmap: Tensor, label?: string) {
    super(codes.gpu, m.shape, 'u8', [...codes.chunks], false, label);
    this.format = m.format;
    this.block = m.block;
    this.doubleQuant = m.doubleQuant;
    this.offset = m.offset;
    this.zeros = m.format === 'int4' && m.aux !== null;
    this.codes = codes;
    this.scales = scales;
    this.aux = aux;
    this.dmap = dmap;
  }

  /** Bytes of every buffer the weight holds. */
  override get byteLength(): number {
    return this.codes.byteLength + this.scales.byteLength + this.aux.byteLength + this.dmap.byteLength;
  }

  override release(): void {
    if (this.released) return;
    super.release(); // destroys the codes' buffer, which this tensor shares
    for (const t of [this.scales, this.aux, this.dmap]) t.release();
  }

  override describe(): string {
    return `${this.label ? `"${this.label}" ` : ''}[${this.shape.join(', ')}] ${this.format}${this.doubleQuant ? '+dq' : ''}`;
  }
}

/** Uploads a quantized matrix. Each part must fit one storage binding. */
export function uploadQuantized(gpu: Gpu, m: QuantizedMatrix, label?: string): QuantizedTensor {
  const parts: Tensor[] = [];
  try {
    const codes = tensorFromArray(gpu, m.codes, [m.codes.length], 'u8', { label: label && `${label}.codes` });
    parts.push(codes);
    if (codes.isSplit) {
      throw new ShapeError(`The quantized weight ${label ?? ''} [${m.shape.join(', ')}] takes ${m.codes.length} bytes, more than one storage binding (${gpu.maxBindingBytes} bytes) holds.`);
    }
    const scales = tensorFromArray(gpu, m.scales, [m.scales.length], 'f32', { label: label && `${label}.scales` });
    parts.push(scales);
    const aux = tensorFromArray(gpu, m.aux ?? new Uint8Array(4), [m.aux ? m.aux.length : 4], 'u8', { label: label && `${label}.aux` });
    parts.push(aux);
    const dmap = tensorFromArray(gpu, m.dmap ?? new Float32Array(1), [m.dmap ? m.dmap.length : 1], 'f32', { label: label && `${label}.map` });
    parts.push(dmap);
    for (const t of [scales, aux, dmap]) {
      if (t.isSplit) throw new ShapeError(`The quantization state of ${label ?? 'a weight'} does not fit one storage binding.`);
    }
    return new QuantizedTensor(m, codes, scales, aux, dmap, label);
  } catch (e) {
    for (const t of parts) t.release();
    throw e;
  }
}
