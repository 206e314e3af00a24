import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useState } from 'react'
import { api } from '../../api/api'
import { afterConfigWrite, diffQuery, historyQuery } from '../../api/queries'
import type { Revision, WriteOutcome } from '../../api/types'
import { atLeast, needs } from '../../auth/roles'
import { useUser } from '../../auth/session'
import { ConfirmDialog } from '../../ui/ConfirmDialog'
import { SideBySideDiff } from '../../ui/diff/SideBySideDiff'
import { Empty, ErrorState, Loading } from '../../ui/States'
import { Ago } from '../../ui/Time'

interface Props {
  plural: string
  namespace: string
  name: string
  kind: string
}

const verbs = { create: 'Created', update: 'Updated', delete: 'Deleted' } as const

/** HistoryPanel lists the revisions that changed one resource, shows each change side by side, and rolls back. */
export function HistoryPanel({ plural, namespace, name, kind }: Props) {
  const user = useUser()
  const canRollback = atLeast(user.role, needs.rollback)
  const h = useQuery(historyQuery(plural, namespace, name))
  const [selected, setSelected] = useState<number | null>(null)
  const [target, setTarget] = useState<Revision | null>(null)
  const [done, setDone] = useState<{ to: number; out: WriteOutcome } | null>(null)

  if (h.isPending) return <Loading what="the history" />
  if (h.isError && !h.data) return <ErrorState what="the history" error={h.error} retry={() => void h.refetch()} />
  const revs = h.data.revisions
  if (revs.length === 0) return <Empty title="No revision has changed this resource." />
  const newest = revs[0]!
  const shown = revs.find((r) => r.revision === selected) ?? newest

  return (
    <section aria-labelledby="history-title">
      <h2 id="history-title">History</h2>
      {done && (
        <p className="callout callout-ok" role="status">
          Rolled back to revision {done.to}
          {done.out.revision ? `, as revision ${done.out.revision}` : ' (nothing changed)'}.
        </p>
      )}
      <div className="table-scroll">
        <table className="data">
          <caption className="visually-hidden">Revisions that changed {name}, newest first</caption>
          <thead>
            <tr>
              <th scope="col" className="num">
                Revision
              </th>
              <th scope="col">Change</th>
              <th scope="col">By</th>
              <th scope="col">When</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {revs.map((r) => {
              const c = r.changes[0]
              return (
                <tr key={r.revision} className={r === shown ? 'row-selected' : undefined}>
                  <th scope="row" className="num">
                    {r.revision}
                  </th>
                  <td>
                    {c ? verbs[c.action] : 'Changed'}
                    {r.rolledBackTo !== undefined && r.rolledBackTo > 0 && <> by a rollback to revision {r.rolledBackTo}</>}
                    {r.message && <span className="muted"> — {r.message}</span>}
                  </td>
                  <td>{r.actor}</td>
                  <td>
                    <Ago t={r.at} />
                  </td>
                  <td className="actions">
                    <button type="button" aria-pressed={r === shown} onClick={() => setSelected(r.revision)}>
                      Show revision {r.revision}
                    </button>
                    {r === newest ? (
                      <span className="muted">current</span>
                    ) : (
                      canRollback && (
                        <button
                          type="button"
                          onClick={() => {
                            setDone(null)
                            setTarget(r)
                          }}
                        >
                          Roll back to revision {r.revision}
                        </button>
                      )
                    )}
                  </td>
                </tr>
              )
            })}
          </tbody>
        </table>
      </div>
      <ChangeDiff plural={plural} namespace={namespace} name={name} kind={kind} revision={shown.revision} />
      <RollbackDialog
        {...{ plural, namespace, name, kind }}
        current={newest.revision}
        target={target}
        onClose={() => setTarget(null)}
        onDone={(to, out) => {
          setTarget(null)
          setSelected(null)
          setDone({ to, out })
        }}
      />
    </section>
  )
}

/** ChangeDiff shows what one revision did to the resource. */
function ChangeDiff({ plural, namespace, name, kind, revision }: Props & { revision: number }) {
  const d = useQuery(diffQuery({ from: revision - 1, to: revision, kind: plural, namespace, name }))
  return (
    <section aria-labelledby="change-title" className="panel">
      <h3 id="change-title">Revision {revision}</h3>
      {d.isPending ? (
        <Loading what="the change" />
      ) : d.isError ? (
        <ErrorState what="the change" error={d.error} retry={() => void d.refetch()} />
      ) : (
        <SideBySideDiff
          diff={d.data.resources[0]?.diff ?? ''}
          caption={`What revision ${revision} changed in ${kind} ${namespace}/${name}`}
          beforeLabel={`Before (revision ${revision - 1})`}
          afterLabel={`After (revision ${revision})`}
        />
      )}
    </section>
  )
}

function RollbackDialog(
  p: Props & { current: number; target: Revision | null; onClose: () => void; onDone: (to: number, out: WriteOutcome) => void },
) {
  const qc = useQueryClient()
  const to = p.target?.revision ?? 0
  const preview = useQuery({
    ...diffQuery({ from: p.current, to, kind: p.plural, namespace: p.namespace, name: p.name }),
    enabled: p.target !== null,
  })
  const rollback = useMutation({
    mutationFn: (revision: number) => api.rollbackResource(p.plural, p.namespace, p.name, revision),
    onSuccess: async (out, revision) => {
      await afterConfigWrite(qc)
      p.onDone(revision, out)
    },
  })
  return (
    <ConfirmDialog
      open={p.target !== null}
      title={`Roll ${p.namespace}/${p.name} back to revision ${to}?`}
      confirmLabel="Roll back"
      busy={rollback.isPending}
      error={rollback.error}
      confirmDisabled={preview.isPending}
      onConfirm={() => rollback.mutate(to)}
      onCancel={() => {
        rollback.reset()
        p.onClose()
      }}
    >
      <p>This makes a new revision that restores the resource as it was right after revision {to}:</p>
      {preview.isPending ? (
        <Loading what="the changes" />
      ) : preview.isError ? (
        <ErrorState what="the changes" error={preview.error} />
      ) : (
        <SideBySideDiff
          diff={preview.data.resources[0]?.diff ?? ''}
          caption={`What the rollback changes in ${p.kind} ${p.namespace}/${p.name}`}
          beforeLabel={`Now (revision ${p.current})`}
          afterLabel={`Revision ${to}`}
        />
      )}
    </ConfirmDialog>
  )
}
