// The Compress screen's before/after table (rows from compress-form.ts comparisonRows): weight file size,
// parameters, held-out loss, tokens/s, and the recovery's or distillation's losses, each with its change.
import type { CompressResult } from '../worker/engine-api.ts';
import { comparisonRows } from './compress-form.ts';
import { formatBytes } from './format.ts';

export function CompressResultTable({ result }: { result: CompressResult }) {
  const bytes = (n: number) => `${formatBytes(n)} (${n.toLocaleString('en-US')} B)`;
  return (
    <div className="table-scroll">
      <table className="compress-table" data-testid="compress-table">
        <caption className="visually-hidden">Before and after compression</caption>
        <thead>
          <tr>
            <th scope="col">Measure</th>
            <th scope="col">Before</th>
            <th scope="col">After</th>
            <th scope="col">Change</th>
          </tr>
        </thead>
        <tbody>
          {comparisonRows(result, bytes).map((r) => (
            <tr key={r.label}>
              <th scope="row">{r.label}</th>
              <td>{r.before}</td>
              <td>{r.after}</td>
              <td>{r.change}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="field-help">
        Files: {result.files.map((f) => `${f.name} (${formatBytes(f.bytes)})`).join(', ')}. Parameters count a shared block once; a clustered weight keeps its parameter count but stores one
        index per value plus its codebook.
      </p>
    </div>
  );
}
