// An engine error as the studio shows it: what happened, where (file and line), and what to do.
import type { SerializedError } from '../engine/errors.ts';

export function ErrorBox({ title, error, testId }: { title: string; error: SerializedError; testId?: string }) {
  return (
    <div className="error-box" role="alert" data-testid={testId}>
      <p className="error-title">
        <strong>{title}</strong> <span className="error-name">({error.name})</span>
      </p>
      <p>{error.message}</p>
      {error.hint && <p className="hint">What to do: {error.hint}</p>}
    </div>
  );
}
