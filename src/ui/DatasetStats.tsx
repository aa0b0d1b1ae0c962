// Statistics of an imported dataset with units, and the length histogram (LengthHistogram.tsx,
// loaded with the charting library when a dataset first shows) with its axes labelled in tokens and
// examples.
import { Suspense, lazy } from 'react';
import type { DatasetStats as Stats } from '../engine/data/dataset.ts';
import { formatBytes, formatInt, formatPercent, plural } from './format.ts';

const LengthHistogram = lazy(() => import('./LengthHistogram.tsx').then((m) => ({ default: m.LengthHistogram })));

export function DatasetStats({ stats, maxLength, tokenizerName }: { stats: Stats; maxLength: number; tokenizerName: string | null }) {
  const rows: [string, string, string][] = [
    ['File', stats.files.map((f) => `${f.name} (${formatBytes(f.bytes)})`).join(', '), 'file'],
    ['Rows', plural(stats.rows, 'row'), 'rows'],
    ['Examples', `${plural(stats.examples, 'example')} (${formatInt(stats.trainExamples)} train, ${formatInt(stats.validationExamples)} validation)`, 'examples'],
    ['Tokens', plural(stats.tokens, 'token'), 'tokens'],
    ['Counted tokens', `${plural(stats.countedTokens, 'token')} (${formatPercent(stats.countedTokens, stats.tokens)} of all tokens)`, 'counted'],
    ['Example length', `shortest ${formatInt(stats.shortestExample)}, mean ${stats.meanLength.toFixed(1)}, longest ${formatInt(stats.longestExample)} tokens`, 'length'],
    ['Truncated rows', `${plural(stats.truncatedRows, 'row')} longer than ${formatInt(maxLength)} tokens, cut to it`, 'truncated'],
    ['Duplicate rows', plural(stats.duplicateRows, 'row'), 'duplicates'],
    ['Left out', `${plural(stats.noCountedTokenRows, 'example')} with no counted token; ${plural(stats.skippedRows, 'bad row')} skipped`, 'left-out'],
    ['Tokenizer', tokenizerName ?? '—', 'tokenizer'],
  ];
  const data = stats.lengthHistogram.map((b) => ({ range: b.from === b.to ? `${b.from}` : `${b.from}–${b.to}`, examples: b.count, over: b.from > maxLength }));
  return (
    <section className="card" aria-labelledby="stats-title">
      <h2 id="stats-title">Statistics</h2>
      <table className="kv" aria-label="Dataset statistics">
        <tbody>
          {rows.map(([k, v, id]) => (
            <tr key={k}>
              <th scope="row">{k}</th>
              <td data-testid={`stat-${id}`}>{v}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {stats.warnings.length > 0 && (
        <ul className="warnings" aria-label="Import warnings">
          {stats.warnings.map((w) => (
            <li key={w}>{w}</li>
          ))}
        </ul>
      )}
      <h3 id="histogram-title">Example lengths</h3>
      <figure className="chart" aria-labelledby="histogram-title" data-testid="length-histogram">
        <Suspense fallback={<p className="muted">Loading the chart…</p>}>
          <LengthHistogram data={data} />
        </Suspense>
        <figcaption className="muted small">
          Examples by length in tokens, in {stats.lengthHistogram.length} bins up to the sequence length of {formatInt(maxLength)} tokens
          {stats.lengthHistogram.some((b) => b.from > maxLength) ? '; the last bin holds the longer, truncated examples' : ''}.
        </figcaption>
      </figure>
    </section>
  );
}
