import { useSyncExternalStore } from 'react'
import { ago, exact } from './time'

// One clock for every relative time on screen, ticking while any is shown, so that "just now"
// becomes "2 minutes ago" without each time keeping a timer of its own.
const tickMs = 10_000
const listeners = new Set<() => void>()
let now = Date.now()
let timer: ReturnType<typeof setInterval> | null = null

function subscribe(fn: () => void) {
  listeners.add(fn)
  if (!timer) {
    timer = setInterval(() => {
      now = Date.now()
      for (const l of listeners) l()
    }, tickMs)
  }
  return () => {
    listeners.delete(fn)
    if (listeners.size === 0 && timer) {
      clearInterval(timer)
      timer = null
    }
  }
}

/** Ago shows how long ago t was, with the exact time for those who hover or read it out. */
export function Ago({ t }: { t: string | undefined | null }) {
  useSyncExternalStore(subscribe, () => now)
  if (!t) return <span className="muted">never</span>
  return (
    <time dateTime={t} title={exact(t)}>
      {ago(t, Math.max(now, Date.now()))}
    </time>
  )
}

/** useNow is the shared clock's time, re-rendering the caller as it ticks. */
export function useNow(): number {
  useSyncExternalStore(subscribe, () => now)
  return Math.max(now, Date.now())
}
