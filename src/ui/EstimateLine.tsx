// One model's memory estimate on this device, in a line of figures with units and a verdict: the
// weights, LoRA training and, beside it, QLoRA training over a 4-bit (NF4) base. The figures come
// from the worker (memory-estimate.ts); this only words them.
import type { MemoryEstimate } from '../worker/engine-api.ts';
import { formatBytes, formatCount, formatInt } from './format.ts';

const VERDICT: Record<MemoryEstimate['verdict'], { text: string; cls: string }> = {
  fits: { text: 'likely fits', cls: 'badge-ok' },
  tight: { text: 'tight', cls: 'badge-warn' },
  'too-large': { text: 'likely too large', cls: 'badge-bad' },
  unknown: { text: 'device memory unknown', cls: 'badge-neutral' },
};

export function EstimateLine({ estimate: e }: { estimate: MemoryEstimate }) {
  const v = VERDICT[e.verdict];
  const t = e.largestTensor;
  const binding = e.limits
    ? t.bindings === 1
      ? `fits one ${formatBytes(e.limits.maxStorageBufferBindingSize)} storage binding`
      : `split into ${t.bindings} storage bindings of at most ${formatBytes(e.limits.maxStorageBufferBindingSize)}`
    : 'no GPU connected to compare with';
  return (
    <div className="estimate">
      <ul className="figures">
        <li>{formatCount(e.parameters)} parameters</li>
        <li>download ≈ {formatBytes(e.checkpointBytes)}</li>
        <li>
          GPU weights {formatBytes(e.weightsF32Bytes)} (f32), {formatBytes(e.weightsBf16Bytes)} (bf16 projections)
        </li>
        <li>
          LoRA training ≈ {formatBytes(e.training.loraBytes)} (rank {e.training.loraRank}, {formatInt(e.training.tokensPerStep)} tokens per step)
        </li>
        <li data-testid="estimate-qlora" title={`QLoRA with an FP4 base ≈ ${formatBytes(e.training.qloraBytes.fp4)}, INT8 ≈ ${formatBytes(e.training.qloraBytes.int8)}, INT4 ≈ ${formatBytes(e.training.qloraBytes.int4)}`}>
          QLoRA training ≈ {formatBytes(e.training.qloraBytes.nf4)} (NF4 base, weights {formatBytes(e.training.plans.qlora.weights)}; INT8 ≈ {formatBytes(e.training.qloraBytes.int8)})
        </li>
        <li>
          largest tensor {formatBytes(t.bytes)}: {binding}
        </li>
      </ul>
      <span className={`badge ${v.cls}`} title={e.deviceMemoryBytes ? `This device reports about ${formatBytes(e.deviceMemoryBytes)} of memory.` : undefined}>
        Estimate: {v.text}
        {e.deviceMemoryBytes ? ` (device reports ${formatBytes(e.deviceMemoryBytes)})` : ''}
      </span>
    </div>
  );
}
