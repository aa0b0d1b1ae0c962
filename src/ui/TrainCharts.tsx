// Live charts of the run the Train screen shows (recharts): training and validation loss, learning
// rate, gradient norm and throughput, each over optimizer steps with labelled axes and units. They
// read the metrics store (metrics-store.ts) alone, so a step re-renders them and nothing else.
// Points are drawn as dots up to a few hundred steps; longer runs draw the lines only.
import { CartesianGrid, Legend, Line, LineChart, Tooltip, XAxis, YAxis } from 'recharts';
import type { StepMetrics } from '../engine/train/metrics.ts';
import { useMetrics } from './metrics-store.ts';

const DOTS_UP_TO = 300;

interface Series {
  key: keyof StepMetrics;
  name: string;
  color: string;
  /** Connect across steps without a value (validation is measured every N steps). */
  connect?: boolean;
}

function Chart({ title, unit, yLabel, series, points, testId, format }: { title: string; unit: string; yLabel: string; series: Series[]; points: StepMetrics[]; testId: string; format: (v: number) => string }) {
  const id = `${testId}-title`;
  const dots = points.length <= DOTS_UP_TO;
  return (
    <figure className="chart train-chart" aria-labelledby={id} data-testid={testId} data-points={points.length}>
      <h3 id={id}>{title}</h3>
      <LineChart responsive style={{ width: '100%', height: 220 }} data={points} margin={{ top: 8, right: 16, bottom: 30, left: 22 }}>
        <CartesianGrid strokeDasharray="3 3" />
        <XAxis dataKey="step" type="number" domain={['dataMin', 'dataMax']} allowDecimals={false} tick={{ fontSize: 12 }} label={{ value: 'Optimizer step', position: 'insideBottom', offset: -18 }} />
        <YAxis tick={{ fontSize: 12 }} tickFormatter={format} width={64} domain={['auto', 'auto']} label={{ value: yLabel, angle: -90, position: 'insideLeft', offset: -14, style: { textAnchor: 'middle' } }} />
        <Tooltip formatter={(v, name) => [`${format(Number(v))}${unit ? ` ${unit}` : ''}`, name]} labelFormatter={(l) => `Step ${l}`} />
        {series.length > 1 && <Legend verticalAlign="top" height={24} />}
        {series.map((s) => (
          <Line key={s.key} type="monotone" dataKey={s.key} name={s.name} stroke={s.color} strokeWidth={2} dot={dots ? { r: 2.5 } : false} isAnimationActive={false} connectNulls={s.connect} />
        ))}
      </LineChart>
    </figure>
  );
}

const fixed = (digits: number) => (v: number) => (Number.isFinite(v) ? v.toFixed(digits) : '–');
const sci = (v: number) => (Number.isFinite(v) ? v.toExponential(1) : '–');
const whole = (v: number) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '–');

export function TrainCharts() {
  const points = useMetrics((s) => s.points);
  if (points.length === 0) return null;
  return (
    <section className="card" aria-labelledby="charts-title">
      <h2 id="charts-title">Metrics</h2>
      <p className="muted small">
        {points.length} optimizer {points.length === 1 ? 'step' : 'steps'}. Loss is the mean cross-entropy per counted token, in nats.
      </p>
      <div className="chart-grid">
        <Chart
          title="Loss"
          unit="nats/token"
          yLabel="Loss (nats/token)"
          testId="loss-chart"
          points={points}
          format={fixed(3)}
          series={[
            { key: 'loss', name: 'Training loss', color: '#2f6fcf' },
            { key: 'valLoss', name: 'Validation loss', color: '#c2571a', connect: true },
          ]}
        />
        <Chart title="Learning rate" unit="" yLabel="Learning rate" testId="lr-chart" points={points} format={sci} series={[{ key: 'lr', name: 'Learning rate', color: '#6a4fb3' }]} />
        <Chart title="Gradient norm (global, before clipping)" unit="" yLabel="L2 norm" testId="grad-chart" points={points} format={fixed(2)} series={[{ key: 'gradNorm', name: 'Gradient norm', color: '#17703a' }]} />
        <Chart title="Throughput" unit="tokens/s" yLabel="Tokens per second" testId="speed-chart" points={points} format={whole} series={[{ key: 'tokensPerSecond', name: 'Throughput', color: '#8a5a00' }]} />
      </div>
    </section>
  );
}
