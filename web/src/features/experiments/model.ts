// The experiment form's model: what the user typed, checked field by field, and the
// FaultExperiment it becomes. Pure, tested beside.

import { stringify } from 'yaml'

export type MatchKind = 'exact' | 'prefix' | 'regex'

export interface ExperimentForm {
  name: string
  namespace: string
  /** The target service: a short name, "name.namespace" or a host. */
  host: string
  headerName: string
  headerKind: MatchKind
  headerValue: string
  delay: boolean
  fixedDelay: string
  delayPercent: string
  abort: boolean
  httpStatus: string
  abortPercent: string
  duration: string
  guard: boolean
  /** The highest error rate tolerated, in percent (the spec takes 0..1). */
  maxErrorPercent: string
  guardWindow: string
}

export const emptyForm: ExperimentForm = {
  name: '',
  namespace: 'default',
  host: '',
  headerName: '',
  headerKind: 'exact',
  headerValue: '',
  delay: true,
  fixedDelay: '2s',
  delayPercent: '100',
  abort: false,
  httpStatus: '503',
  abortPercent: '100',
  duration: '5m',
  guard: false,
  maxErrorPercent: '5',
  guardWindow: '30s',
}

const dnsLabel = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/
const goDuration = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/

/** Problems of the form by field; empty when it can be sent. */
export type FormErrors = Partial<Record<keyof ExperimentForm, string>>

function percent(v: string): number | null {
  if (v.trim() === '') return null
  const n = Number(v)
  return Number.isFinite(n) && n >= 0 && n <= 100 ? n : null
}

/** check finds what the server would refuse, said where the user can fix it. */
export function check(f: ExperimentForm): FormErrors {
  const e: FormErrors = {}
  if (!dnsLabel.test(f.name)) e.name = 'Use lower-case letters, digits and dashes, such as ratings-slow.'
  if (!dnsLabel.test(f.namespace)) e.namespace = 'Use lower-case letters, digits and dashes.'
  if (!f.host.trim()) e.host = 'Name the service to disturb, such as ratings.'
  if (f.headerName.trim() && !f.headerValue) e.headerValue = 'Give the value the header must have, or clear the header name.'
  if (!f.headerName.trim() && f.headerValue) e.headerName = 'Name the header to match, or clear the value.'
  if (!f.delay && !f.abort) e.delay = 'Choose a delay, an abort, or both.'
  if (f.delay) {
    if (!goDuration.test(f.fixedDelay)) e.fixedDelay = 'A duration such as 500ms or 2s.'
    if (percent(f.delayPercent) === null) e.delayPercent = 'A percentage from 0 to 100.'
  }
  if (f.abort) {
    const s = Number(f.httpStatus)
    if (!Number.isInteger(s) || s < 200 || s > 599) e.httpStatus = 'An HTTP status from 200 to 599, such as 503.'
    if (percent(f.abortPercent) === null) e.abortPercent = 'A percentage from 0 to 100.'
  }
  if (!goDuration.test(f.duration)) e.duration = 'A duration such as 10m; at most 24h.'
  if (f.guard) {
    if (percent(f.maxErrorPercent) === null) e.maxErrorPercent = 'A percentage from 0 to 100.'
    if (!goDuration.test(f.guardWindow)) e.guardWindow = 'A duration such as 30s.'
  }
  return e
}

/** toResource is the FaultExperiment the form describes, as YAML for the apply API. */
export function toYaml(f: ExperimentForm): string {
  const spec: Record<string, unknown> = { host: f.host.trim() }
  if (f.headerName.trim()) spec.match = { headers: { [f.headerName.trim().toLowerCase()]: { [f.headerKind]: f.headerValue } } }
  if (f.delay) spec.delay = { fixedDelay: f.fixedDelay, percentage: Number(f.delayPercent) }
  if (f.abort) spec.abort = { httpStatus: Number(f.httpStatus), percentage: Number(f.abortPercent) }
  spec.duration = f.duration
  if (f.guard) spec.guard = { maxErrorRate: Number(f.maxErrorPercent) / 100, window: f.guardWindow }
  return stringify({
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'FaultExperiment',
    metadata: { name: f.name, namespace: f.namespace },
    spec,
  })
}

/** remaining says how long until end, such as "4:05" or "1:02:03"; "0:00" once past. */
export function remaining(end: string | undefined, now: number): string {
  if (!end) return '—'
  const secs = Math.max(0, Math.floor((new Date(end).getTime() - now) / 1000))
  const h = Math.floor(secs / 3600)
  const m = Math.floor((secs % 3600) / 60)
  const s = secs % 60
  const pad = (n: number) => String(n).padStart(2, '0')
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`
}

/** stateLabel words a run's state for people. */
export function stateLabel(s: string): string {
  return (
    { scheduled: 'Scheduled', running: 'Running', stopped_early: 'Stopped by its guard', finished: 'Finished', stopped: 'Stopped', deleted: 'Deleted' }[s] ?? (s || 'Not scheduled')
  )
}
