import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useState, type FormEvent } from 'react'
import { api } from '../../api/api'
import { keys } from '../../api/queries'
import type { NewToken, Role, User } from '../../api/types'
import { atLeast, needs } from '../../auth/roles'
import { useUser } from '../../auth/session'
import { ConfirmDialog } from '../../ui/ConfirmDialog'
import { describeError, Empty, ErrorState, Loading } from '../../ui/States'
import { Ago } from '../../ui/Time'
import { usePageTitle } from '../../ui/usePageTitle'

const roles: Role[] = ['viewer', 'operator', 'admin']

/** AccessPage is who may use the mesh: users (admins manage them) and the signed-in user's API tokens. */
export function AccessPage() {
  usePageTitle('Users and tokens')
  const user = useUser()
  return (
    <>
      <header className="page-header">
        <h1>Users and tokens</h1>
        <p className="muted">API tokens let sluicectl and scripts act as you, with your role or a lower one.</p>
      </header>
      <Tokens />
      {atLeast(user.role, needs.users) && <Users self={user.username} />}
    </>
  )
}

function Tokens() {
  const qc = useQueryClient()
  const q = useQuery({ queryKey: keys.tokens, queryFn: () => api.tokens() })
  const [name, setName] = useState('')
  const [expiresIn, setExpiresIn] = useState('720h')
  const [created, setCreated] = useState<NewToken | null>(null)
  const [copied, setCopied] = useState(false)
  const [revoking, setRevoking] = useState<{ id: string; name: string } | null>(null)
  const create = useMutation({
    mutationFn: () => api.createToken(name.trim(), expiresIn),
    onSuccess: (t) => {
      setCreated(t)
      setCopied(false)
      setName('')
      void qc.invalidateQueries({ queryKey: keys.tokens })
    },
  })
  const revoke = useMutation({
    mutationFn: (id: string) => api.revokeToken(id),
    onSettled: () => {
      setRevoking(null)
      void qc.invalidateQueries({ queryKey: keys.tokens })
    },
  })
  const submit = (e: FormEvent) => {
    e.preventDefault()
    create.mutate()
  }
  const copy = async () => {
    if (!created) return
    try {
      await navigator.clipboard.writeText(created.token)
      setCopied(true)
    } catch {
      setCopied(false)
    }
  }

  return (
    <section aria-labelledby="tokens-title">
      <h2 id="tokens-title">API tokens</h2>
      <form className="inline-form" onSubmit={submit} aria-label="Create a token">
        <div>
          <label htmlFor="token-name">Token name</label>
          <input id="token-name" required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} placeholder="ci-deploy" />
        </div>
        <div>
          <label htmlFor="token-expiry">Expires in</label>
          <select id="token-expiry" value={expiresIn} onChange={(e) => setExpiresIn(e.target.value)}>
            <option value="24h">1 day</option>
            <option value="168h">7 days</option>
            <option value="720h">30 days</option>
            <option value="2160h">90 days</option>
          </select>
        </div>
        <button type="submit" className="button primary" disabled={create.isPending || !name.trim()}>
          Create token
        </button>
      </form>
      {create.isError && (
        <p className="notice notice-error" role="alert">
          The token was not created: {describeError(create.error)}
        </p>
      )}
      {created && (
        <div className="notice" role="status">
          <p>
            <strong>Token {created.name} created.</strong> Copy it now: it is shown this once and cannot be read again.
          </p>
          <div className="secret">
            <code aria-label="New token">{created.token}</code>
            <button type="button" onClick={() => void copy()}>
              {copied ? 'Copied' : 'Copy token'}
            </button>
            <button type="button" onClick={() => setCreated(null)}>
              Done
            </button>
          </div>
        </div>
      )}
      {q.isPending ? (
        <Loading what="your tokens" />
      ) : q.isError ? (
        <ErrorState what="the tokens" error={q.error} retry={() => void q.refetch()} />
      ) : q.data.tokens.length === 0 ? (
        <Empty title="No API token yet." />
      ) : (
        <table className="data compact">
          <caption className="visually-hidden">API tokens</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">User</th>
              <th scope="col">Role</th>
              <th scope="col">Created</th>
              <th scope="col">Expires</th>
              <th scope="col">Last used</th>
              <th scope="col">State</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {q.data.tokens.map((t) => {
              const expired = new Date(t.expiresAt).getTime() < Date.now()
              return (
                <tr key={t.id}>
                  <th scope="row">{t.name}</th>
                  <td>{t.username}</td>
                  <td>{t.role}</td>
                  <td>
                    <Ago t={t.createdAt} />
                  </td>
                  <td>
                    <Ago t={t.expiresAt} />
                  </td>
                  <td>
                    <Ago t={t.lastUsedAt} />
                  </td>
                  <td>{t.revoked ? <span className="pill pill-bad">Revoked</span> : expired ? <span className="pill">Expired</span> : <span className="pill pill-ok">Active</span>}</td>
                  <td className="actions">
                    {!t.revoked && !expired && (
                      <button type="button" className="danger" onClick={() => setRevoking({ id: t.id, name: t.name })} aria-label={`Revoke token ${t.name}`}>
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              )
            })}
          </tbody>
        </table>
      )}
      {revoke.isError && (
        <p className="notice notice-error" role="alert">
          Not revoked: {describeError(revoke.error)}
        </p>
      )}
      <ConfirmDialog
        open={revoking !== null}
        title={`Revoke the token ${revoking?.name ?? ''}?`}
        confirmLabel="Revoke"
        busy={revoke.isPending}
        onConfirm={() => revoking && revoke.mutate(revoking.id)}
        onCancel={() => setRevoking(null)}
      >
        <p>Whatever uses it stops working at once.</p>
      </ConfirmDialog>
    </section>
  )
}

function Users({ self }: { self: string }) {
  const qc = useQueryClient()
  const q = useQuery({ queryKey: keys.users, queryFn: () => api.users() })
  const [form, setForm] = useState({ username: '', password: '', role: 'viewer' as Role })
  const [deleting, setDeleting] = useState<string | null>(null)
  const refresh = () => void qc.invalidateQueries({ queryKey: keys.users })
  const create = useMutation({
    mutationFn: () => api.createUser(form.username.trim(), form.password, form.role),
    onSuccess: () => {
      setForm({ username: '', password: '', role: 'viewer' })
      refresh()
    },
  })
  const setRole = useMutation({ mutationFn: ({ u, role }: { u: string; role: Role }) => api.setUserRole(u, role), onSettled: refresh })
  const remove = useMutation({
    mutationFn: (u: string) => api.deleteUser(u),
    onSettled: () => {
      setDeleting(null)
      refresh()
    },
  })
  const submit = (e: FormEvent) => {
    e.preventDefault()
    create.mutate()
  }
  const failure = create.error ?? setRole.error ?? remove.error

  return (
    <section aria-labelledby="users-title">
      <h2 id="users-title">Users</h2>
      <form className="inline-form" onSubmit={submit} aria-label="New user">
        <div>
          <label htmlFor="user-name">Username</label>
          <input id="user-name" required maxLength={64} autoComplete="off" value={form.username} onChange={(e) => setForm({ ...form, username: e.target.value })} />
        </div>
        <div>
          <label htmlFor="user-password">Password</label>
          <input id="user-password" type="password" required autoComplete="new-password" value={form.password} onChange={(e) => setForm({ ...form, password: e.target.value })} />
        </div>
        <div>
          <label htmlFor="user-role">Role</label>
          <select id="user-role" value={form.role} onChange={(e) => setForm({ ...form, role: e.target.value as Role })}>
            {roles.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </div>
        <button type="submit" className="button primary" disabled={create.isPending}>
          Create user
        </button>
      </form>
      {failure && (
        <p className="notice notice-error" role="alert">
          {describeError(failure)}
        </p>
      )}
      {q.isPending ? (
        <Loading what="the users" />
      ) : q.isError ? (
        <ErrorState what="the users" error={q.error} retry={() => void q.refetch()} />
      ) : (
        <table className="data compact">
          <caption className="visually-hidden">Users</caption>
          <thead>
            <tr>
              <th scope="col">Username</th>
              <th scope="col">Role</th>
              <th scope="col">Created</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {q.data.users.map((u: User) => (
              <tr key={u.username}>
                <th scope="row">{u.username}</th>
                <td>
                  <select
                    aria-label={`Role of ${u.username}`}
                    value={u.role}
                    disabled={u.username === self || setRole.isPending}
                    title={u.username === self ? 'You cannot change your own role' : undefined}
                    onChange={(e) => setRole.mutate({ u: u.username, role: e.target.value as Role })}
                  >
                    {roles.map((r) => (
                      <option key={r}>{r}</option>
                    ))}
                  </select>
                </td>
                <td>
                  <Ago t={u.createdAt} />
                </td>
                <td className="actions">
                  {u.username !== self && (
                    <button type="button" className="danger" onClick={() => setDeleting(u.username)} aria-label={`Delete user ${u.username}`}>
                      Delete
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <ConfirmDialog
        open={deleting !== null}
        title={`Delete the user ${deleting ?? ''}?`}
        confirmLabel="Delete"
        busy={remove.isPending}
        onConfirm={() => deleting && remove.mutate(deleting)}
        onCancel={() => setDeleting(null)}
      >
        <p>Their sessions end and their tokens stop working.</p>
      </ConfirmDialog>
    </section>
  )
}
