// Times as people read them: "3 minutes ago", with the exact time in a tooltip.

const rtf = new Intl.RelativeTimeFormat('en', { numeric: 'auto' })

const units: [Intl.RelativeTimeFormatUnit, number][] = [
  ['year', 365 * 24 * 3600],
  ['month', 30 * 24 * 3600],
  ['week', 7 * 24 * 3600],
  ['day', 24 * 3600],
  ['hour', 3600],
  ['minute', 60],
  ['second', 1],
]

/** ago says how long before now the time t was, such as "5 minutes ago" or "now". */
export function ago(t: string | number | Date, now: number = Date.now()): string {
  const ms = new Date(t).getTime()
  if (Number.isNaN(ms)) return 'at an unknown time'
  const secs = Math.round((ms - now) / 1000)
  if (secs === 0) return 'just now'
  for (const [unit, size] of units) {
    if (Math.abs(secs) >= size) return rtf.format(Math.trunc(secs / size), unit)
  }
  return 'just now'
}

/** exact formats t in full, in the reader's time zone. */
export function exact(t: string | number | Date): string {
  const d = new Date(t)
  return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' })
}
