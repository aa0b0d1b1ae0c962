// A labelled progress bar: a native <progress> (indeterminate while the total is unknown) with the
// figures beside it in words and units.
export function Progress({ label, value, max, detail, testId }: { label: string; value: number | null; max: number | null; detail: string; testId?: string }) {
  const known = value !== null && max !== null && max > 0;
  return (
    <div className="progress" data-testid={testId}>
      <progress aria-label={label} value={known ? Math.min(value, max) : undefined} max={known ? max : undefined} />
      <p className="progress-detail" aria-live="polite">
        {detail}
      </p>
    </div>
  );
}
