import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useEffect, useState, type FormEvent, type ReactNode } from 'react'
import { api } from '../../api/api'
import { ApiError } from '../../api/client'
import { afterConfigWrite, keys } from '../../api/queries'
import type { ExperimentStatus } from '../../api/types'
import { atLeast, needs } from '../../auth/roles'
import { useUser } from '../../auth/session'
import { describeError, Empty, ErrorState, Loading } from '../../ui/States'
import { Ago } from '../../ui/Time'
import { usePageTitle } from '../../ui/usePageTitle'
import { check, emptyForm, remaining, stateLabel, toYaml, type ExperimentForm, type FormErrors } from './model'

/** useNow is the time, ticking every second while mounted: for countdowns. */
function useNow(): number {
  const [now, setNow] = useState(Date.now())
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000)
    return () => clearInterval(t)
  }, [])
  return now
}

/**
 * ExperimentsPage creates fault experiments (a FaultExperiment resource: a delay or an abort
 * on a service's traffic for a set time, with an optional guard that ends it when the error
 * rate climbs), shows the running ones counting down with a Stop button, and lists past runs.
 */
export default function ExperimentsPage() {
  usePageTitle('Experiments')
  const user = useUser()
  const q = useQuery({ queryKey: keys.experiments, queryFn: () => api.experiments(), refetchInterval: 2000 })
  const active = (q.data?.items ?? []).filter((i) => i.state === 'running' || i.state === 'scheduled')
  const others = (q.data?.items ?? []).filter((i) => !(i.state === 'running' || i.state === 'scheduled'))

  return (
    <>
      <header className="page-header">
        <h1>Experiments</h1>
        <p className="muted">Inject delays and errors into a service&apos;s traffic for a while, to see how the mesh copes.</p>
      </header>
      {atLeast(user.role, needs.write) ? (
        <CreateForm />
      ) : (
        <p className="notice">Your role, {user.role}, cannot create experiments: an admin can.</p>
      )}
      {q.isPending ? (
        <Loading what="the experiments" />
      ) : q.isError && !q.data ? (
        <ErrorState what="the experiments" error={q.error} retry={() => void q.refetch()} />
      ) : (
        <>
          <Running items={active} canStop={atLeast(user.role, needs.rollback)} />
          <section aria-labelledby="past-title">
            <h2 id="past-title">Past experiments</h2>
            {q.data.history.length === 0 ? (
              <Empty title="No experiment has ended yet." />
            ) : (
              <table className="data compact">
                <caption className="visually-hidden">Past experiment runs, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">Experiment</th>
                    <th scope="col">Target</th>
                    <th scope="col">Outcome</th>
                    <th scope="col">Started</th>
                    <th scope="col">Ended</th>
                  </tr>
                </thead>
                <tbody>
                  {q.data.history.map((r) => (
                    <tr key={r.id} className={r.state === 'stopped_early' ? 'row-bad' : undefined}>
                      <th scope="row">
                        {r.namespace}/{r.name}
                      </th>
                      <td>
                        <code>{r.host}</code>
                      </td>
                      <td>
                        {stateLabel(r.state)}
                        {r.reason && <span className="muted">: {r.reason}</span>}
                      </td>
                      <td>
                        <Ago t={r.startedAt ?? r.start} />
                      </td>
                      <td>
                        <Ago t={r.endedAt ?? r.end} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>
          {others.length > 0 && (
            <section aria-labelledby="defined-title">
              <h2 id="defined-title">Defined, not running</h2>
              <ul>
                {others.map((i) => (
                  <li key={`${i.namespace}/${i.name}`}>
                    {i.namespace}/{i.name} on <code>{i.host}</code>: {stateLabel(i.state)}
                    {i.reason && ` (${i.reason})`}
                  </li>
                ))}
              </ul>
            </section>
          )}
        </>
      )}
    </>
  )
}

function Running({ items, canStop }: { items: ExperimentStatus[]; canStop: boolean }) {
  const now = useNow()
  const qc = useQueryClient()
  const stop = useMutation({
    mutationFn: (i: ExperimentStatus) => api.stopExperiment(i.namespace, i.name),
    onSettled: () => void qc.invalidateQueries({ queryKey: keys.experiments }),
  })
  return (
    <section aria-labelledby="running-title">
      <h2 id="running-title">Running</h2>
      {stop.isError && (
        <p className="notice notice-error" role="alert">
          Not stopped: {describeError(stop.error)}
        </p>
      )}
      {items.length === 0 ? (
        <Empty title="No experiment is running." />
      ) : (
        <table className="data compact">
          <caption className="visually-hidden">Running and scheduled experiments</caption>
          <thead>
            <tr>
              <th scope="col">Experiment</th>
              <th scope="col">Target</th>
              <th scope="col">State</th>
              <th scope="col" className="num">
                Time left
              </th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {items.map((i) => (
              <tr key={`${i.namespace}/${i.name}`}>
                <th scope="row">
                  {i.namespace}/{i.name}
                </th>
                <td>
                  <code>{i.host}</code>
                </td>
                <td>{stateLabel(i.state)}</td>
                <td className="num">
                  <span role="timer" aria-label={`Time left for ${i.name}`}>
                    {remaining(i.end, now)}
                  </span>
                </td>
                <td className="actions">
                  <button
                    type="button"
                    className="danger"
                    disabled={!canStop || stop.isPending}
                    title={canStop ? undefined : 'An operator or an admin can stop experiments'}
                    onClick={() => stop.mutate(i)}
                    aria-label={`Stop ${i.name}`}
                  >
                    Stop
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  )
}

function CreateForm() {
  const qc = useQueryClient()
  const [f, setF] = useState<ExperimentForm>(emptyForm)
  const [errors, setErrors] = useState<FormErrors>({})
  const [done, setDone] = useState<string | null>(null)
  const create = useMutation({
    mutationFn: (form: ExperimentForm) => api.apply(toYaml(form), { message: `fault experiment ${form.namespace}/${form.name}` }),
    onSuccess: (_o, form) => {
      setDone(`Experiment ${form.namespace}/${form.name} applied: it starts now and runs for ${form.duration}.`)
      setF({ ...emptyForm, namespace: form.namespace })
      void afterConfigWrite(qc)
    },
  })
  const set = <K extends keyof ExperimentForm>(k: K, v: ExperimentForm[K]) => setF((x) => ({ ...x, [k]: v }))
  const submit = (e: FormEvent) => {
    e.preventDefault()
    setDone(null)
    const problems = check(f)
    setErrors(problems)
    if (Object.keys(problems).length === 0) create.mutate(f)
  }
  const serverErrors = create.error instanceof ApiError ? create.error.fieldErrors : []

  const field = (k: keyof ExperimentForm, label: string, input: ReactNode) => (
    <div>
      <label htmlFor={`exp-${k}`}>{label}</label>
      {input}
      {errors[k] && (
        <span id={`exp-${k}-error`} className="error-text small">
          {errors[k]}
        </span>
      )}
    </div>
  )
  const text = (k: keyof ExperimentForm, extra: Record<string, string> = {}) => (
    <input
      id={`exp-${k}`}
      value={String(f[k])}
      maxLength={253}
      aria-invalid={errors[k] ? true : undefined}
      aria-describedby={errors[k] ? `exp-${k}-error` : undefined}
      onChange={(e) => set(k, e.target.value as never)}
      {...extra}
    />
  )

  return (
    <section aria-labelledby="create-title">
      <h2 id="create-title">New experiment</h2>
      <form onSubmit={submit} aria-labelledby="create-title" noValidate>
        <fieldset>
          <legend>Target</legend>
          <div className="inline-form">
            {field('name', 'Experiment name', text('name', { placeholder: 'ratings-slow' }))}
            {field('namespace', 'Namespace', text('namespace'))}
            {field('host', 'Target service', text('host', { placeholder: 'ratings' }))}
            {field('duration', 'Duration', text('duration', { placeholder: '5m' }))}
          </div>
        </fieldset>
        <fieldset>
          <legend>Only requests with a header (optional)</legend>
          <div className="inline-form">
            {field('headerName', 'Header name', text('headerName', { placeholder: 'end-user' }))}
            {field(
              'headerKind',
              'Header match',
              <select id="exp-headerKind" value={f.headerKind} onChange={(e) => set('headerKind', e.target.value as ExperimentForm['headerKind'])}>
                <option value="exact">is exactly</option>
                <option value="prefix">starts with</option>
                <option value="regex">matches the regex</option>
              </select>,
            )}
            {field('headerValue', 'Header value', text('headerValue', { placeholder: 'jason' }))}
          </div>
        </fieldset>
        <fieldset>
          <legend>Fault</legend>
          <div className="inline-form">
            <label>
              <input type="checkbox" checked={f.delay} onChange={(e) => set('delay', e.target.checked)} /> Delay
            </label>
            {f.delay && field('fixedDelay', 'Delay by', text('fixedDelay', { placeholder: '2s' }))}
            {f.delay && field('delayPercent', 'Delayed requests (%)', text('delayPercent', { inputMode: 'decimal' }))}
          </div>
          <div className="inline-form">
            <label>
              <input type="checkbox" checked={f.abort} onChange={(e) => set('abort', e.target.checked)} /> Abort
            </label>
            {f.abort && field('httpStatus', 'Answer with HTTP status', text('httpStatus', { inputMode: 'numeric' }))}
            {f.abort && field('abortPercent', 'Aborted requests (%)', text('abortPercent', { inputMode: 'decimal' }))}
          </div>
          {errors.delay && <p className="error-text small">{errors.delay}</p>}
        </fieldset>
        <fieldset>
          <legend>Guard (optional)</legend>
          <div className="inline-form">
            <label>
              <input type="checkbox" checked={f.guard} onChange={(e) => set('guard', e.target.checked)} /> Stop early if the error rate climbs
            </label>
            {f.guard && field('maxErrorPercent', 'Highest error rate (%)', text('maxErrorPercent', { inputMode: 'decimal' }))}
            {f.guard && field('guardWindow', 'Measured over', text('guardWindow'))}
          </div>
        </fieldset>
        <div className="actions">
          <button type="submit" className="button primary" disabled={create.isPending}>
            Start experiment
          </button>
        </div>
        <div role="status" aria-live="polite">
          {done && <p className="callout callout-ok">{done}</p>}
        </div>
        {create.isError && (
          <div className="notice notice-error" role="alert">
            <p>Not started: {describeError(create.error)}</p>
            {serverErrors.length > 0 && (
              <ul>
                {serverErrors.map((fe) => (
                  <li key={fe.path + fe.message}>
                    <code>{fe.path}</code>: {fe.message}
                  </li>
                ))}
              </ul>
            )}
          </div>
        )}
      </form>
    </section>
  )
}
