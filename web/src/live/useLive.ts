import { useQueryClient, type QueryClient, type QueryKey } from '@tanstack/react-query'
import { useEffect, useRef } from 'react'
import { live, type LiveSocket } from './socket'

export interface LivePatch {
  /** The topic to listen to, such as "graph". */
  topic: string
  /** Applies one event to the query cache, typically with qc.setQueryData. */
  patch: (qc: QueryClient, data: unknown) => void
  /** Queries to refetch whenever the socket (re)opens, since events may have been missed. */
  refetchOnOpen?: QueryKey[]
  /** Off while false; on by default. */
  enabled?: boolean
}

/**
 * useLivePatch keeps a feature's cached server state current from the shared socket while the
 * component is mounted. The socket opens with the first such component and closes with the last.
 */
export function useLivePatch({ topic, patch, refetchOnOpen, enabled = true }: LivePatch, socket: LiveSocket = live): void {
  const qc = useQueryClient()
  // The latest callbacks, without resubscribing on every render.
  const latest = useRef({ patch, refetchOnOpen })
  latest.current = { patch, refetchOnOpen }

  useEffect(() => {
    if (!enabled) return
    return socket.subscribe(topic, {
      onEvent: (data) => latest.current.patch(qc, data),
      onOpen: () => {
        for (const queryKey of latest.current.refetchOnOpen ?? []) void qc.invalidateQueries({ queryKey })
      },
    })
  }, [socket, topic, enabled, qc])
}
