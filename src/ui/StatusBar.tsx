// The status line under the header: the GPU (adapter and self-test) and the loaded model, on every
// screen. Without WebGPU it says so and what to do, wherever the GPU screen is not open.
import { formatCount } from './format.ts';
import { useModels } from './model-store.ts';
import { useStudio } from './store.ts';

export function StatusBar() {
  const phase = useStudio((s) => s.gpuPhase);
  const adapter = useStudio((s) => s.adapter);
  const error = useStudio((s) => s.gpuError);
  const selfTest = useStudio((s) => s.selfTest);
  const selfTestPhase = useStudio((s) => s.selfTestPhase);
  const screen = useStudio((s) => s.screen);
  const connect = useStudio((s) => s.connect);
  const setScreen = useStudio((s) => s.setScreen);
  const loaded = useModels((s) => s.loaded);

  if (phase === 'unavailable' && error && screen !== 'gpu') {
    return (
      <div className="status-bar error" role="alert">
        <p>
          <strong>WebGPU is not available.</strong> {error.message}
        </p>
        {error.hint && <p>{error.hint}</p>}
        <button type="button" onClick={() => void connect()}>
          Try again
        </button>
      </div>
    );
  }
  const gpu =
    phase === 'connecting'
      ? 'connecting…'
      : adapter
        ? `${[adapter.vendor, adapter.architecture].filter((v) => v && v !== 'unknown').join(' · ') || adapter.description || 'adapter'}${
            selfTestPhase === 'running' ? ', self-test running' : selfTest ? (selfTest.passed ? ', self-test passed' : ', self-test FAILED') : ''
          }`
        : 'unavailable';
  return (
    <div className="status-bar" aria-label="Status">
      <span data-testid="status-gpu">
        <strong>GPU:</strong> {gpu}{' '}
        {screen !== 'gpu' && (
          <button type="button" className="link" onClick={() => setScreen('gpu')}>
            details
          </button>
        )}
      </span>
      <span data-testid="status-model">
        <strong>Model:</strong> {loaded ? `${loaded.name} (${formatCount(loaded.parameters)} parameters)` : 'none loaded'}
      </span>
    </div>
  );
}
