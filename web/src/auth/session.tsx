// Who is signed in. The session itself is the server's HttpOnly cookie; the console only knows
// the user, the role and (inside the API client, in memory) the CSRF token. A reload restores
// them from GET /api/v1/whoami; a 401 from any request ends them and sends the user to the
// login page, remembering where they were.

import { useQueryClient } from '@tanstack/react-query'
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from 'react'
import { useLocation, useNavigate } from 'react-router'
import { api as defaultApi, type Api } from '../api/api'
import { ApiError } from '../api/client'
import type { Role } from '../api/types'
import { loginPath } from './next'

export interface User {
  username: string
  role: Role
}

export type SessionState =
  | { status: 'restoring' }
  | { status: 'signedOut'; reason?: 'expired' | 'signedOut' }
  | { status: 'signedIn'; user: User }
  /** whoami failed for another reason than 401: the server is down or broken. */
  | { status: 'unknown'; error: unknown }

export interface Session {
  state: SessionState
  signIn(username: string, password: string): Promise<void>
  signOut(): Promise<void>
  /** retry asks the server again who is signed in, after 'unknown'. */
  retry(): void
}

const SessionContext = createContext<Session | null>(null)

export function SessionProvider({ children, api = defaultApi }: { children: ReactNode; api?: Api }) {
  const [state, setState] = useState<SessionState>({ status: 'restoring' })
  const [attempt, setAttempt] = useState(0)
  const navigate = useNavigate()
  const qc = useQueryClient()
  // Where the user is when a 401 arrives, read when it arrives.
  const location = useLocation()
  const here = useRef(location)
  here.current = location

  useEffect(() => {
    let cancelled = false
    api.whoami().then(
      (w) => !cancelled && setState({ status: 'signedIn', user: { username: w.username, role: w.role } }),
      (err: unknown) => {
        if (cancelled) return
        if (err instanceof ApiError && err.status === 401) setState({ status: 'signedOut' })
        else setState({ status: 'unknown', error: err })
      },
    )
    return () => {
      cancelled = true
    }
  }, [api, attempt])

  // Any request refused with 401 means the session is over (expired, revoked, signed out in
  // another tab): forget everything and go to the login page, to come back here after.
  useEffect(
    () =>
      api.client.onUnauthorized(() => {
        api.client.setCsrfToken(null)
        setState((s) => (s.status === 'signedOut' ? s : { status: 'signedOut', reason: 'expired' }))
        qc.clear()
        if (here.current.pathname !== '/login') navigate(loginPath(here.current), { replace: true })
      }),
    [api, qc, navigate],
  )

  const signIn = useCallback(
    async (username: string, password: string) => {
      const l = await api.login(username, password)
      qc.clear()
      setState({ status: 'signedIn', user: { username: l.username, role: l.role } })
    },
    [api, qc],
  )

  const signOut = useCallback(async () => {
    try {
      await api.logout()
    } finally {
      qc.clear()
      setState({ status: 'signedOut', reason: 'signedOut' })
      navigate('/login', { replace: true })
    }
  }, [api, qc, navigate])

  const retry = useCallback(() => {
    setState({ status: 'restoring' })
    setAttempt((n) => n + 1)
  }, [])

  const value = useMemo(() => ({ state, signIn, signOut, retry }), [state, signIn, signOut, retry])
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>
}

/** useSession returns the session; it must be used inside SessionProvider. */
export function useSession(): Session {
  const s = useContext(SessionContext)
  if (!s) throw new Error('useSession outside SessionProvider')
  return s
}

/** useUser returns the signed-in user; it must be used on a page behind RequireSession. */
export function useUser(): User {
  const { state } = useSession()
  if (state.status !== 'signedIn') throw new Error('useUser without a signed-in user')
  return state.user
}
