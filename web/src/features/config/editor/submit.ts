// How the editor sends its YAML. New resources, and anything that is more than the one
// resource being edited, go through POST /api/v1/apply. The resource being edited goes
// through PUT with If-Match, because apply takes the last write as it comes: only the PUT
// makes the server refuse (409) a change based on a version someone else has replaced since.

import { isScalar, parseAllDocuments } from 'yaml'

/** The resource an edit started from: where it lives and the ETag it was read with. */
export interface EditTarget {
  plural: string
  kind: string
  namespace: string
  name: string
  etag: string | null
}

export type Plan = { via: 'apply' } | { via: 'put'; target: EditTarget }

/** planSubmit decides how to send text, given the resource the edit started from (if any). */
export function planSubmit(text: string, target: EditTarget | null): Plan {
  if (!target) return { via: 'apply' }
  const docs = parseAllDocuments(text)
  if (!Array.isArray(docs)) return { via: 'apply' }
  const nonEmpty = docs.filter((d) => d.contents !== null && !(isScalar(d.contents) && d.contents.value == null))
  if (nonEmpty.length !== 1 || nonEmpty[0]!.errors.length > 0) return { via: 'apply' }
  let doc: unknown
  try {
    doc = nonEmpty[0]!.toJS()
  } catch {
    return { via: 'apply' }
  }
  const obj = (v: unknown) => (v && typeof v === 'object' ? (v as Record<string, unknown>) : {})
  const meta = obj(obj(doc).metadata)
  const same =
    obj(doc).kind === target.kind &&
    meta.name === target.name &&
    (meta.namespace === undefined || meta.namespace === null || meta.namespace === target.namespace)
  return same ? { via: 'put', target } : { via: 'apply' }
}
