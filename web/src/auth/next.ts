// Where to go after signing in: the page the user was on when the session ended.

/** loginPath is the login page's address, remembering where to come back to. */
export function loginPath(from: { pathname: string; search?: string; hash?: string }): string {
  const here = from.pathname + (from.search ?? '') + (from.hash ?? '')
  if (from.pathname === '/login' || here === '/') return '/login'
  return '/login?next=' + encodeURIComponent(here)
}

/**
 * safeNext returns next if it is a path on this site, and "/" otherwise: a link to the login
 * page must not be able to send a user who signs in to another site.
 */
export function safeNext(next: string | null | undefined): string {
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '/'
  if (next === '/login' || next.startsWith('/login?') || next.startsWith('/login#')) return '/'
  return next
}
