// @vitest-environment jsdom
import { cleanup, render, screen, within } from '@testing-library/react'
import { afterEach, describe, expect, it } from 'vitest'
import { SideBySideDiff } from './SideBySideDiff'

afterEach(cleanup)

const diff = `--- VirtualService/default/reviews (before)
+++ VirtualService/default/reviews (after)
@@ -3,3 +3,3 @@
 metadata:
-  name: old
+  name: new
 spec: {}
`

describe('SideBySideDiff', () => {
  it('is a table named by its caption, before beside after', () => {
    render(<SideBySideDiff diff={diff} caption="Changes to reviews" beforeLabel="Revision 4" afterLabel="Revision 5" />)
    const table = screen.getByRole('table', { name: /Changes to reviews/ })
    expect(within(table).getByRole('columnheader', { name: 'Revision 4' })).toBeTruthy()
    expect(within(table).getByRole('columnheader', { name: 'Revision 5' })).toBeTruthy()

    const rows = within(table).getAllByRole('row')
    // The header, the hunk's heading, and three lines.
    expect(rows).toHaveLength(5)
    const changed = within(rows[3]!).getAllByRole('cell').map((c) => c.textContent)
    expect(changed).toEqual(['4', 'removed:   name: old', '4', 'added:   name: new'])
    expect(within(table).getByText('−1')).toBeTruthy()
    expect(within(table).getByText('+1')).toBeTruthy()
  })

  it('says when there is nothing to show', () => {
    render(<SideBySideDiff diff="" caption="Changes" />)
    expect(screen.queryByRole('table')).toBeNull()
    expect(screen.getByText('No differences.')).toBeTruthy()
  })
})
