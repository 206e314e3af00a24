import { useEffect, useRef } from 'react'
import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'
import { latest, type ChartData } from './chartData'

const palette = ['#0b63b6', '#b36b00', '#1d6b3a', '#7b2cbf', '#a4161a', '#00727a', '#5c6b7a', '#c2185b']

/**
 * Chart draws time series with uPlot, sized to its container. A chart is an image to a screen
 * reader: its label says what it shows, and the list under it the latest value of each series.
 */
export function Chart({ title, data, unit, format, range }: { title: string; data: ChartData; unit: string; format: (v: number) => string; range?: [number, number] }) {
  const box = useRef<HTMLDivElement>(null)
  const plot = useRef<uPlot | null>(null)

  // One plot per set of series; new points only replace its data.
  const shape = data.series.map((s) => s.label).join('\u0000')
  useEffect(() => {
    const el = box.current
    if (!el) return
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: 180,
      series: [{}, ...data.series.map((s, i) => ({ label: s.label, stroke: palette[i % palette.length], width: 2, spanGaps: false, value: (_u: uPlot, v: number | null) => (v === null ? '—' : format(v)) }))],
      axes: [{}, { size: 72, values: (_u, vals) => vals.map((v) => format(v)) }],
      scales: { x: { time: true }, y: range ? { range } : {} },
      legend: { show: true },
      cursor: { drag: { x: true, y: false } },
    }
    const p = new uPlot(opts, [data.x, ...data.series.map((s) => s.values)] as uPlot.AlignedData, el)
    plot.current = p
    const ro = new ResizeObserver(() => p.setSize({ width: Math.max(200, el.clientWidth), height: 180 }))
    ro.observe(el)
    return () => {
      ro.disconnect()
      p.destroy()
      plot.current = null
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps -- data is set below; the plot is rebuilt only when its series change
  }, [shape])

  useEffect(() => {
    plot.current?.setData([data.x, ...data.series.map((s) => s.values)] as uPlot.AlignedData)
  }, [data])

  const now = latest(data)
  return (
    <figure className="chart">
      <h3>{title}</h3>
      <div ref={box} role="img" aria-label={`${title} over time, in ${unit}`} />
      <figcaption className="small muted">
        Latest: {now.length === 0 ? 'no data' : now.map((s) => `${s.label} ${s.value === null ? '—' : format(s.value)}`).join(', ')}
      </figcaption>
    </figure>
  )
}
