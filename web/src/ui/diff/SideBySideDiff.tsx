import { useMemo } from 'react'
import { diffStats, parseUnifiedDiff, sideBySide, type Cell } from './unifiedDiff'

export interface SideBySideDiffProps {
  /** A unified diff, as the server writes it. */
  diff: string
  /** Names the table for assistive technology, such as "Changes to VirtualService default/reviews". */
  caption: string
  beforeLabel?: string
  afterLabel?: string
}

/** SideBySideDiff shows a unified diff as a two-column table: before on the left, after on the right. */
export function SideBySideDiff({ diff, caption, beforeLabel = 'Before', afterLabel = 'After' }: SideBySideDiffProps) {
  const parsed = useMemo(() => parseUnifiedDiff(diff), [diff])
  const rows = useMemo(() => sideBySide(parsed), [parsed])
  const stats = diffStats(parsed)

  if (parsed.hunks.length === 0) {
    return <p className="muted">{parsed.note ?? 'No differences.'}</p>
  }
  return (
    <div className="diff-scroll">
      <table className="diff">
        <caption>
          {caption}{' '}
          <span className="diff-stats">
            <span className="diff-stat-removed">−{stats.removed}</span>{' '}
            <span className="diff-stat-added">+{stats.added}</span>
          </span>
        </caption>
        <colgroup>
          <col className="diff-num" />
          <col />
          <col className="diff-num" />
          <col />
        </colgroup>
        <thead>
          <tr>
            <th scope="col" colSpan={2}>
              {beforeLabel}
            </th>
            <th scope="col" colSpan={2}>
              {afterLabel}
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row, i) =>
            row.type === 'hunk' ? (
              <tr key={i} className="diff-hunk">
                <td colSpan={4}>
                  Lines from {row.oldStart} (before) and {row.newStart} (after)
                </td>
              </tr>
            ) : (
              <tr key={i}>
                <Side cell={row.left} />
                <Side cell={row.right} />
              </tr>
            ),
          )}
        </tbody>
      </table>
    </div>
  )
}

const marks = { context: '', removed: 'removed: ', added: 'added: ' } as const

function Side({ cell }: { cell?: Cell }) {
  if (!cell) {
    return (
      <>
        <td className="diff-num diff-empty" />
        <td className="diff-empty" />
      </>
    )
  }
  return (
    <>
      <td className={`diff-num diff-${cell.kind}`}>{cell.line}</td>
      <td className={`diff-code diff-${cell.kind}`}>
        {marks[cell.kind] && <span className="visually-hidden">{marks[cell.kind]}</span>}
        {cell.text}
      </td>
    </>
  )
}
