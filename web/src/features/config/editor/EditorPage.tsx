import { useQuery, useQueryClient } from '@tanstack/react-query'
import { useEffect, useId, useRef, useState } from 'react'
import { Link, useNavigate, useParams, useSearchParams } from 'react-router'
import { api } from '../../../api/api'
import { ApiError, conflictOf, type Conflict } from '../../../api/client'
import { kindByPlural, kinds, pluralOf } from '../../../api/kinds'
import { afterConfigWrite, resourceYamlQuery } from '../../../api/queries'
import type { WriteOutcome } from '../../../api/types'
import { atLeast, needs } from '../../../auth/roles'
import { useUser } from '../../../auth/session'
import { SideBySideDiff } from '../../../ui/diff/SideBySideDiff'
import { describeError, ErrorState, Loading } from '../../../ui/States'
import { ago } from '../../../ui/time'
import { usePageTitle } from '../../../ui/usePageTitle'
import { planSubmit, type EditTarget } from './submit'
import { template } from './templates'
import { indexYaml } from './yamlPaths'
import { YamlEditor, type YamlEditorHandle } from './YamlEditor'

/**
 * EditorPage creates and edits resources as YAML. Validate asks the server for a dry run and
 * shows what would change; Apply writes. Problems the server finds are placed on their lines.
 * It is the default export so that the router can load it (and CodeMirror) lazily.
 */
export default function EditorPage() {
  const { kind: plural, namespace, name } = useParams()
  if (plural && namespace && name) return <EditExisting plural={plural} namespace={namespace} name={name} />
  return <CreateNew />
}

function CreateNew() {
  usePageTitle('New resource')
  const [params, setParams] = useSearchParams()
  const kind = params.get('kind') ?? 'virtualservices'
  const ns = params.get('namespace')
  return (
    <>
      <header className="page-header">
        <h1>New resource</h1>
        <div className="toolbar">
          <label htmlFor="template">Start from</label>
          <select
            id="template"
            value={kind}
            onChange={(e) => setParams({ kind: e.target.value, ...(ns ? { namespace: ns } : {}) })}
          >
            {kinds.map((k) => (
              <option key={k.plural} value={k.plural}>
                {k.kind}
              </option>
            ))}
          </select>
        </div>
      </header>
      <p className="muted">
        One resource or several, separated by <code>---</code> lines. They are applied together, as one revision, or not at
        all.
      </p>
      <EditorForm key={kind} initial={template(kind, ns)} target={null} />
    </>
  )
}

function EditExisting({ plural, namespace, name }: { plural: string; namespace: string; name: string }) {
  const info = kindByPlural(plural)
  const kind = info?.kind ?? plural
  usePageTitle(`Edit ${name}`)
  // An edit starts from what is stored now, read when the page opens, not from the cache; later
  // refetches (after this page's own apply) must not reset the editor, so the text it started
  // from is kept apart, and replaced only when the user asks to reload.
  const y = useQuery({ ...resourceYamlQuery(plural, namespace, name), refetchOnMount: 'always', refetchOnWindowFocus: false })
  const [start, setStart] = useState<{ yaml: string; etag: string | null; n: number } | null>(null)
  useEffect(() => {
    if (!start && y.data && y.isFetchedAfterMount) setStart({ ...y.data, n: 0 })
  }, [start, y.data, y.isFetchedAfterMount])
  const reload = async () => {
    const r = await y.refetch()
    if (r.data) setStart((s) => ({ ...r.data, n: (s?.n ?? 0) + 1 }))
  }
  const base = `/config/${plural}/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`
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
          <li>
            <Link to={base}>{name}</Link>
          </li>
          <li aria-current="page">Edit</li>
        </ol>
      </nav>
      <header className="page-header">
        <h1>
          Edit <span className="muted">{kind}</span> {namespace}/{name}
        </h1>
      </header>
      {start ? (
        <EditorForm
          key={start.n}
          initial={start.yaml}
          target={{ plural, kind, namespace, name, etag: start.etag }}
          onReload={() => void reload()}
        />
      ) : y.isError ? (
        <ErrorState what="the resource" error={y.error} retry={() => void y.refetch()} />
      ) : (
        <Loading what="the resource" />
      )}
    </>
  )
}

/** A problem the server found, placed in the text that was sent. */
interface PlacedProblem {
  path: string
  message: string
  line: number
  exact: boolean
}

type Outcome =
  | { type: 'validated'; out: WriteOutcome }
  | { type: 'applied'; out: WriteOutcome }
  | { type: 'invalid'; detail: string; problems: PlacedProblem[] }
  | { type: 'conflict'; conflict: Conflict }
  | { type: 'failed'; error: unknown }

function EditorForm({ initial, target, onReload }: { initial: string; target: EditTarget | null; onReload?: () => void }) {
  const user = useUser()
  const canWrite = atLeast(user.role, needs.write)
  const editor = useRef<YamlEditorHandle>(null)
  const [etag, setEtag] = useState(target?.etag ?? null)
  const [busy, setBusy] = useState<'validate' | 'apply' | null>(null)
  const [outcome, setOutcome] = useState<Outcome | null>(null)
  const [dirty, setDirty] = useState(false)
  const qc = useQueryClient()
  const navigate = useNavigate()
  const helpId = useId()
  const resultRef = useRef<HTMLDivElement>(null)

  // Ask before leaving the page with changes that were not applied.
  useEffect(() => {
    if (!dirty) return
    const warn = (e: BeforeUnloadEvent) => e.preventDefault()
    window.addEventListener('beforeunload', warn)
    return () => window.removeEventListener('beforeunload', warn)
  }, [dirty])

  async function submit(dryRun: boolean) {
    const text = editor.current?.text() ?? ''
    const plan = planSubmit(text, target && { ...target, etag })
    setBusy(dryRun ? 'validate' : 'apply')
    try {
      const out =
        plan.via === 'put'
          ? await api.putResource(plan.target.plural, plan.target.namespace, plan.target.name, text, {
              dryRun,
              ifMatch: plan.target.etag,
            })
          : await api.apply(text, { dryRun })
      editor.current?.setProblems([])
      if (!dryRun) {
        await afterConfigWrite(qc)
        const mine = target && out.results.find((r) => r.kind === target.kind && r.namespace === target.namespace && r.name === target.name)
        if (mine?.resourceVersion) setEtag(`"${mine.resourceVersion}"`)
        setDirty(false)
      }
      setOutcome({ type: dryRun ? 'validated' : 'applied', out })
    } catch (err) {
      if (err instanceof ApiError && err.status === 400 && err.fieldErrors.length > 0) {
        const idx = indexYaml(text)
        const placed = err.fieldErrors.map((fe) => ({ ...fe, ...idx.locate(fe.path, fe.message) }))
        editor.current?.setProblems(placed.map((p) => ({ from: p.from, to: p.to, message: p.path ? `${p.path}: ${p.message}` : p.message })))
        setOutcome({
          type: 'invalid',
          detail: err.message,
          problems: placed.map(({ path, message, line, exact }) => ({ path, message, line, exact })),
        })
      } else if (conflictOf(err)) {
        setOutcome({ type: 'conflict', conflict: conflictOf(err)! })
      } else {
        setOutcome({ type: 'failed', error: err })
      }
    } finally {
      setBusy(null)
      // Bring the answer into view; focus stays where the user is.
      resultRef.current?.scrollIntoView?.({ block: 'nearest' })
    }
  }

  return (
    <div className="editor-page">
      <p id={helpId} className="muted small">
        Tab indents. To leave the editor with the keyboard, press Escape, then Tab.
      </p>
      <YamlEditor
        ref={editor}
        initial={initial}
        label="Resource YAML"
        describedBy={helpId}
        onChange={() => setDirty(true)}
        readOnly={!canWrite}
      />
      {!canWrite && (
        <p className="notice" role="note">
          Validating and applying need the {needs.write} role; you have the {user.role} role.
        </p>
      )}
      <div className="actions">
        <button type="button" onClick={() => void submit(true)} disabled={!canWrite || busy !== null}>
          {busy === 'validate' ? 'Validating…' : 'Validate'}
        </button>
        <button type="button" className="primary" onClick={() => void submit(false)} disabled={!canWrite || busy !== null}>
          {busy === 'apply' ? 'Applying…' : 'Apply'}
        </button>
        {target && (
          <button
            type="button"
            onClick={() => navigate(`/config/${target.plural}/${encodeURIComponent(target.namespace)}/${encodeURIComponent(target.name)}`)}
          >
            {dirty ? 'Cancel' : 'Done'}
          </button>
        )}
      </div>
      <div ref={resultRef} aria-live="polite">
        {outcome && (
          <OutcomeView
            outcome={outcome}
            onGoToLine={(line) => editor.current?.goToLine(line)}
            onReload={onReload}
          />
        )}
      </div>
    </div>
  )
}

const actionWords = { created: 'created', updated: 'updated', deleted: 'deleted', unchanged: 'unchanged' } as const

function OutcomeView({ outcome, onGoToLine, onReload }: { outcome: Outcome; onGoToLine: (line: number) => void; onReload?: () => void }) {
  switch (outcome.type) {
    case 'validated': {
      const changing = outcome.out.results.filter((r) => r.action !== 'unchanged')
      return (
        <section className="result result-ok" aria-labelledby="result-title">
          <h2 id="result-title">Valid</h2>
          <p>
            {changing.length === 0
              ? 'Applying would change nothing: the mesh already has this configuration.'
              : `Applying would change ${changing.length} of ${outcome.out.results.length} ${outcome.out.results.length === 1 ? 'resource' : 'resources'}:`}
          </p>
          {outcome.out.results.map((r) => (
            <div key={`${r.kind}/${r.namespace}/${r.name}`} className="result-item">
              <h3>
                {r.kind} {r.namespace}/{r.name} <span className={`pill pill-${r.action}`}>{actionWords[r.action]}</span>
              </h3>
              {r.diff && <SideBySideDiff diff={r.diff} caption={`Changes to ${r.kind} ${r.namespace}/${r.name}`} beforeLabel="Stored now" afterLabel="After applying" />}
            </div>
          ))}
        </section>
      )
    }
    case 'applied':
      return (
        <section className="result result-ok" aria-labelledby="result-title">
          <h2 id="result-title">
            {outcome.out.revision ? `Applied as revision ${outcome.out.revision}` : 'Nothing changed'}
          </h2>
          <ul>
            {outcome.out.results.map((r) => (
              <li key={`${r.kind}/${r.namespace}/${r.name}`}>
                {r.kind}{' '}
                <Link to={`/config/${pluralOf(r.kind)}/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}`}>
                  {r.namespace}/{r.name}
                </Link>{' '}
                {actionWords[r.action]}
              </li>
            ))}
          </ul>
          {outcome.out.revision ? (
            <p className="muted">
              Proxies pick it up within moments: <Link to="/proxies">see which have applied it</Link>.
            </p>
          ) : null}
        </section>
      )
    case 'invalid':
      return (
        <section className="result result-bad" aria-labelledby="result-title" role="alert">
          <h2 id="result-title">Not valid: nothing was saved</h2>
          <p>{outcome.detail}</p>
          <ul aria-label="Problems" className="problems">
            {outcome.problems.map((p, i) => (
              <li key={i}>
                <button type="button" className="link" onClick={() => onGoToLine(p.line)}>
                  {p.exact ? `Line ${p.line}` : `Near line ${p.line}`}
                </button>{' '}
                {p.path && <code>{p.path}</code>} {p.message}
              </li>
            ))}
          </ul>
        </section>
      )
    case 'conflict': {
      const c = outcome.conflict
      return (
        <section className="result result-bad" aria-labelledby="result-title" role="alert">
          <h2 id="result-title">Not saved: changed meanwhile</h2>
          <p>
            Changed by {c.updatedBy ?? 'another user'}
            {c.updatedAt ? ` ${ago(c.updatedAt)}` : ' since you opened it'} — review and retry.
            {c.currentResourceVersion && ` It is now at version ${c.currentResourceVersion}.`}
          </p>
          {onReload && (
            <button type="button" onClick={onReload}>
              Load the current version (your edits are discarded)
            </button>
          )}
        </section>
      )
    }
    case 'failed':
      return (
        <section className="result result-bad" aria-labelledby="result-title" role="alert">
          <h2 id="result-title">Not saved</h2>
          <p>{describeError(outcome.error)}</p>
        </section>
      )
  }
}
