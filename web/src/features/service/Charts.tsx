import { useQuery } from '@tanstack/react-query'
import { useMemo, useState } from 'react'
import { metricsQuery } from '../../api/queries'
import { Empty, ErrorState, Loading } from '../../ui/States'
import { fmtMs } from '../graph/model'
import { Chart } from './Chart'
import { chartData, type Figure } from './chartData'

/** The windows the charts offer, with the step that gives each about 120 points. */
export const chartWindows = [
  { value: '15m', label: 'Last 15 minutes', seconds: 900, step: '10s' },
  { value: '1h', label: 'Last hour', seconds: 3600, step: '30s' },
  { value: '6h', label: 'Last 6 hours', seconds: 6 * 3600, step: '3m' },
  { value: '24h', label: 'Last 24 hours', seconds: 24 * 3600, step: '12m' },
] as const

const label = (labels: Record<string, string>, f: Figure) => {
  const v = labels.version || 'unversioned'
  return f === 'rps' || f === 'successRate' ? v : `${v} ${f}`
}

/** Charts shows a service's rate, success rate and latency per version over a chosen window. */
export function Charts({ host }: { host: string }) {
  const [win, setWin] = useState<(typeof chartWindows)[number]['value']>('15m')
  const w = chartWindows.find((c) => c.value === win)!
  // The window's start, rounded to the step so that the key stays the same between renders.
  const stepMs = 10_000
  const from = Math.floor((Date.now() - w.seconds * 1000) / stepMs) * (stepMs / 1000)
  const q = useQuery({ ...metricsQuery({ service: host, by: 'version', from: String(from), step: w.step }), refetchInterval: 10_000 })
  const charts = useMemo(() => {
    if (!q.data) return null
    return {
      rps: chartData(q.data, ['rps'], label),
      success: chartData(q.data, ['successRate'], label),
      latency: chartData(q.data, ['p50', 'p95', 'p99'], label),
    }
  }, [q.data])

  return (
    <section aria-labelledby="charts-title">
      <div className="toolbar">
        <h2 id="charts-title">Traffic by version</h2>
        <label htmlFor="chart-window">Window</label>
        <select id="chart-window" value={win} onChange={(e) => setWin(e.target.value as typeof win)}>
          {chartWindows.map((c) => (
            <option key={c.value} value={c.value}>
              {c.label}
            </option>
          ))}
        </select>
      </div>
      {q.isPending ? (
        <Loading what="the traffic figures" />
      ) : q.isError && !q.data ? (
        <ErrorState what="the traffic figures" error={q.error} retry={() => void q.refetch()} />
      ) : !charts || q.data.series.length === 0 ? (
        <Empty title="No traffic in this window.">
          <p>The charts fill in as requests reach the service through its sidecars.</p>
        </Empty>
      ) : (
        <div className="charts">
          <Chart title="Requests per second" unit="requests per second" data={charts.rps} format={(v) => v.toFixed(v >= 10 ? 0 : 2)} />
          <Chart title="Success rate" unit="percent" data={charts.success} format={(v) => `${v.toFixed(v === 100 || v === 0 ? 0 : 1)} %`} range={[0, 100]} />
          <Chart title="Latency p50 / p95 / p99" unit="milliseconds" data={charts.latency} format={(v) => fmtMs(v)} />
        </div>
      )}
    </section>
  )
}
