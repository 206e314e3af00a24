import { describe, expect, it } from 'vitest'
import { diffStats, parseUnifiedDiff, sideBySide } from './unifiedDiff'

// As changes.UnifiedDiff writes it on the server.
const diff = `--- VirtualService/default/reviews (before)
+++ VirtualService/default/reviews (after)
@@ -8,7 +8,8 @@
   - route:
     - destination:
         host: reviews
-        subset: v1
-      weight: 90
+        subset: v2
+      weight: 50
+    - destination: {host: reviews, subset: v3}
     - destination:
         host: reviews
@@ -20,3 +21,2 @@
 a
-b
 c
`

describe('parseUnifiedDiff', () => {
  it('numbers the lines on each side', () => {
    const d = parseUnifiedDiff(diff)
    expect(d.hunks).toHaveLength(2)
    expect(d.hunks[0]!.lines.slice(2, 6)).toEqual([
      { kind: 'context', text: '        host: reviews', oldLine: 10, newLine: 10 },
      { kind: 'removed', text: '        subset: v1', oldLine: 11 },
      { kind: 'removed', text: '      weight: 90', oldLine: 12 },
      { kind: 'added', text: '        subset: v2', newLine: 11 },
    ])
    expect(diffStats(d)).toEqual({ removed: 3, added: 3 })
    expect(d.note).toBeUndefined()
  })

  it('keeps what the server says instead of a diff', () => {
    const d = parseUnifiedDiff('--- a\n+++ a\n(too long to diff: 5000 and 5001 lines)\n')
    expect(d.hunks).toEqual([])
    expect(d.note).toBe('(too long to diff: 5000 and 5001 lines)')
  })

  it('reads a creation, whose before is empty', () => {
    const d = parseUnifiedDiff('--- x (before)\n+++ x (after)\n@@ -1,0 +1,2 @@\n+kind: Gateway\n+spec: {}\n')
    expect(sideBySide(d)).toEqual([
      { type: 'hunk', oldStart: 1, newStart: 1 },
      { type: 'line', left: undefined, right: { line: 1, text: 'kind: Gateway', kind: 'added' } },
      { type: 'line', left: undefined, right: { line: 2, text: 'spec: {}', kind: 'added' } },
    ])
  })
})

describe('sideBySide', () => {
  it('pairs removed lines with the added lines after them', () => {
    const rows = sideBySide(parseUnifiedDiff(diff))
    const changed = rows.filter((r) => r.type === 'line' && (r.left?.kind !== 'context' || r.right?.kind !== 'context'))
    expect(changed).toEqual([
      { type: 'line', left: { line: 11, text: '        subset: v1', kind: 'removed' }, right: { line: 11, text: '        subset: v2', kind: 'added' } },
      { type: 'line', left: { line: 12, text: '      weight: 90', kind: 'removed' }, right: { line: 12, text: '      weight: 50', kind: 'added' } },
      { type: 'line', left: undefined, right: { line: 13, text: '    - destination: {host: reviews, subset: v3}', kind: 'added' } },
      { type: 'line', left: { line: 21, text: 'b', kind: 'removed' }, right: undefined },
    ])
    expect(rows.filter((r) => r.type === 'hunk')).toEqual([
      { type: 'hunk', oldStart: 8, newStart: 8 },
      { type: 'hunk', oldStart: 20, newStart: 21 },
    ])
  })
})
