import { useState, type FormEvent } from 'react'
import { useLivePatch } from '../../live/useLive'
import { Empty } from '../../ui/States'
import { fmtMs } from '../graph/model'
import { addTap, statusClass, type TapMessage, type TapState } from './tap'

const methods = ['', 'GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']
const statuses = [
  { value: '', label: 'Any status' },
  { value: '2xx', label: '2xx' },
  { value: '3xx', label: '3xx' },
  { value: '4xx', label: '4xx' },
  { value: '5xx', label: '5xx' },
  { value: 'error', label: 'Errors' },
]

interface Filters {
  method: string
  pathPrefix: string
  status: string
}

/**
 * Tap lists a service's requests as they happen, from the live socket's tap topic, filtered
 * by method, path prefix and status on the server. It runs only while started.
 */
export function Tap({ host }: { host: string }) {
  const [running, setRunning] = useState(false)
  const [draft, setDraft] = useState<Filters>({ method: '', pathPrefix: '', status: '' })
  const [filters, setFilters] = useState<Filters>(draft)
  const [state, setState] = useState<TapState>({ entries: [], dropped: 0 })

  const error = useLivePatch({
    topic: 'tap',
    enabled: running,
    params: { service: host, method: filters.method, pathPrefix: filters.pathPrefix, status: filters.status },
    patch: (_qc, msg) => {
      if (msg.type === 'tap') setState((s) => addTap(s, msg as unknown as TapMessage))
    },
  })

  const apply = (e: FormEvent) => {
    e.preventDefault()
    setFilters(draft)
    setState({ entries: [], dropped: 0 })
    setRunning(true)
  }

  return (
    <section aria-labelledby="tap-title">
      <h2 id="tap-title">Live tap</h2>
      <form className="inline-form" onSubmit={apply} aria-label="Tap filters">
        <div>
          <label htmlFor="tap-method">Method</label>
          <select id="tap-method" value={draft.method} onChange={(e) => setDraft({ ...draft, method: e.target.value })}>
            {methods.map((m) => (
              <option key={m} value={m}>
                {m || 'Any method'}
              </option>
            ))}
          </select>
        </div>
        <div>
          <label htmlFor="tap-path">Path prefix</label>
          <input id="tap-path" type="text" placeholder="/" maxLength={256} value={draft.pathPrefix} onChange={(e) => setDraft({ ...draft, pathPrefix: e.target.value })} />
        </div>
        <div>
          <label htmlFor="tap-status">Status</label>
          <select id="tap-status" value={draft.status} onChange={(e) => setDraft({ ...draft, status: e.target.value })}>
            {statuses.map((s) => (
              <option key={s.value} value={s.value}>
                {s.label}
              </option>
            ))}
          </select>
        </div>
        <button type="submit" className="button primary">
          {running ? 'Apply filters' : 'Start tap'}
        </button>
        {running && (
          <button type="button" onClick={() => setRunning(false)}>
            Stop tap
          </button>
        )}
        {state.entries.length > 0 && (
          <button type="button" onClick={() => setState({ entries: [], dropped: 0 })}>
            Clear
          </button>
        )}
      </form>
      {error && (
        <p className="notice notice-error" role="alert">
          The tap was refused: {error}
        </p>
      )}
      <p className="muted small" role="status">
        {running ? `Tapping ${host}: ${state.entries.length} requests shown` : 'The tap is stopped.'}
        {state.dropped > 0 && `; ${state.dropped} more were dropped to keep to 100 a second`}
      </p>
      {state.entries.length === 0 ? (
        running && <Empty title="No request yet.">
          <p>Requests to the service that match the filters appear here as they happen.</p>
        </Empty>
      ) : (
        <div className="table-scroll">
          <table className="data compact tap">
            <caption className="visually-hidden">Requests to {host}, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">From</th>
                <th scope="col">Version</th>
                <th scope="col">Method</th>
                <th scope="col">Path</th>
                <th scope="col" className="num">Status</th>
                <th scope="col" className="num">Duration</th>
                <th scope="col">Flags</th>
              </tr>
            </thead>
            <tbody>
              {state.entries.map((e, i) => (
                <tr key={`${e.time}-${e.requestId ?? ''}-${i}`}>
                  <td>{new Date(e.time).toLocaleTimeString()}</td>
                  <td>{e.sourceWorkload || 'unknown'}</td>
                  <td>{e.destinationVersion || '—'}</td>
                  <td>{e.method}</td>
                  <td>{e.path}</td>
                  <td className={`num health-${statusClass(e)}`}>{e.responseCode || 'reset'}</td>
                  <td className="num">{fmtMs(e.durationMs)}</td>
                  <td>{e.responseFlags && e.responseFlags !== '-' ? e.responseFlags : ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}
