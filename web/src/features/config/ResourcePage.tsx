import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useState } from 'react'
import { Link, NavLink, useNavigate, useParams } from 'react-router'
import { api } from '../../api/api'
import { ApiError } from '../../api/client'
import { kindByPlural } from '../../api/kinds'
import { afterConfigWrite, resourceQuery, resourceYamlQuery } from '../../api/queries'
import { atLeast, needs } from '../../auth/roles'
import { useUser } from '../../auth/session'
import { ConfirmDialog } from '../../ui/ConfirmDialog'
import { Empty, ErrorState, Loading } from '../../ui/States'
import { Ago } from '../../ui/Time'
import { usePageTitle } from '../../ui/usePageTitle'
import { HistoryPanel } from './HistoryPanel'

/** ResourcePage shows one resource: its YAML, or its history with diffs and rollback. */
export function ResourcePage({ tab }: { tab: 'yaml' | 'history' }) {
  const { kind: plural = '', namespace = '', name = '' } = useParams()
  const info = kindByPlural(plural)
  const kind = info?.kind ?? plural
  usePageTitle(`${name} · ${kind}`)
  const user = useUser()
  const base = `/config/${plural}/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`
  const obj = useQuery(resourceQuery(plural, namespace, name))
  const gone = obj.error instanceof ApiError && obj.error.status === 404

  return (
    <>
      <nav aria-label="Breadcrumb" className="breadcrumb">
        <ol>
          <li>
            <Link to="/config">Config</Link>
          </li>
          <li>
            <Link to={`/config/${plural}?namespace=${encodeURIComponent(namespace)}`}>{info?.label ?? plural}</Link>
          </li>
          <li aria-current="page">{name}</li>
        </ol>
      </nav>
      <header className="page-header">
        <div>
          <h1>
            <span className="muted">{kind}</span> {namespace}/{name}
          </h1>
          {obj.data && (
            <p className="muted">
              Version {obj.data.metadata.resourceVersion}, changed by {obj.data.metadata.updatedBy ?? 'unknown'}{' '}
              <Ago t={obj.data.metadata.updatedAt} />.
            </p>
          )}
        </div>
        {obj.data && atLeast(user.role, needs.write) && (
          <div className="actions">
            <Link className="button primary" to={`${base}/edit`}>
              Edit
            </Link>
            <DeleteButton plural={plural} namespace={namespace} name={name} kind={kind} etag={obj.data.metadata.resourceVersion} />
          </div>
        )}
      </header>
      <nav aria-label="Resource views" className="tabs">
        <NavLink to={base} end>
          YAML
        </NavLink>
        <NavLink to={`${base}/history`}>History</NavLink>
      </nav>
      {tab === 'history' ? (
        <HistoryPanel plural={plural} namespace={namespace} name={name} kind={kind} />
      ) : obj.isPending ? (
        <Loading what="the resource" />
      ) : gone ? (
        <Empty title={`${kind} ${namespace}/${name} does not exist.`}>
          <p>
            It may have been deleted. Its <Link to={`${base}/history`}>history</Link> is kept, and a rollback can bring it back.
          </p>
        </Empty>
      ) : obj.isError && !obj.data ? (
        <ErrorState what="the resource" error={obj.error} retry={() => void obj.refetch()} />
      ) : (
        <YamlView plural={plural} namespace={namespace} name={name} />
      )}
    </>
  )
}

function YamlView({ plural, namespace, name }: { plural: string; namespace: string; name: string }) {
  const y = useQuery(resourceYamlQuery(plural, namespace, name))
  if (y.isPending) return <Loading what="the YAML" />
  if (y.isError && !y.data) return <ErrorState what="the YAML" error={y.error} retry={() => void y.refetch()} />
  return (
    <pre className="yaml" tabIndex={0} aria-label={`YAML of ${namespace}/${name}`}>
      <code>{y.data.yaml}</code>
    </pre>
  )
}

function DeleteButton(p: { plural: string; namespace: string; name: string; kind: string; etag?: string }) {
  const [open, setOpen] = useState(false)
  const qc = useQueryClient()
  const navigate = useNavigate()
  const del = useMutation({
    mutationFn: () => api.deleteResource(p.plural, p.namespace, p.name, p.etag ? `"${p.etag}"` : null),
    onSuccess: async () => {
      setOpen(false)
      await afterConfigWrite(qc)
      navigate(`/config/${p.plural}?namespace=${encodeURIComponent(p.namespace)}`)
    },
  })
  return (
    <>
      <button type="button" className="danger" onClick={() => setOpen(true)}>
        Delete
      </button>
      <ConfirmDialog
        open={open}
        title={`Delete ${p.kind} ${p.namespace}/${p.name}?`}
        confirmLabel="Delete"
        busy={del.isPending}
        error={del.error}
        onConfirm={() => del.mutate()}
        onCancel={() => {
          setOpen(false)
          del.reset()
        }}
      >
        <p>
          Proxies stop using it as soon as they apply the new revision. Its history is kept, and a rollback can bring it
          back.
        </p>
      </ConfirmDialog>
    </>
  )
}
