// Reads the unified diffs sluice-server produces (dry runs, GET /api/v1/diff) and lays them out
// side by side: removed lines on the left beside the lines that replaced them on the right.

export type LineKind = 'context' | 'removed' | 'added'

export interface DiffLine {
  kind: LineKind
  text: string
  /** The line's number before (absent for an added line) and after (absent for a removed one). */
  oldLine?: number
  newLine?: number
}

export interface Hunk {
  oldStart: number
  newStart: number
  lines: DiffLine[]
}

export interface ParsedDiff {
  hunks: Hunk[]
  /** Text the server put in place of hunks, such as "(too long to diff: 5000 and 5001 lines)". */
  note?: string
}

const hunkHeader = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/

/** parseUnifiedDiff reads a unified diff; lines it does not understand are skipped. */
export function parseUnifiedDiff(text: string): ParsedDiff {
  const hunks: Hunk[] = []
  const notes: string[] = []
  let hunk: Hunk | null = null
  let oldLine = 0
  let newLine = 0
  for (const raw of text.split('\n')) {
    const m = hunkHeader.exec(raw)
    if (m) {
      oldLine = Number(m[1])
      newLine = Number(m[2])
      hunk = { oldStart: oldLine, newStart: newLine, lines: [] }
      hunks.push(hunk)
      continue
    }
    if (!hunk) {
      if (raw.startsWith('--- ') || raw.startsWith('+++ ') || raw === '') continue
      notes.push(raw)
      continue
    }
    const body = raw.slice(1)
    switch (raw[0]) {
      case ' ':
        hunk.lines.push({ kind: 'context', text: body, oldLine: oldLine++, newLine: newLine++ })
        break
      case '-':
        hunk.lines.push({ kind: 'removed', text: body, oldLine: oldLine++ })
        break
      case '+':
        hunk.lines.push({ kind: 'added', text: body, newLine: newLine++ })
        break
      // "\ No newline at end of file" and the empty string after the last newline.
    }
  }
  return { hunks, note: notes.length ? notes.join('\n') : undefined }
}

export interface Cell {
  line: number
  text: string
  kind: LineKind
}

/** A row of the side-by-side view: a hunk's heading, or a line on either side or both. */
export type Row =
  | { type: 'hunk'; oldStart: number; newStart: number }
  | { type: 'line'; left?: Cell; right?: Cell }

/** sideBySide pairs each run of removed lines with the run of added lines that follows it. */
export function sideBySide(diff: ParsedDiff): Row[] {
  const rows: Row[] = []
  for (const h of diff.hunks) {
    rows.push({ type: 'hunk', oldStart: h.oldStart, newStart: h.newStart })
    let i = 0
    while (i < h.lines.length) {
      const l = h.lines[i]!
      if (l.kind === 'context') {
        rows.push({
          type: 'line',
          left: { line: l.oldLine!, text: l.text, kind: 'context' },
          right: { line: l.newLine!, text: l.text, kind: 'context' },
        })
        i++
        continue
      }
      const removed: DiffLine[] = []
      const added: DiffLine[] = []
      while (i < h.lines.length && h.lines[i]!.kind === 'removed') removed.push(h.lines[i++]!)
      while (i < h.lines.length && h.lines[i]!.kind === 'added') added.push(h.lines[i++]!)
      for (let k = 0; k < Math.max(removed.length, added.length); k++) {
        const r = removed[k]
        const a = added[k]
        rows.push({
          type: 'line',
          left: r && { line: r.oldLine!, text: r.text, kind: 'removed' },
          right: a && { line: a.newLine!, text: a.text, kind: 'added' },
        })
      }
    }
  }
  return rows
}

/** diffStats counts the lines a diff removes and adds. */
export function diffStats(diff: ParsedDiff): { removed: number; added: number } {
  let removed = 0
  let added = 0
  for (const h of diff.hunks) {
    for (const l of h.lines) {
      if (l.kind === 'removed') removed++
      if (l.kind === 'added') added++
    }
  }
  return { removed, added }
}
