// The tap's buffer: the newest entries first, at most a few hundred, and a count of those the
// server dropped to keep to its rate. Pure, tested beside.

import type { AccessEntry } from '../../api/types'

/** The most entries the tap table keeps. */
export const tapLimit = 200

export interface TapState {
  entries: AccessEntry[]
  dropped: number
}

export interface TapMessage {
  type: 'tap'
  id: string
  entries?: AccessEntry[] | null
  dropped?: number
}

/** addTap puts a message's entries first (newest first) and keeps the newest limit. */
export function addTap(s: TapState, msg: TapMessage, limit = tapLimit): TapState {
  const fresh = [...(msg.entries ?? [])].sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0))
  return { entries: [...fresh, ...s.entries].slice(0, limit), dropped: s.dropped + (msg.dropped ?? 0) }
}

/** statusClass is the tap's colour of a response: 5xx and resets bad, 4xx warn. */
export function statusClass(e: Pick<AccessEntry, 'responseCode'>): 'ok' | 'warn' | 'bad' {
  if (e.responseCode === 0 || e.responseCode >= 500) return 'bad'
  if (e.responseCode >= 400) return 'warn'
  return 'ok'
}
