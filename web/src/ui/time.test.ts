import { describe, expect, it } from 'vitest'
import { ago } from './time'

describe('ago', () => {
  const now = Date.parse('2026-03-01T12:00:00Z')
  const cases: [string, string][] = [
    ['2026-03-01T12:00:00Z', 'just now'],
    ['2026-03-01T11:59:58Z', '2 seconds ago'],
    ['2026-03-01T11:59:30Z', '30 seconds ago'],
    ['2026-03-01T11:57:00Z', '3 minutes ago'],
    ['2026-03-01T10:00:00Z', '2 hours ago'],
    ['2026-02-28T12:00:00Z', 'yesterday'],
    ['2026-02-01T12:00:00Z', '4 weeks ago'],
    ['not a time', 'at an unknown time'],
  ]
  for (const [t, want] of cases) {
    it(`${t} → ${want}`, () => expect(ago(t, now)).toBe(want))
  }
})
