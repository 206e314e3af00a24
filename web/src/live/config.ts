// The live config topic: revisions as they are committed, and proxies as they connect,
// disconnect, ACK or NACK. patchProxies folds a proxy message into GET /api/v1/proxies's
// cached answer; it is pure and tested beside.

import type { Proxy, ProxyList, Revision } from '../api/types'

export interface ProxyMessage {
  type: 'proxy'
  id: string
  proxy: Proxy
}

export interface RevisionMessage {
  type: 'revision'
  id: string
  revision: Revision
}

/**
 * patchProxies replaces the proxy the message names (by node id) or adds it, and raises the
 * list's revision to one the proxy has applied. Without a cached list there is nothing to
 * patch: the next read brings everything.
 */
export function patchProxies(list: ProxyList | undefined, msg: ProxyMessage): ProxyList | undefined {
  if (!list || !msg.proxy || typeof msg.proxy.nodeId !== 'string') return list
  const i = list.proxies.findIndex((p) => p.nodeId === msg.proxy.nodeId)
  const proxies = i < 0 ? [...list.proxies, msg.proxy] : list.proxies.map((p, j) => (j === i ? msg.proxy : p))
  return { ...list, proxies, revision: Math.max(list.revision, msg.proxy.syncedRevision ?? 0) }
}

/** withRevision raises the list's revision to a newly committed one. */
export function withRevision(list: ProxyList | undefined, msg: RevisionMessage): ProxyList | undefined {
  if (!list || !msg.revision || typeof msg.revision.revision !== 'number' || msg.revision.revision <= list.revision) return list
  return { ...list, revision: msg.revision.revision }
}

/** Propagation is how far a revision has reached: connected proxies that applied it, of all connected. */
export interface Propagation {
  synced: number
  total: number
  /** Connected proxies that refused some configuration, with their messages. */
  nacked: Proxy[]
}

/** propagation counts the connected proxies whose synced revision is at least revision. */
export function propagation(proxies: Proxy[], revision: number): Propagation {
  const connected = proxies.filter((p) => p.connected)
  return {
    synced: connected.filter((p) => p.syncedRevision >= revision).length,
    total: connected.length,
    nacked: connected.filter((p) => p.nacks && Object.keys(p.nacks).length > 0),
  }
}
