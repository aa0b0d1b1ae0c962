// The WGSL sources of shaders/, imported as text. Vite, Vitest and the CLI's loader all resolve
// `?raw` imports, so this one list serves the app, the tests and Node.

import elementwise from '../../../shaders/elementwise.wgsl?raw';
import matmul from '../../../shaders/matmul.wgsl?raw';
import type { ShaderSource } from '../gpu/pipelines.ts';

export const SHADERS = {
  elementwise: { name: 'elementwise', code: elementwise },
  matmul: { name: 'matmul', code: matmul },
} satisfies Record<string, ShaderSource>;
