import { useState, type FormEvent } from 'react'
import { Navigate, useNavigate, useSearchParams } from 'react-router'
import { ApiError } from '../api/client'
import { describeError } from '../ui/States'
import { usePageTitle } from '../ui/usePageTitle'
import { safeNext } from './next'
import { useSession } from './session'

/** LoginPage signs a user in with a password, then returns to where they were going. */
export function LoginPage() {
  usePageTitle('Sign in')
  const { state, signIn } = useSession()
  const [params] = useSearchParams()
  const next = safeNext(params.get('next'))
  const navigate = useNavigate()
  const [username, setUsername] = useState('')
  const [password, setPassword] = useState('')
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)

  if (state.status === 'signedIn' && !busy) return <Navigate to={next} replace />

  async function submit(e: FormEvent) {
    e.preventDefault()
    setBusy(true)
    setError(null)
    try {
      await signIn(username, password)
      navigate(next, { replace: true })
    } catch (err) {
      setError(loginError(err))
      setBusy(false)
    }
  }

  return (
    <div className="fullpage login">
      <main className="card login-card" id="main">
        <div className="brand brand-large" aria-hidden="true">
          <img src="/favicon.svg" alt="" width={32} height={32} /> Sluice
        </div>
        <h1>Sign in</h1>
        {state.status === 'signedOut' && state.reason === 'expired' && (
          <p className="notice" role="status">
            Your session ended. Sign in again to continue where you were.
          </p>
        )}
        {state.status === 'unknown' && (
          <p className="notice notice-error" role="alert">
            {describeError(state.error)}
          </p>
        )}
        <form onSubmit={submit} aria-describedby={error ? 'login-error' : undefined}>
          <label htmlFor="username">Username</label>
          <input
            id="username"
            name="username"
            autoComplete="username"
            required
            autoFocus
            value={username}
            onChange={(e) => setUsername(e.target.value)}
          />
          <label htmlFor="password">Password</label>
          <input
            id="password"
            name="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
          {error && (
            <p id="login-error" className="error-text" role="alert">
              {error}
            </p>
          )}
          <button type="submit" className="primary" disabled={busy}>
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </form>
      </main>
    </div>
  )
}

function loginError(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 401) return 'Wrong username or password.'
    if (err.status === 429) return 'Too many attempts. Wait a little, then try again.'
  }
  return describeError(err)
}
