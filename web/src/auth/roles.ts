import type { Role } from '../api/types'

const rank: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 }

/** atLeast reports whether role is min or above (admin > operator > viewer), as the server checks. */
export function atLeast(role: Role | undefined, min: Role): boolean {
  return role !== undefined && rank[role] >= rank[min]
}

/** The role each kind of change needs; the server enforces the same table. */
export const needs = {
  /** Creating, editing and deleting resources. */
  write: 'admin',
  /** Rolling a resource or the mesh back. */
  rollback: 'operator',
  /** Changing how a service's traffic is split (the canary slider). */
  traffic: 'operator',
  /** Reading the audit log. */
  readAudit: 'operator',
  /** Managing users. */
  users: 'admin',
} as const satisfies Record<string, Role>
