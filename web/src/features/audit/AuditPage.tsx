import { useInfiniteQuery } from '@tanstack/react-query'
import { useState, type FormEvent } from 'react'
import { api } from '../../api/api'
import { keys } from '../../api/queries'
import { atLeast, needs } from '../../auth/roles'
import { useUser } from '../../auth/session'
import { Empty, ErrorState, Loading } from '../../ui/States'
import { Ago } from '../../ui/Time'
import { usePageTitle } from '../../ui/usePageTitle'
import { noFilters, toQuery, type AuditFilters } from './filters'

const pageSize = 50

/** AuditPage lists who did what to the mesh and its users, newest first, with filters. */
export function AuditPage() {
  usePageTitle('Audit log')
  const user = useUser()
  const allowed = atLeast(user.role, needs.readAudit)
  const [draft, setDraft] = useState<AuditFilters>(noFilters)
  const [filters, setFilters] = useState<AuditFilters>(noFilters)
  const query = toQuery(filters, pageSize)
  const q = useInfiniteQuery({
    queryKey: keys.audit(query),
    queryFn: ({ pageParam }) => api.audit({ ...query, before: pageParam }),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.next,
    enabled: allowed,
  })
  const submit = (e: FormEvent) => {
    e.preventDefault()
    setFilters(draft)
  }
  const field = (k: keyof AuditFilters, label: string, type = 'text') => (
    <div>
      <label htmlFor={`audit-${k}`}>{label}</label>
      <input id={`audit-${k}`} type={type} maxLength={200} value={draft[k]} onChange={(e) => setDraft({ ...draft, [k]: e.target.value })} />
    </div>
  )
  const entries = q.data?.pages.flatMap((p) => p.entries) ?? []

  return (
    <>
      <header className="page-header">
        <h1>Audit log</h1>
        <p className="muted">Every sign-in, configuration change and user or token change, with who made it and from where.</p>
      </header>
      {!allowed ? (
        <p className="notice">Your role, {user.role}, cannot read the audit log. An operator or an admin can.</p>
      ) : (
        <>
          <form className="inline-form" onSubmit={submit} aria-label="Audit filters">
            {field('actor', 'User')}
            {field('action', 'Action')}
            {field('target', 'Resource')}
            {field('since', 'From', 'datetime-local')}
            {field('until', 'Until', 'datetime-local')}
            <button type="submit" className="button primary">
              Filter
            </button>
            <button
              type="button"
              onClick={() => {
                setDraft(noFilters)
                setFilters(noFilters)
              }}
            >
              Clear
            </button>
          </form>
          {q.isPending ? (
            <Loading what="the audit log" />
          ) : q.isError && !q.data ? (
            <ErrorState what="the audit log" error={q.error} retry={() => void q.refetch()} />
          ) : entries.length === 0 ? (
            <Empty title="No entry matches." />
          ) : (
            <>
              <div className="table-scroll">
                <table className="data compact">
                  <caption className="visually-hidden">Audit log entries, newest first</caption>
                  <thead>
                    <tr>
                      <th scope="col">When</th>
                      <th scope="col">User</th>
                      <th scope="col">Action</th>
                      <th scope="col">Resource</th>
                      <th scope="col">Outcome</th>
                      <th scope="col">Detail</th>
                      <th scope="col">From</th>
                    </tr>
                  </thead>
                  <tbody>
                    {entries.map((e) => (
                      <tr key={e.id} className={e.outcome !== 'success' ? 'row-bad' : undefined}>
                        <td>
                          <Ago t={e.at} />
                        </td>
                        <th scope="row">{e.actor || <span className="muted">anonymous</span>}</th>
                        <td>
                          <code>{e.action}</code>
                        </td>
                        <td>{e.target}</td>
                        <td>
                          <span className={`pill ${e.outcome === 'success' ? 'pill-ok' : 'pill-bad'}`}>{e.outcome}</span>
                        </td>
                        <td>{e.detail}</td>
                        <td>
                          <code>{e.clientAddr}</code>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              {q.hasNextPage && (
                <button type="button" onClick={() => void q.fetchNextPage()} disabled={q.isFetchingNextPage}>
                  {q.isFetchingNextPage ? 'Loading…' : 'Load older entries'}
                </button>
              )}
            </>
          )}
        </>
      )}
    </>
  )
}
