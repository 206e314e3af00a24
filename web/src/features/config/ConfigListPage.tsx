import { useQueries, useQuery } from '@tanstack/react-query'
import { useMemo } from 'react'
import { Link, Navigate, NavLink, useParams, useSearchParams } from 'react-router'
import { kindByPlural, kinds } from '../../api/kinds'
import { resourcesQuery } from '../../api/queries'
import { atLeast, needs } from '../../auth/roles'
import { useUser } from '../../auth/session'
import { Empty, ErrorState, Loading } from '../../ui/States'
import { Ago } from '../../ui/Time'
import { usePageTitle } from '../../ui/usePageTitle'
import { describeSpec } from './describe'

/** ConfigListPage browses the mesh's resources by kind and namespace. */
export function ConfigListPage() {
  const { kind: plural } = useParams()
  const [params, setParams] = useSearchParams()
  const namespace = params.get('namespace') ?? ''
  const info = kindByPlural(plural)
  usePageTitle(info?.label ?? 'Config')
  const user = useUser()
  const canWrite = atLeast(user.role, needs.write)

  // Every kind in every namespace: the counts beside each kind, and the namespaces to pick from.
  const all = useQueries({ queries: kinds.map((k) => resourcesQuery(k.plural)) })
  const namespaces = useMemo(() => {
    const set = new Set<string>()
    for (const l of all) for (const r of l.data?.items ?? []) set.add(r.metadata.namespace)
    if (namespace) set.add(namespace)
    return [...set].sort()
  }, [all, namespace])

  const list = useQuery({ ...resourcesQuery(plural ?? '', namespace || undefined), enabled: !!info })

  if (!info) return <Navigate to="/config/virtualservices" replace />
  const newLink = `/config/new?kind=${info.plural}${namespace ? `&namespace=${encodeURIComponent(namespace)}` : ''}`

  return (
    <>
      <header className="page-header">
        <h1>Config</h1>
        {canWrite && (
          <Link className="button primary" to={newLink}>
            New resource
          </Link>
        )}
      </header>
      <div className="split">
        <nav aria-label="Kinds" className="subnav">
          <ul>
            {kinds.map((k, i) => (
              <li key={k.plural}>
                <NavLink to={`/config/${k.plural}${namespace ? `?namespace=${encodeURIComponent(namespace)}` : ''}`}>
                  {k.label}
                  <span className="count" aria-label={`${all[i]?.data?.items.length ?? 'unknown'} in all namespaces`}>
                    {all[i]?.data?.items.length ?? '…'}
                  </span>
                </NavLink>
              </li>
            ))}
          </ul>
        </nav>
        <section aria-labelledby="list-title" className="grow">
          <div className="toolbar">
            <h2 id="list-title">{info.label}</h2>
            <label htmlFor="namespace">Namespace</label>
            <select
              id="namespace"
              value={namespace}
              onChange={(e) => setParams(e.target.value ? { namespace: e.target.value } : {})}
            >
              <option value="">All namespaces</option>
              {namespaces.map((ns) => (
                <option key={ns} value={ns}>
                  {ns}
                </option>
              ))}
            </select>
          </div>
          {list.isPending ? (
            <Loading what={info.label.toLowerCase()} />
          ) : list.isError && !list.data ? (
            <ErrorState what={info.label.toLowerCase()} error={list.error} retry={() => void list.refetch()} />
          ) : list.data.items.length === 0 ? (
            <Empty title={`No ${info.label.toLowerCase()}${namespace ? ` in namespace ${namespace}` : ''}.`}>
              {canWrite ? (
                <p>
                  <Link to={newLink}>Create one</Link> in the YAML editor.
                </p>
              ) : (
                <p>An admin can create them.</p>
              )}
            </Empty>
          ) : (
            <div className="table-scroll">
              <table className="data">
                <caption className="visually-hidden">
                  {info.label}
                  {namespace ? ` in namespace ${namespace}` : ' in all namespaces'}
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Namespace</th>
                    <th scope="col">Applies to</th>
                    <th scope="col" className="num">
                      Version
                    </th>
                    <th scope="col">Last change</th>
                  </tr>
                </thead>
                <tbody>
                  {list.data.items.map((r) => (
                    <tr key={`${r.metadata.namespace}/${r.metadata.name}`}>
                      <th scope="row">
                        <Link to={`/config/${info.plural}/${encodeURIComponent(r.metadata.namespace)}/${encodeURIComponent(r.metadata.name)}`}>
                          {r.metadata.name}
                        </Link>
                      </th>
                      <td>{r.metadata.namespace}</td>
                      <td>{describeSpec(r.kind, r.spec) || <span className="muted">—</span>}</td>
                      <td className="num">{r.metadata.resourceVersion}</td>
                      <td>
                        {r.metadata.updatedBy ?? 'unknown'}, <Ago t={r.metadata.updatedAt} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </section>
      </div>
    </>
  )
}
