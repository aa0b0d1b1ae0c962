// GPU status: the adapter summary, its key limits with units, and the kernel self-test; without
// WebGPU, what to do about it.
import { formatBytes } from '../engine/gpu/allocator.ts';
import type { AdapterSummary } from '../engine/gpu/device.ts';
import { useStudio } from './store.ts';

export function GpuPanel() {
  const phase = useStudio((s) => s.gpuPhase);
  const adapter = useStudio((s) => s.adapter);
  const error = useStudio((s) => s.gpuError);
  const connect = useStudio((s) => s.connect);

  return (
    <section className="card" aria-labelledby="gpu-title">
      <h2 id="gpu-title">GPU</h2>
      {phase === 'connecting' && <p role="status">Connecting to WebGPU…</p>}
      {phase === 'unavailable' && error && (
        <div className="error" role="alert">
          <p>
            <strong>WebGPU is not available.</strong> {error.message}
          </p>
          {error.hint && <p>{error.hint}</p>}
          <button type="button" onClick={() => void connect()}>
            Try again
          </button>
        </div>
      )}
      {phase === 'ready' && adapter && (
        <>
          <AdapterTable adapter={adapter} />
          <SelfTest />
        </>
      )}
    </section>
  );
}

function AdapterTable({ adapter }: { adapter: AdapterSummary }) {
  const l = adapter.limits;
  const rows: [string, string][] = [
    ['Adapter', [adapter.vendor, adapter.architecture].filter((v) => v && v !== 'unknown').join(' · ') || 'unknown'],
    ['Description', adapter.description || adapter.device || '—'],
    ['f16 shaders', adapter.f16 ? 'yes' : 'no (f32 and bf16 paths)'],
    ['Subgroups', adapter.subgroups ? `yes${adapter.subgroupMinSize ? ` (${adapter.subgroupMinSize}–${adapter.subgroupMaxSize} lanes)` : ''}` : 'no'],
    ['Timestamp queries', adapter.timestampQuery ? 'yes' : 'no'],
    ['Max buffer', formatBytes(l.maxBufferSize)],
    ['Max storage binding', formatBytes(l.maxStorageBufferBindingSize)],
    ['Workgroup memory', formatBytes(l.maxComputeWorkgroupStorageSize)],
    ['Invocations per workgroup', `${l.maxComputeInvocationsPerWorkgroup} threads`],
    ['Storage buffers per stage', `${l.maxStorageBuffersPerShaderStage} buffers`],
  ];
  return (
    <table className="kv" aria-label="Adapter summary">
      <tbody>
        {rows.map(([k, v]) => (
          <tr key={k}>
            <th scope="row">{k}</th>
            <td data-testid={`adapter-${k.toLowerCase().replace(/\s+/g, '-')}`}>{v}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function SelfTest() {
  const phase = useStudio((s) => s.selfTestPhase);
  const report = useStudio((s) => s.selfTest);
  const error = useStudio((s) => s.selfTestError);
  const rerun = useStudio((s) => s.runSelfTest);
  return (
    <div className="selftest">
      <h3>Kernel self-test</h3>
      <p className="muted">Runs the GPU matmul and elementwise kernels in the engine worker and compares them with a float64 reference.</p>
      {phase === 'running' && <p role="status">Running self-test…</p>}
      {phase === 'failed' && (
        <p className="error" role="alert">
          Self-test could not run: {error}
        </p>
      )}
      {report && phase !== 'running' && (
        <>
          <p role="status" className={report.passed ? 'ok' : 'error'} data-testid="selftest-verdict">
            {report.passed ? 'Self-test passed' : 'Self-test FAILED: this adapter computes wrong results'}
          </p>
          <table className="grid" aria-label="Self-test results">
            <thead>
              <tr>
                <th scope="col">Kernel</th>
                <th scope="col">Problem</th>
                <th scope="col">Relative L2 error</th>
                <th scope="col">Time</th>
                <th scope="col">Result</th>
              </tr>
            </thead>
            <tbody>
              {report.cases.map((c) => (
                <tr key={c.name}>
                  <td>{c.name}</td>
                  <td>{c.problem}</td>
                  <td>
                    {c.relL2.toExponential(2)} (limit {c.tolerance.toExponential(0)})
                  </td>
                  <td>{c.ms.toFixed(1)} ms</td>
                  <td>{c.passed ? 'pass' : 'FAIL'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      <button type="button" onClick={() => void rerun()} disabled={phase === 'running'}>
        Run self-test again
      </button>
    </div>
  );
}
