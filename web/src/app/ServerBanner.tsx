import { useQueryClient } from '@tanstack/react-query'
import { useEffect, useSyncExternalStore } from 'react'
import { api } from '../api/api'

/** How often the banner asks a server that stopped answering whether it is back. */
const probeEveryMs = 5000

/**
 * ServerBanner says so, at the top of every page, when sluice-server stops answering: the page
 * keeps what it last showed instead of going blank. It probes /healthz until the server is
 * back, then refreshes everything on screen.
 */
export function ServerBanner() {
  const online = useSyncExternalStore(api.client.subscribeConnectivity, api.client.isOnline)
  const qc = useQueryClient()

  useEffect(() => {
    if (online) return
    const probe = () => api.healthz().catch(() => {})
    const timer = setInterval(probe, probeEveryMs)
    return () => clearInterval(timer)
  }, [online])

  useEffect(
    () =>
      api.client.subscribeConnectivity((up) => {
        if (up) void qc.invalidateQueries()
      }),
    [qc],
  )

  if (online) return null
  return (
    <div className="banner banner-error" role="alert">
      <strong>sluice-server is not answering.</strong> What you see may be out of date, and changes cannot be saved
      until it is back. The console checks again every few seconds.{' '}
      <button type="button" onClick={() => void api.healthz().catch(() => {})}>
        Check now
      </button>
    </div>
  )
}
