import type { ReactNode } from 'react'
import { Navigate, useLocation } from 'react-router'
import { Loading, describeError } from '../ui/States'
import { loginPath } from './next'
import { useSession } from './session'

/** RequireSession shows its children to a signed-in user, and sends anyone else to sign in. */
export function RequireSession({ children }: { children: ReactNode }) {
  const { state, retry } = useSession()
  const location = useLocation()
  switch (state.status) {
    case 'restoring':
      return (
        <div className="fullpage">
          <Loading what="your session" />
        </div>
      )
    case 'unknown':
      return (
        <div className="fullpage">
          <div className="card" role="alert">
            <h1>Cannot reach sluice-server</h1>
            <p>{describeError(state.error)}</p>
            <button type="button" className="primary" onClick={retry}>
              Try again
            </button>
          </div>
        </div>
      )
    case 'signedOut':
      return <Navigate to={loginPath(location)} replace />
    case 'signedIn':
      return children
  }
}
