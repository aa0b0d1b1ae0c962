// The WGSL sources of shaders/, imported as text. Vite, Vitest and the CLI's loader all resolve
// `?raw` imports, so this one list serves the app, the tests and Node. quant_codes.wgsl (the weight
// formats' code tables) is put before each family that encodes or decodes weights.

import elementwise from '../../../shaders/elementwise.wgsl?raw';
import matmul from '../../../shaders/matmul.wgsl?raw';
import cross_entropy from '../../../shaders/cross_entropy.wgsl?raw';
import rmsnorm from '../../../shaders/rmsnorm.wgsl?raw';
import rope from '../../../shaders/rope.wgsl?raw';
import attention from '../../../shaders/attention.wgsl?raw';
import swiglu from '../../../shaders/swiglu.wgsl?raw';
import tanh from '../../../shaders/tanh.wgsl?raw';
import dropout from '../../../shaders/dropout.wgsl?raw';
import embedding from '../../../shaders/embedding.wgsl?raw';
import adamw from '../../../shaders/adamw.wgsl?raw';
import matmul_lowp from '../../../shaders/matmul_lowp.wgsl?raw';
import quant from '../../../shaders/quant.wgsl?raw';
import quant_codes from '../../../shaders/quant_codes.wgsl?raw';
import fake_quant from '../../../shaders/fake_quant.wgsl?raw';
import quant_act from '../../../shaders/quant_act.wgsl?raw';
import distill from '../../../shaders/distill.wgsl?raw';
import type { ShaderSource } from '../gpu/pipelines.ts';

export const SHADERS = {
  elementwise: { name: 'elementwise', code: elementwise },
  matmul: { name: 'matmul', code: matmul },
  cross_entropy: { name: 'cross_entropy', code: cross_entropy },
  rmsnorm: { name: 'rmsnorm', code: rmsnorm },
  rope: { name: 'rope', code: rope },
  attention: { name: 'attention', code: attention },
  swiglu: { name: 'swiglu', code: swiglu },
  tanh: { name: 'tanh', code: tanh },
  dropout: { name: 'dropout', code: dropout },
  embedding: { name: 'embedding', code: embedding },
  adamw: { name: 'adamw', code: adamw },
  matmul_lowp: { name: 'matmul_lowp', code: matmul_lowp },
  quant: { name: 'quant', code: `${quant_codes}\n${quant}` },
  fake_quant: { name: 'fake_quant', code: `${quant_codes}\n${fake_quant}` },
  quant_act: { name: 'quant_act', code: quant_act },
  distill: { name: 'distill', code: distill },
} satisfies Record<string, ShaderSource>;
