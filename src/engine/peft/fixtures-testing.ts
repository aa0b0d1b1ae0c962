// The shape of the PyTorch fixtures that scripts/peft_reference.py writes under fixtures/ for the
// tuning methods' parity tests, and the reader the tests share.

import { readFileSync } from 'node:fs';

export interface MethodFixture {
  /** The tiny model the fixture was computed on (scripts/tiny). */
  model: string;
  model_files: Record<string, string>;
  input_ids: number[][];
  labels: number[][];
  /** Counted tokens (labels other than -100). */
  tokens: number;
  /** Mean cross-entropy over the counted tokens. */
  loss: number;
  /** Gradients by tensor name; `rows` lists the rows kept of a sampled 2-D weight. */
  grads: Record<string, { shape: number[]; rows?: number[]; values: number[] }>;
}

/** fixtures/<path> of the repository. */
export function readMethodFixture(path: string): MethodFixture {
  return JSON.parse(readFileSync(new URL(`../../../fixtures/${path}`, import.meta.url), 'utf8')) as MethodFixture;
}
