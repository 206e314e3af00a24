import { describe, expect, it } from 'vitest'
import { localToRfc3339, noFilters, toQuery } from './filters'

describe('audit filters', () => {
  it('leaves out empty filters and trims the others', () => {
    expect(toQuery(noFilters, 50)).toEqual({ limit: 50 })
    expect(toQuery({ ...noFilters, actor: ' alice ', action: 'traffic.set', target: 'VirtualService/default/reviews' }, 50)).toEqual({
      limit: 50,
      actor: 'alice',
      action: 'traffic.set',
      target: 'VirtualService/default/reviews',
    })
  })
  it('sends local times as RFC 3339 in UTC, without fractions', () => {
    const v = '2026-01-31T15:04'
    expect(localToRfc3339(v)).toBe(new Date(v).toISOString().replace('.000Z', 'Z'))
    expect(localToRfc3339('')).toBe('')
    expect(localToRfc3339('nonsense')).toBe('')
    expect(toQuery({ ...noFilters, since: v }, 10).since).toMatch(/^2026-01-31T\d\d:04:00Z$/)
  })
})
