// The canary slider's arithmetic: weights are whole percentages, one per version, and always
// add up to 100. Moving one version's weight shares the difference among the versions that
// are not locked, in proportion to what they had. Pure functions, tested beside.

/** Weights by version name. */
export type Weights = Record<string, number>

/** total adds up the weights. */
export function total(w: Weights): number {
  return Object.values(w).reduce((a, b) => a + b, 0)
}

/**
 * distribute splits amount (a whole number ≥ 0) between keys in proportion to their shares,
 * in whole numbers that add up to amount exactly: each gets the floor of its exact part, and
 * the units left over go to the largest remainders (ties to the earlier key). With every share
 * zero, the split is even.
 */
export function distribute(amount: number, keys: string[], shares: number[]): Weights {
  const out: Weights = {}
  if (keys.length === 0) return out
  let sum = shares.reduce((a, b) => a + Math.max(0, b), 0)
  const s = sum > 0 ? shares.map((x) => Math.max(0, x)) : keys.map(() => 1)
  if (sum <= 0) sum = keys.length
  const exact = s.map((x) => (amount * x) / sum)
  const floors = exact.map(Math.floor)
  let left = amount - floors.reduce((a, b) => a + b, 0)
  const order = keys.map((_, i) => i).sort((a, b) => exact[b]! - floors[b]! - (exact[a]! - floors[a]!) || a - b)
  for (const i of order) {
    if (left <= 0) break
    floors[i]!++
    left--
  }
  keys.forEach((k, i) => (out[k] = floors[i]!))
  return out
}

/**
 * normalize gives every version a whole weight, the ones in w scaled to add up to 100. A
 * version w does not name gets 0; with no weight at all (no VirtualService: traffic is spread
 * over every endpoint) the versions share evenly.
 */
export function normalize(versions: string[], w: Weights): Weights {
  const keys = [...new Set([...versions, ...Object.keys(w)])]
  const shares = keys.map((k) => Math.max(0, w[k] ?? 0))
  return distribute(100, keys, shares)
}

/**
 * rebalance sets version's weight to value and shares what that takes or frees among the
 * versions not in locked, in proportion to their weights (evenly when they are all 0). The
 * value is held between 0 and what the locked versions leave; with no unlocked version to
 * take up the difference, nothing moves. The result adds up to 100 when w does.
 */
export function rebalance(w: Weights, locked: ReadonlySet<string>, version: string, value: number): Weights {
  if (!(version in w) || locked.has(version)) return w
  const others = Object.keys(w).filter((k) => k !== version && !locked.has(k))
  if (others.length === 0) return w
  const lockedSum = Object.keys(w)
    .filter((k) => k !== version && locked.has(k))
    .reduce((a, k) => a + w[k]!, 0)
  const room = Math.max(0, 100 - lockedSum)
  const v = Math.min(room, Math.max(0, Math.round(value)))
  const rest = distribute(
    room - v,
    others,
    others.map((k) => w[k]!),
  )
  return { ...w, ...rest, [version]: v }
}

/** promote sends all traffic to version. */
export function promote(w: Weights, version: string): Weights {
  return Object.fromEntries(Object.keys(w).map((k) => [k, k === version ? 100 : 0]))
}

/** same reports whether two splits are equal, a version missing from one counting as 0. */
export function same(a: Weights, b: Weights): boolean {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].every((k) => (a[k] ?? 0) === (b[k] ?? 0))
}
