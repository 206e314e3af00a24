import { describe, expect, it } from 'vitest'
import type { AccessEntry } from '../../api/types'
import { addTap, statusClass } from './tap'

const entry = (time: string, responseCode = 200): AccessEntry => ({
  time,
  sourceWorkload: 'productpage-v1',
  sourceNamespace: 'default',
  destinationService: 'reviews.default.svc.cluster.local',
  destinationWorkload: 'reviews-v3',
  destinationVersion: 'v3',
  method: 'GET',
  authority: 'reviews',
  path: '/reviews/0',
  protocol: 'http',
  responseCode,
  responseFlags: '-',
  durationMs: 3,
  requestBytes: 0,
  responseBytes: 10,
})

describe('addTap', () => {
  it('keeps the newest entries first, up to the limit, and counts what was dropped', () => {
    let s = { entries: [] as AccessEntry[], dropped: 0 }
    s = addTap(s, { type: 'tap', id: 't1', entries: [entry('2026-01-01T00:00:01Z'), entry('2026-01-01T00:00:02Z')] }, 3)
    s = addTap(s, { type: 'tap', id: 't1', entries: [entry('2026-01-01T00:00:03Z'), entry('2026-01-01T00:00:04Z')], dropped: 7 }, 3)
    expect(s.entries.map((e) => e.time)).toEqual(['2026-01-01T00:00:04Z', '2026-01-01T00:00:03Z', '2026-01-01T00:00:02Z'])
    expect(s.dropped).toBe(7)
    expect(addTap(s, { type: 'tap', id: 't1', entries: null, dropped: 1 }, 3).dropped).toBe(8)
  })
  it('colours responses', () => {
    expect(statusClass(entry('', 200))).toBe('ok')
    expect(statusClass(entry('', 404))).toBe('warn')
    expect(statusClass(entry('', 503))).toBe('bad')
    expect(statusClass(entry('', 0))).toBe('bad')
  })
})
