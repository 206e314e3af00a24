// The audit page's filters as the API takes them. Times come from datetime-local inputs, in
// the reader's time zone, and go to the server as RFC 3339.

import type { AuditQuery } from '../../api/api'

export interface AuditFilters {
  actor: string
  action: string
  target: string
  /** datetime-local values ("2026-01-31T15:04"), empty for none. */
  since: string
  until: string
}

export const noFilters: AuditFilters = { actor: '', action: '', target: '', since: '', until: '' }

/** localToRfc3339 reads a datetime-local value as local time; "" for an empty or invalid one. */
export function localToRfc3339(v: string): string {
  if (!v) return ''
  const d = new Date(v)
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/** toQuery turns the filters into GET /api/v1/audit's parameters, leaving out empty ones. */
export function toQuery(f: AuditFilters, limit: number): AuditQuery {
  const q: AuditQuery = { limit }
  if (f.actor.trim()) q.actor = f.actor.trim()
  if (f.action.trim()) q.action = f.action.trim()
  if (f.target.trim()) q.target = f.target.trim()
  const since = localToRfc3339(f.since)
  const until = localToRfc3339(f.until)
  if (since) q.since = since
  if (until) q.until = until
  return q
}
