import { Suspense, useEffect, useRef } from 'react'
import { NavLink, Outlet, useLocation } from 'react-router'
import type { Role } from '../api/types'
import { atLeast, needs } from '../auth/roles'
import { useSession, useUser } from '../auth/session'
import { Loading } from '../ui/States'
import { ServerBanner } from './ServerBanner'

const sections: { to: string; label: string; end: boolean; min?: Role }[] = [
  { to: '/', label: 'Overview', end: true },
  { to: '/graph', label: 'Traffic graph', end: false },
  { to: '/experiments', label: 'Experiments', end: false },
  { to: '/config', label: 'Config', end: false },
  { to: '/revisions', label: 'Revisions', end: false },
  { to: '/proxies', label: 'Proxies', end: false },
  { to: '/audit', label: 'Audit log', end: false, min: needs.readAudit },
  { to: '/access', label: 'Users and tokens', end: false },
]

/** Layout is every signed-in page: the sidebar, the server banner, and the page. */
export function Layout() {
  const user = useUser()
  const { signOut } = useSession()
  const location = useLocation()
  const main = useRef<HTMLElement>(null)
  const first = useRef(true)

  // After a navigation, move focus to the new page, as a full page load would, so that
  // keyboard and screen reader users start reading it from the top.
  useEffect(() => {
    if (first.current) {
      first.current = false
      return
    }
    main.current?.focus({ preventScroll: false })
  }, [location.pathname])

  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <aside className="sidebar">
        <div className="brand">
          <img src="/favicon.svg" alt="" width={24} height={24} /> Sluice
        </div>
        <nav aria-label="Main">
          <ul>
            {sections.filter((s) => !s.min || atLeast(user.role, s.min)).map((s) => (
              <li key={s.to}>
                <NavLink to={s.to} end={s.end}>
                  {s.label}
                </NavLink>
              </li>
            ))}
          </ul>
        </nav>
        <div className="whoami">
          <p>
            Signed in as <strong>{user.username}</strong>
            <br />
            <span className="muted">{user.role} role</span>
          </p>
          <button type="button" onClick={() => void signOut()}>
            Sign out
          </button>
        </div>
      </aside>
      <div className="content">
        <ServerBanner />
        <main id="main" ref={main} tabIndex={-1}>
          <Suspense fallback={<Loading what="the page" />}>
            <Outlet />
          </Suspense>
        </main>
      </div>
    </div>
  )
}
