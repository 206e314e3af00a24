// Turns GET /api/v1/metrics's series (one per version) into the aligned columns uPlot draws:
// one x column of Unix seconds, and one column per version and figure, null where a version
// had no point.

import type { MetricsAnswer, MetricsPoint } from '../../api/types'

export type Figure = 'rps' | 'successRate' | 'p50' | 'p95' | 'p99'

export interface ChartSeries {
  label: string
  values: (number | null)[]
}

export interface ChartData {
  x: number[]
  series: ChartSeries[]
}

/** chartData aligns the figures of every series on one time axis; success rate in percent. */
export function chartData(m: MetricsAnswer, figures: Figure[], labelOf: (labels: Record<string, string>, f: Figure) => string): ChartData {
  const times = new Set<number>()
  for (const s of m.series) for (const p of s.points) times.add(Math.round(new Date(p.t).getTime() / 1000))
  const x = [...times].sort((a, b) => a - b)
  const index = new Map(x.map((t, i) => [t, i]))
  const series: ChartSeries[] = []
  for (const s of m.series) {
    for (const f of figures) {
      const values: (number | null)[] = x.map(() => null)
      for (const p of s.points) {
        const v = value(p, f)
        values[index.get(Math.round(new Date(p.t).getTime() / 1000))!] = v
      }
      series.push({ label: labelOf(s.labels, f), values })
    }
  }
  return { x, series }
}

function value(p: MetricsPoint, f: Figure): number | null {
  if (f === 'rps') return p.rps
  if (f === 'successRate') return p.successRate === null ? null : p.successRate * 100
  return p[f]
}

/** latest is each series' last value that is not null, for the text beside a chart. */
export function latest(d: ChartData): { label: string; value: number | null }[] {
  return d.series.map((s) => ({ label: s.label, value: [...s.values].reverse().find((v) => v !== null) ?? null }))
}
