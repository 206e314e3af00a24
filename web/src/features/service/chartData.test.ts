import { describe, expect, it } from 'vitest'
import type { MetricsAnswer, MetricsPoint } from '../../api/types'
import { chartData, latest } from './chartData'

const pt = (t: string, rps: number, successRate: number | null, p99: number | null = null): MetricsPoint => ({
  t,
  rps,
  successRate,
  p50: null,
  p95: null,
  p99,
  requests: 0,
  errors: 0,
  requestBytes: 0,
  responseBytes: 0,
})

const m: MetricsAnswer = {
  from: '',
  to: '',
  stepSeconds: 10,
  resolution: '10s',
  series: [
    { labels: { version: 'v1' }, points: [pt('2026-01-01T00:00:00Z', 1, 1), pt('2026-01-01T00:00:10Z', 2, 0.5, 30)] },
    { labels: { version: 'v3' }, points: [pt('2026-01-01T00:00:10Z', 5, null)] },
  ],
}

describe('chartData', () => {
  it('aligns the series on one time axis with nulls where a version had no point', () => {
    const d = chartData(m, ['rps'], (l) => l.version!)
    expect(d.x).toEqual([1767225600, 1767225610])
    expect(d.series).toEqual([
      { label: 'v1', values: [1, 2] },
      { label: 'v3', values: [null, 5] },
    ])
  })
  it('gives success rates in percent and one series per figure', () => {
    const d = chartData(m, ['successRate', 'p99'], (l, f) => `${l.version} ${f}`)
    expect(d.series.map((s) => s.label)).toEqual(['v1 successRate', 'v1 p99', 'v3 successRate', 'v3 p99'])
    expect(d.series[0]!.values).toEqual([100, 50])
    expect(latest(d)).toEqual([
      { label: 'v1 successRate', value: 50 },
      { label: 'v1 p99', value: 30 },
      { label: 'v3 successRate', value: null },
      { label: 'v3 p99', value: null },
    ])
  })
})
