import { useQueryClient, type QueryClient, type QueryKey } from '@tanstack/react-query'
import { useEffect, useRef, useState, useSyncExternalStore } from 'react'
import { live, subscriptionKey, type LiveMessage, type LiveSocket, type LiveStatus, type Params, type Topic } from './socket'

export interface LivePatch {
  /** The topic to subscribe to, and its params. */
  topic: Topic
  params?: Params
  /** Applies one message to the query cache, typically with qc.setQueryData. */
  patch: (qc: QueryClient, msg: LiveMessage) => void
  /** Queries to refetch whenever the socket (re)opens, since events may have been missed. */
  refetchOnOpen?: QueryKey[]
  /** Off while false; on by default. */
  enabled?: boolean
}

/**
 * useLivePatch keeps a feature's cached server state current from the shared socket while the
 * component is mounted. The socket opens with the first such component and closes with the
 * last. It returns the server's refusal of the subscription, if any.
 */
export function useLivePatch(
  { topic, params = {}, patch, refetchOnOpen, enabled = true }: LivePatch,
  socket: LiveSocket = live,
): string | null {
  const qc = useQueryClient()
  const [error, setError] = useState<string | null>(null)
  // The latest callbacks and params, without resubscribing on every render.
  const latest = useRef({ patch, refetchOnOpen, params })
  latest.current = { patch, refetchOnOpen, params }
  const key = subscriptionKey(topic, params)

  useEffect(() => {
    if (!enabled) return
    setError(null)
    return socket.subscribe(topic, latest.current.params, {
      onEvent: (msg) => latest.current.patch(qc, msg),
      onError: setError,
      onOpen: () => {
        for (const queryKey of latest.current.refetchOnOpen ?? []) void qc.invalidateQueries({ queryKey })
      },
    })
  }, [socket, topic, key, enabled, qc])
  return error
}

/** useLiveStatus is the shared socket's state, for a "live" indicator. */
export function useLiveStatus(socket: LiveSocket = live): LiveStatus {
  return useSyncExternalStore(socket.subscribeStatus, socket.status)
}
