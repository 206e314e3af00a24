import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useState } from 'react'
import { Link } from 'react-router'
import { api } from '../../api/api'
import { pluralOf } from '../../api/kinds'
import { afterConfigWrite, diffQuery, revisionsQuery } from '../../api/queries'
import type { Change, Revision, WriteOutcome } from '../../api/types'
import { atLeast, needs } from '../../auth/roles'
import { useUser } from '../../auth/session'
import { ConfirmDialog } from '../../ui/ConfirmDialog'
import { SideBySideDiff } from '../../ui/diff/SideBySideDiff'
import { Empty, ErrorState, Loading } from '../../ui/States'
import { Ago } from '../../ui/Time'
import { usePageTitle } from '../../ui/usePageTitle'

const verbs = { create: 'created', update: 'updated', delete: 'deleted' } as const

/** RevisionsPage is the mesh-wide revision log: every change, its diff, and rollback of the whole mesh. */
export function RevisionsPage() {
  usePageTitle('Revisions')
  const user = useUser()
  const canRollback = atLeast(user.role, needs.rollback)
  const q = useInfiniteQuery(revisionsQuery())
  const [open, setOpen] = useState<number | null>(null)
  const [target, setTarget] = useState<number | null>(null)
  const [done, setDone] = useState<{ to: number; out: WriteOutcome } | null>(null)

  const current = q.data?.pages[0]?.current ?? 0
  const revisions = q.data?.pages.flatMap((p) => p.revisions) ?? []

  return (
    <>
      <header className="page-header">
        <h1>Revisions</h1>
        {q.data && (
          <p className="muted">
            Every change to the mesh's configuration, newest first. The mesh is at revision <strong>{current}</strong>.
          </p>
        )}
      </header>
      {done && (
        <p className="callout callout-ok" role="status">
          Rolled the mesh back to revision {done.to}
          {done.out.revision ? `, as revision ${done.out.revision}` : ' (nothing changed)'}: {done.out.results.length}{' '}
          {done.out.results.length === 1 ? 'resource' : 'resources'} restored.
        </p>
      )}
      {q.isPending ? (
        <Loading what="revisions" />
      ) : q.isError && !q.data ? (
        <ErrorState what="the revisions" error={q.error} retry={() => void q.refetch()} />
      ) : revisions.length === 0 ? (
        <Empty title="No configuration has been applied yet.">
          <p>
            Apply resources in the <Link to="/config/new">YAML editor</Link> or with <code>sluicectl apply -f</code>.
          </p>
        </Empty>
      ) : (
        <>
          <ol className="revlog">
            {revisions.map((r) => (
              <RevisionItem
                key={r.revision}
                r={r}
                current={current}
                expanded={open === r.revision}
                onToggle={() => setOpen(open === r.revision ? null : r.revision)}
                onRollback={
                  canRollback && r.revision !== current
                    ? () => {
                        setDone(null)
                        setTarget(r.revision)
                      }
                    : undefined
                }
              />
            ))}
          </ol>
          {q.hasNextPage && (
            <button type="button" onClick={() => void q.fetchNextPage()} disabled={q.isFetchingNextPage}>
              {q.isFetchingNextPage ? 'Loading…' : 'Load older revisions'}
            </button>
          )}
        </>
      )}
      <MeshRollbackDialog
        current={current}
        target={target}
        onClose={() => setTarget(null)}
        onDone={(to, out) => {
          setTarget(null)
          setDone({ to, out })
        }}
      />
    </>
  )
}

function changeLink(c: Change) {
  return `/config/${pluralOf(c.kind)}/${encodeURIComponent(c.namespace)}/${encodeURIComponent(c.name)}/history`
}

function RevisionItem(p: { r: Revision; current: number; expanded: boolean; onToggle: () => void; onRollback?: () => void }) {
  const { r } = p
  const panelId = `rev-${r.revision}-changes`
  return (
    <li className="revision" aria-labelledby={`rev-${r.revision}-title`}>
      <div className="revision-head">
        <h2 id={`rev-${r.revision}-title`}>
          Revision {r.revision}
          {r.revision === p.current && <span className="pill pill-ok">current</span>}
        </h2>
        <p className="muted">
          {r.actor}, <Ago t={r.at} />
          {r.rolledBackTo ? ` · rollback to revision ${r.rolledBackTo}` : ''}
          {r.message ? ` · ${r.message}` : ''}
        </p>
        <div className="actions">
          <button type="button" aria-expanded={p.expanded} aria-controls={panelId} onClick={p.onToggle}>
            {p.expanded ? 'Hide' : 'Show'} changes of revision {r.revision}
          </button>
          {p.onRollback && (
            <button type="button" onClick={p.onRollback}>
              Roll the mesh back to revision {r.revision}
            </button>
          )}
        </div>
      </div>
      <ul className="changes">
        {r.changes.map((c) => (
          <li key={`${c.kind}/${c.namespace}/${c.name}`}>
            {c.kind} <Link to={changeLink(c)}>{`${c.namespace}/${c.name}`}</Link> {verbs[c.action]}
          </li>
        ))}
      </ul>
      {p.expanded && (
        <div id={panelId}>
          <RevisionDiff from={r.revision - 1} to={r.revision} />
        </div>
      )}
    </li>
  )
}

/** RevisionDiff shows every resource that differs between two revisions, side by side. */
function RevisionDiff({ from, to, beforeLabel, afterLabel }: { from: number; to: number; beforeLabel?: string; afterLabel?: string }) {
  const d = useQuery(diffQuery({ from, to }))
  if (d.isPending) return <Loading what="the changes" />
  if (d.isError) return <ErrorState what="the changes" error={d.error} retry={() => void d.refetch()} />
  if (d.data.resources.length === 0) return <p className="muted">No resource differs.</p>
  return (
    <>
      {d.data.resources.map((res) => (
        <SideBySideDiff
          key={`${res.kind}/${res.namespace}/${res.name}`}
          diff={res.diff}
          caption={`${res.kind} ${res.namespace}/${res.name}`}
          beforeLabel={beforeLabel ?? `Revision ${from}`}
          afterLabel={afterLabel ?? `Revision ${to}`}
        />
      ))}
    </>
  )
}

function MeshRollbackDialog(p: {
  current: number
  target: number | null
  onClose: () => void
  onDone: (to: number, out: WriteOutcome) => void
}) {
  const qc = useQueryClient()
  const rollback = useMutation({
    mutationFn: (revision: number) => api.rollbackMesh(revision),
    onSuccess: async (out, revision) => {
      await afterConfigWrite(qc)
      p.onDone(revision, out)
    },
  })
  const to = p.target ?? 0
  return (
    <ConfirmDialog
      open={p.target !== null}
      title={`Roll the whole mesh back to revision ${to}?`}
      confirmLabel="Roll back the mesh"
      busy={rollback.isPending}
      error={rollback.error}
      onConfirm={() => rollback.mutate(to)}
      onCancel={() => {
        rollback.reset()
        p.onClose()
      }}
    >
      <p>
        This makes one new revision that restores every resource changed since revision {to}: resources created since are
        deleted, and deleted ones come back.
      </p>
      {p.target !== null && <RevisionDiff from={p.current} to={to} beforeLabel={`Now (revision ${p.current})`} afterLabel={`Revision ${to}`} />}
    </ConfirmDialog>
  )
}
