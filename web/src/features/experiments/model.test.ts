import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { check, emptyForm, remaining, stateLabel, toYaml } from './model'

const form = { ...emptyForm, name: 'ratings-slow', host: 'ratings' }

describe('check', () => {
  it('accepts a complete form', () => {
    expect(check(form)).toEqual({})
  })
  it('says what to fix, field by field', () => {
    const e = check({ ...form, name: 'Bad_Name', host: ' ', delay: false, abort: false, duration: '10 minutes', headerName: 'end-user' })
    expect(Object.keys(e).sort()).toEqual(['delay', 'duration', 'headerValue', 'host', 'name'])
  })
  it('checks the fault and the guard', () => {
    const e = check({ ...form, fixedDelay: '2', delayPercent: '150', abort: true, httpStatus: '99', guard: true, maxErrorPercent: '-1', guardWindow: 'x' })
    expect(Object.keys(e).sort()).toEqual(['delayPercent', 'fixedDelay', 'guardWindow', 'httpStatus', 'maxErrorPercent'])
  })
})

describe('toYaml', () => {
  it('writes a FaultExperiment with only what was chosen', () => {
    expect(parse(toYaml(form))).toEqual({
      apiVersion: 'sluice.dev/v1alpha1',
      kind: 'FaultExperiment',
      metadata: { name: 'ratings-slow', namespace: 'default' },
      spec: { host: 'ratings', delay: { fixedDelay: '2s', percentage: 100 }, duration: '5m' },
    })
  })
  it('adds the header match, the abort and the guard, the error rate as a fraction', () => {
    const doc = parse(
      toYaml({ ...form, headerName: 'End-User', headerKind: 'prefix', headerValue: 'jas', delay: false, abort: true, httpStatus: '503', abortPercent: '50', guard: true, maxErrorPercent: '5', guardWindow: '30s' }),
    )
    expect(doc.spec).toEqual({
      host: 'ratings',
      match: { headers: { 'end-user': { prefix: 'jas' } } },
      abort: { httpStatus: 503, percentage: 50 },
      duration: '5m',
      guard: { maxErrorRate: 0.05, window: '30s' },
    })
  })
})

describe('remaining', () => {
  it('counts down in minutes and seconds, or hours', () => {
    const now = Date.parse('2026-01-01T00:00:00Z')
    expect(remaining('2026-01-01T00:04:05Z', now)).toBe('4:05')
    expect(remaining('2026-01-01T01:02:03Z', now)).toBe('1:02:03')
    expect(remaining('2025-12-31T23:00:00Z', now)).toBe('0:00')
    expect(remaining(undefined, now)).toBe('—')
  })
  it('words states', () => {
    expect(stateLabel('stopped_early')).toBe('Stopped by its guard')
    expect(stateLabel('')).toBe('Not scheduled')
  })
})
