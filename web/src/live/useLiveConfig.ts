import { keys } from '../api/queries'
import type { ProxyList } from '../api/types'
import { patchProxies, withRevision, type ProxyMessage, type RevisionMessage } from './config'
import { useLivePatch } from './useLive'

/**
 * useLiveConfig keeps the cached proxy list current from the config topic while mounted:
 * proxies' sync state as they ACK or NACK, and the revision being served. A new revision
 * also marks the revision log stale.
 */
export function useLiveConfig(enabled = true): string | null {
  return useLivePatch({
    topic: 'config',
    enabled,
    refetchOnOpen: [keys.proxies],
    patch: (qc, msg) => {
      if (msg.type === 'proxy') {
        qc.setQueryData<ProxyList>(keys.proxies, (prev) => patchProxies(prev, msg as unknown as ProxyMessage))
      } else if (msg.type === 'revision') {
        qc.setQueryData<ProxyList>(keys.proxies, (prev) => withRevision(prev, msg as unknown as RevisionMessage))
        void qc.invalidateQueries({ queryKey: keys.revisions })
      }
    },
  })
}
