import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useEffect, useMemo, useRef, useState } from 'react'
import { Link } from 'react-router'
import { api } from '../../api/api'
import { conflictOf } from '../../api/client'
import { afterConfigWrite, keys, proxiesQuery } from '../../api/queries'
import type { Role, ServiceInfo, Summary, WriteOutcome } from '../../api/types'
import { atLeast, needs } from '../../auth/roles'
import { propagation } from '../../live/config'
import { useLiveConfig } from '../../live/useLiveConfig'
import { describeError } from '../../ui/States'
import { ago } from '../../ui/time'
import { fmtMs, fmtPct, health } from '../graph/model'
import { normalize, promote, rebalance, same, total, type Weights } from './weights'

/** How long the panel follows a revision's propagation before saying who is missing. */
export const propagationWaitMs = 30_000

type Status =
  | { kind: 'idle' }
  | { kind: 'busy'; what: string }
  | { kind: 'sent'; what: string; revision: number; startedAt: number; doneAt?: number; expired?: boolean }
  | { kind: 'unchanged' }
  | { kind: 'conflict'; by?: string; at?: string }
  | { kind: 'error'; error: unknown }

/**
 * Canary is the traffic split of a service: one slider per version, kept summing to 100, with
 * each version's live success rate and p99 beside it. Apply, Promote and Roll back change the
 * service's VirtualService; the panel then follows the new revision to the proxies and says
 * how many applied it and how fast, and which refused it.
 */
export function Canary({ svc, role, live, vsNamespace }: { svc: ServiceInfo; role: Role; live: Map<string, Summary>; vsNamespace: string }) {
  const qc = useQueryClient()
  const versions = useMemo(() => svc.versions.map((v) => v.version).filter(Boolean), [svc.versions])
  const split = svc.traffic ?? { weights: {}, otherRules: 0 }
  const base = useMemo(() => normalize(versions, split.weights), [versions, split.weights])
  const baseKey = `${split.resourceVersion ?? ''}|${JSON.stringify(base)}`
  const [draft, setDraft] = useState<Weights>(base)
  const [locked, setLocked] = useState<Set<string>>(new Set())
  const [status, setStatus] = useState<Status>({ kind: 'idle' })
  const allowed = atLeast(role, needs.traffic)
  const names = Object.keys(draft)

  // What the server holds changed (someone's apply, a rollback, a reload after a conflict):
  // show it. A draft is never sent over a split the user has not seen.
  const seen = useRef(baseKey)
  useEffect(() => {
    if (seen.current === baseKey) return
    seen.current = baseKey
    setDraft(base)
  }, [baseKey, base])

  // Follow the last write to the proxies: live from the config topic, and read every second.
  const following = status.kind === 'sent' && status.doneAt === undefined && !status.expired
  useLiveConfig(following)
  const proxies = useQuery({ ...proxiesQuery(), refetchInterval: following ? 1000 : 3000 })
  const prop = status.kind === 'sent' && proxies.data ? propagation(proxies.data.proxies, status.revision) : null
  useEffect(() => {
    if (status.kind !== 'sent' || status.doneAt !== undefined || !prop) return
    if (prop.total > 0 && prop.synced >= prop.total) setStatus({ ...status, doneAt: performance.now() })
  }, [status, prop])
  useEffect(() => {
    if (!following || status.kind !== 'sent') return
    const t = setTimeout(() => setStatus((s) => (s.kind === 'sent' && s.doneAt === undefined ? { ...s, expired: true } : s)), propagationWaitMs)
    return () => clearTimeout(t)
  }, [following, status])

  const write = useMutation({
    mutationFn: async ({ run }: { what: string; run: () => Promise<WriteOutcome> }) => {
      const startedAt = performance.now()
      return { outcome: await run(), startedAt }
    },
    onMutate: ({ what }) => setStatus({ kind: 'busy', what }),
    onSuccess: ({ outcome, startedAt }, { what }) => {
      setStatus(outcome.revision ? { kind: 'sent', what, revision: outcome.revision, startedAt } : { kind: 'unchanged' })
      setLocked(new Set())
      void afterConfigWrite(qc)
    },
    onError: (error) => {
      const c = conflictOf(error)
      setStatus(c ? { kind: 'conflict', by: c.updatedBy, at: c.updatedAt } : { kind: 'error', error })
      // Show what the server holds now; the user reviews it and tries again.
      if (c) void qc.invalidateQueries({ queryKey: keys.service(svc.namespace, svc.name) })
    },
  })

  const applyWeights = (w: Weights, what: string) =>
    write.mutate({ what, run: () => api.setTraffic(svc.namespace, svc.name, w, split.resourceVersion) })

  const rollback = () =>
    write.mutate({
      what: 'Rollback',
      run: async () => {
        const vs = split.virtualService!
        const h = await api.history('virtualservices', vsNamespace, vs, { limit: 2 })
        const previous = h.revisions[1]
        if (!previous) throw new Error(`the VirtualService ${vsNamespace}/${vs} has no earlier version to roll back to`)
        return api.rollbackResource('virtualservices', vsNamespace, vs, previous.revision)
      },
    })

  const busy = write.isPending
  // Each control says it is disabled itself, as well as through the fieldset, for assistive
  // technology that reads only the control.
  const off = !allowed || busy
  const dirty = !same(draft, base)
  const reasonId = `canary-reason-${svc.name}`

  if (versions.length === 0) {
    return <p className="muted">No version of {svc.name} is registered: start a workload with a version label to split traffic.</p>
  }

  return (
    <div className="canary">
      {!allowed && (
        <p id={reasonId} className="notice">
          Your role, {role}, cannot change traffic. An operator or an admin can.
        </p>
      )}
      <fieldset disabled={!allowed || busy} aria-describedby={!allowed ? reasonId : undefined}>
        <legend>
          Split of {svc.name}&apos;s traffic{split.otherRules > 0 && ` (the catch-all route; ${split.otherRules} other ${split.otherRules === 1 ? 'rule is' : 'rules are'} kept as written)`}
        </legend>
        {names.map((v) => {
          const s = live.get(v)
          const id = `weight-${v}`
          return (
            <div className="canary-row" key={v}>
              <label htmlFor={id}>{v}</label>
              <input
                id={id}
                type="range"
                min={0}
                max={100}
                step={1}
                value={draft[v]}
                aria-label={`${svc.name} ${v} weight`}
                aria-valuetext={`${draft[v]} percent`}
                disabled={off || locked.has(v)}
                onChange={(e) => setDraft((d) => rebalance(d, locked, v, Number(e.target.value)))}
              />
              <output htmlFor={id} aria-live="off">
                {draft[v]} %
              </output>
              <label className="small">
                <input
                  type="checkbox"
                  disabled={off}
                  checked={locked.has(v)}
                  onChange={(e) =>
                    setLocked((l) => {
                      const n = new Set(l)
                      if (e.target.checked) n.add(v)
                      else n.delete(v)
                      return n
                    })
                  }
                />{' '}
                Lock <span className="visually-hidden">{`${svc.name} ${v}`}</span>
              </label>
              <span className="small" aria-label={`${v} live: success ${fmtPct(s?.successRate)}, p99 ${fmtMs(s?.p99)}`}>
                <span className={`health-${health(s?.successRate)}`}>{fmtPct(s?.successRate)}</span> · p99 {fmtMs(s?.p99)}
                {' · '}
                <button type="button" className="link" disabled={off} onClick={() => applyWeights(promote(draft, v), `Promote ${v}`)} aria-label={`Promote ${v}`}>
                  Promote
                </button>
              </span>
            </div>
          )
        })}
        <div className="actions">
          <button type="button" className="button primary" disabled={off || !dirty || total(draft) !== 100} onClick={() => applyWeights(draft, 'Apply')}>
            Apply
          </button>
          <button type="button" disabled={off || !dirty} onClick={() => setDraft(base)}>
            Reset
          </button>
          <button type="button" disabled={off || !split.virtualService} onClick={rollback} title={split.virtualService ? undefined : 'No VirtualService routes this service yet'}>
            Roll back
          </button>
          {split.virtualService && (
            <Link to={`/config/virtualservices/${encodeURIComponent(vsNamespace)}/${encodeURIComponent(split.virtualService)}/history`}>History of the VirtualService</Link>
          )}
        </div>
      </fieldset>
      <div role="status" aria-live="polite">
        <CanaryStatus status={status} prop={prop} />
      </div>
    </div>
  )
}

function CanaryStatus({ status, prop }: { status: Status; prop: ReturnType<typeof propagation> | null }) {
  switch (status.kind) {
    case 'idle':
      return null
    case 'busy':
      return <p className="muted">{status.what}: sending…</p>
    case 'unchanged':
      return <p className="muted">Nothing changed: the split was already so.</p>
    case 'conflict':
      return (
        <p className="notice notice-error">
          Changed by {status.by ?? 'someone else'} {status.at ? ago(status.at) : 'meanwhile'} — review and retry. The split shown is the current one.
        </p>
      )
    case 'error':
      return <p className="notice notice-error">Not applied: {describeError(status.error)}</p>
    case 'sent': {
      const nacks = prop?.nacked ?? []
      return (
        <>
          {prop === null ? (
            <p className="muted">
              {status.what}: revision {status.revision} committed; waiting for the proxies…
            </p>
          ) : status.doneAt !== undefined ? (
            <p className="callout callout-ok">
              {status.what}: revision {status.revision} applied to {prop.synced}/{prop.total} sidecars in {Math.round(status.doneAt - status.startedAt)} ms.
            </p>
          ) : (
            <p className={status.expired ? 'callout callout-warn' : 'muted'}>
              {status.what}: revision {status.revision} applied to {prop.synced}/{prop.total} sidecars
              {status.expired ? ` after ${propagationWaitMs / 1000} s; the others have not applied it.` : ' so far…'}
            </p>
          )}
          {nacks.length > 0 && (
            <ul className="nacks">
              {nacks.map((p) => (
                <li key={p.nodeId} className="error-text">
                  <strong>
                    {p.namespace}/{p.workload} NACK:
                  </strong>{' '}
                  {Object.entries(p.nacks ?? {})
                    .map(([t, m]) => `${t}: ${m}`)
                    .join('; ')}
                </li>
              ))}
            </ul>
          )}
        </>
      )
    }
  }
}
