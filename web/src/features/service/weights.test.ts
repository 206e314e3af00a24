import { describe, expect, it } from 'vitest'
import { distribute, normalize, promote, rebalance, same, total, type Weights } from './weights'

const none = new Set<string>()

describe('distribute', () => {
  it('splits in proportion, in whole numbers that add up exactly', () => {
    expect(distribute(100, ['a', 'b', 'c'], [1, 1, 1])).toEqual({ a: 34, b: 33, c: 33 })
    expect(distribute(70, ['a', 'b'], [3, 1])).toEqual({ a: 53, b: 17 }) // 52.5 and 17.5: tie to the earlier
    expect(distribute(10, ['a', 'b'], [0, 5])).toEqual({ a: 0, b: 10 })
  })
  it('splits evenly when every share is zero, and handles no keys', () => {
    expect(distribute(100, ['a', 'b', 'c', 'd'], [0, 0, 0, 0])).toEqual({ a: 25, b: 25, c: 25, d: 25 })
    expect(distribute(5, [], [])).toEqual({})
    expect(distribute(0, ['a', 'b'], [1, 2])).toEqual({ a: 0, b: 0 })
  })
})

describe('normalize', () => {
  it('gives versions without a weight 0 and keeps a split that adds up', () => {
    expect(normalize(['v1', 'v2', 'v3'], { v1: 90, v2: 10 })).toEqual({ v1: 90, v2: 10, v3: 0 })
  })
  it('shares evenly without any weight', () => {
    expect(normalize(['v1', 'v2', 'v3'], {})).toEqual({ v1: 34, v2: 33, v3: 33 })
  })
  it('scales weights that do not add up to 100, and keeps subsets with no registered workload', () => {
    const w = normalize(['v1'], { v1: 1, old: 1 })
    expect(w).toEqual({ v1: 50, old: 50 })
  })
})

describe('rebalance', () => {
  const w: Weights = { v1: 50, v2: 30, v3: 20 }

  it('shares the difference among the others in proportion', () => {
    const r = rebalance(w, none, 'v3', 30)
    expect(r).toEqual({ v1: 44, v2: 26, v3: 30 }) // 70 split 50:30 → 43.75 and 26.25
    expect(total(r)).toBe(100)
  })

  it('leaves locked versions alone, and holds the value to what they leave', () => {
    const locked = new Set(['v1'])
    expect(rebalance(w, locked, 'v3', 30)).toEqual({ v1: 50, v2: 20, v3: 30 })
    expect(rebalance(w, locked, 'v3', 80)).toEqual({ v1: 50, v2: 0, v3: 50 })
  })

  it('moves nothing when the version is locked or no other version is free', () => {
    expect(rebalance(w, new Set(['v3']), 'v3', 60)).toBe(w)
    expect(rebalance(w, new Set(['v1', 'v2']), 'v3', 60)).toBe(w)
    expect(rebalance({ v1: 100 }, none, 'v1', 10)).toEqual({ v1: 100 })
    expect(rebalance(w, none, 'v9', 10)).toBe(w)
  })

  it('raises others from zero evenly when all of them had nothing', () => {
    expect(rebalance({ v1: 0, v2: 0, v3: 100 }, none, 'v3', 40)).toEqual({ v1: 30, v2: 30, v3: 40 })
  })

  it('clamps and rounds the value', () => {
    expect(rebalance(w, none, 'v1', 140)).toEqual({ v1: 100, v2: 0, v3: 0 })
    expect(rebalance(w, none, 'v1', -5)).toEqual({ v1: 0, v2: 60, v3: 40 })
    expect(rebalance(w, none, 'v1', 49.6)).toMatchObject({ v1: 50 })
  })

  it('always adds up to 100, whatever the moves', () => {
    let cur: Weights = { a: 34, b: 33, c: 33, d: 0 }
    const names = Object.keys(cur)
    let seed = 7
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
    for (let i = 0; i < 500; i++) {
      const locked = new Set(names.filter(() => rand() < 0.25))
      cur = rebalance(cur, locked, names[Math.floor(rand() * names.length)]!, Math.floor(rand() * 101))
      expect(total(cur)).toBe(100)
      for (const v of Object.values(cur)) expect(Number.isInteger(v) && v >= 0 && v <= 100).toBe(true)
    }
  })
})

describe('promote and same', () => {
  it('gives everything to one version', () => {
    expect(promote({ v1: 70, v3: 30 }, 'v3')).toEqual({ v1: 0, v3: 100 })
  })
  it('compares splits, a missing version counting as 0', () => {
    expect(same({ v1: 100 }, { v1: 100, v2: 0 })).toBe(true)
    expect(same({ v1: 90, v2: 10 }, { v1: 100 })).toBe(false)
  })
})
