import type { ReactNode } from 'react'
import { ApiError, NetworkError } from '../api/client'

/** Loading says what is being loaded, to sighted users and screen readers alike. */
export function Loading({ what }: { what: string }) {
  return (
    <p className="state state-loading" role="status">
      <span className="spinner" aria-hidden="true" /> Loading {what}…
    </p>
  )
}

/** describeError turns any error into a sentence a user can act on. */
export function describeError(err: unknown): string {
  if (err instanceof NetworkError) return 'sluice-server did not answer. Check that it is running; the console retries on its own.'
  if (err instanceof ApiError) {
    if (err.status === 403) return err.message || 'Your role does not allow this.'
    if (err.status === 404) return err.message || 'It does not exist (any more).'
    return err.message
  }
  if (err instanceof Error) return err.message
  return String(err)
}

/** ErrorState reports a failed load, with a way to try again. */
export function ErrorState({ what, error, retry }: { what: string; error: unknown; retry?: () => void }) {
  return (
    <div className="state state-error" role="alert">
      <p>
        <strong>Could not load {what}.</strong> {describeError(error)}
      </p>
      {retry && (
        <button type="button" onClick={retry}>
          Try again
        </button>
      )}
    </div>
  )
}

/** Empty says there is nothing to show, and what to do about it. */
export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="state state-empty">
      <p>
        <strong>{title}</strong>
      </p>
      {children}
    </div>
  )
}
