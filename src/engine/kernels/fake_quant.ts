// Dispatcher of shaders/fake_quant.wgsl: a weight replaced by its value after encoding and decoding
// in one of the formats of src/engine/quant (NF4/FP4 blockwise absmax without double quantization,
// INT8 per row, INT4 per group, symmetric or with zero points), bit-identical to the CPU codecs'
// dequantizeMatrix(quantizeMatrix(W)). The weight and the output are (R, C) f32 tensors in one
// buffer each. Nothing is stored in the packed format here; that is quant/format.ts and quant/tensor.ts.

import { ShapeError } from '../errors.ts';
import type { Batch } from '../gpu/batch.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { type QuantOptions, resolveQuantOptions } from '../quant/format.ts';
import { groupsPerRow } from '../quant/int4.ts';
import { InvalidArgumentError } from '../errors.ts';
import { SHADERS } from './shaders.ts';

const FORMAT_ID = { nf4: 0, fp4: 1, int8: 2, int4: 3 } as const;

/** The groups (blocks, rows or row groups) a (rows, cols) weight is encoded in. */
export function fakeQuantGroups(rows: number, cols: number, o: Required<QuantOptions>): number {
  if (o.format === 'int8') return rows;
  if (o.format === 'int4') return rows * groupsPerRow(cols, o.block);
  return Math.ceil((rows * cols) / o.block);
}

/**
 * out ← decode(encode(w)) with the format `options` (double quantization is not emulated and is
 * refused). w and out are (R, C) f32 tensors of the same shape, each in one buffer; they may not
 * be the same tensor.
 */
export function fakeQuantize(b: Batch, w: Tensor, out: Tensor, options: QuantOptions): void {
  const o = resolveQuantOptions(options);
  if (o.doubleQuant) throw new InvalidArgumentError('Fake quantization does not emulate double quantization; quantize without it.');
  if (w.dtype !== 'f32' || w.shape.length !== 2) throw new ShapeError(`fakeQuantize: the weight must be a (rows, cols) f32 tensor; got ${w.describe()}.`);
  if (out.dtype !== 'f32' || out.shape.length !== 2 || out.shape[0] !== w.shape[0] || out.shape[1] !== w.shape[1]) {
    throw new ShapeError(`fakeQuantize: the output must be f32 of the weight's shape [${w.shape.join(', ')}]; got ${out.describe()}.`);
  }
  if (w.isSplit || out.isSplit) throw new ShapeError(`fakeQuantize: ${w.isSplit ? w.describe() : out.describe()} is split across buffers; fake quantization works on one buffer.`);
  if (w === out) throw new ShapeError('fakeQuantize: the output must be another tensor than the weight.');
  const [rows, cols] = w.shape;
  const total = rows * cols;
  if (total === 0) return;
  const groups = fakeQuantGroups(rows, cols, o);
  const params = new Uint32Array(8);
  params.set([total, cols, o.format === 'int8' ? cols : o.block, o.format === 'int4' ? groupsPerRow(cols, o.block) : 0, groups]);
  const constants = { FORMAT: FORMAT_ID[o.format], ZEROS: o.format === 'int4' && !o.symmetric ? 1 : 0 };
  b.dispatch(SHADERS.fake_quant, 'fake_quantize', constants, [w.binding(), out.binding(), b.uniform(params)], groups);
}
