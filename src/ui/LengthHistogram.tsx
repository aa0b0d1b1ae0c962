// The length histogram of an imported dataset (recharts): examples per length bin, the axes labelled
// in tokens and examples. DatasetStats.tsx loads it lazily, so the charting library stays out of the
// page's first bundle.
import { Bar, BarChart, CartesianGrid, Tooltip, XAxis, YAxis } from 'recharts';

export interface LengthBin {
  range: string;
  examples: number;
  over: boolean;
}

export function LengthHistogram({ data }: { data: LengthBin[] }) {
  return (
    <BarChart responsive style={{ width: '100%', height: 260 }} data={data} margin={{ top: 8, right: 16, bottom: 36, left: 16 }}>
      <CartesianGrid strokeDasharray="3 3" vertical={false} />
      <XAxis dataKey="range" interval="preserveStartEnd" tick={{ fontSize: 12 }} label={{ value: 'Example length (tokens)', position: 'insideBottom', offset: -24 }} />
      <YAxis allowDecimals={false} tick={{ fontSize: 12 }} label={{ value: 'Examples', angle: -90, position: 'insideLeft', offset: 0 }} />
      <Tooltip formatter={(v) => [`${v} examples`, 'Count']} labelFormatter={(l) => `${l} tokens`} />
      <Bar dataKey="examples" fill="#3f7fd0" isAnimationActive={false} />
    </BarChart>
  );
}
