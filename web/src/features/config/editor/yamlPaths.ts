// Places the server's validation errors on the lines of the YAML the user wrote. The server
// locates each problem by a path into the input, such as
// "documents[1].spec.http[0].route[1].weight" or "spec.hosts[0]" (a PUT of one document);
// this walks the same path through the YAML's syntax tree, whose nodes know their offsets.

import { LineCounter, isMap, isPair, isScalar, isSeq, parseAllDocuments, type Document, type Node } from 'yaml'

/** A path segment: a field name, or what stood in brackets (a list index or a map key). */
export type Segment = { field: string } | { bracket: string }

export interface ParsedPath {
  /** The document's index among the input's non-empty documents; 0 when the path has none. */
  document: number
  segments: Segment[]
}

/** parsePath splits "documents[2].spec.http[0].headers[end-user].exact" into its segments. */
export function parsePath(path: string): ParsedPath {
  const segments: Segment[] = []
  let i = 0
  while (i < path.length) {
    const c = path[i]
    if (c === '.') {
      i++
    } else if (c === '[') {
      const end = path.indexOf(']', i + 1)
      const stop = end < 0 ? path.length : end
      segments.push({ bracket: path.slice(i + 1, stop) })
      i = stop + 1
    } else {
      let j = i
      while (j < path.length && path[j] !== '.' && path[j] !== '[') j++
      segments.push({ field: path.slice(i, j) })
      i = j
    }
  }
  let document = 0
  const [first, second] = segments
  if (first && 'field' in first && first.field === 'documents' && second && 'bracket' in second && /^\d+$/.test(second.bracket)) {
    document = Number(second.bracket)
    segments.splice(0, 2)
  }
  return { document, segments }
}

/** Where in the text a problem is. line is 1-based; from and to are offsets to highlight. */
export interface SourceLocation {
  line: number
  from: number
  to: number
  /**
   * Whether the whole path was found. When it was not (a required field that is missing, an
   * index past the end), the location is the deepest part of the path that exists.
   */
  exact: boolean
}

/** A YAML text parsed once, to locate any number of paths in it. */
export interface YamlIndex {
  locate(path: string, message?: string): SourceLocation
}

/** indexYaml parses text for locate. Syntax errors leave a partial tree, which still helps. */
export function indexYaml(text: string): YamlIndex {
  const lines = new LineCounter()
  const docs = parseAllDocuments(text, { lineCounter: lines, uniqueKeys: false })
  // The server skips documents that hold nothing (only comments, or null), and numbers the rest.
  const nonEmpty = (Array.isArray(docs) ? docs : []).filter((d) => !isEmptyDocument(d))

  const at = (from: number, to: number, exact: boolean): SourceLocation => {
    const clampedFrom = Math.max(0, Math.min(from, text.length))
    const clampedTo = Math.max(clampedFrom, Math.min(to, text.length))
    return { line: lines.linePos(clampedFrom).line, from: clampedFrom, to: clampedTo, exact }
  }
  const lineAt = (line: number): SourceLocation => {
    const starts = lines.lineStarts
    const n = Math.max(1, Math.min(line, starts.length))
    const from = starts[n - 1] ?? 0
    const next = starts[n]
    const to = next === undefined ? text.length : Math.max(from, next - 1)
    return { line: n, from, to, exact: true }
  }

  return {
    locate(path: string, message?: string): SourceLocation {
      const { document, segments } = parsePath(path)
      // A YAML syntax error names its line (counted in the whole input) in its message.
      const lineInMessage = message?.match(/\bline (\d+)\b/)
      if (segments.length === 0 && lineInMessage) return lineAt(Number(lineInMessage[1]))

      const doc = nonEmpty[document]
      const root = doc?.contents as Node | null | undefined
      if (!doc || !root?.range) return lineAt(1)

      let node: Node | null = root
      let loc = at(root.range[0], root.range[1], true)
      for (const seg of segments) {
        const next = step(node, seg)
        if (!next) return { ...loc, exact: false }
        loc = at(next.from, next.to, true)
        node = next.node
      }
      return loc
    },
  }
}

function isEmptyDocument(d: Document): boolean {
  const c = d.contents
  return c === null || (isScalar(c) && (c.value === null || c.value === undefined))
}

/** step goes one segment down from node: the next node, and the offsets to point at. */
function step(node: Node | null, seg: Segment): { node: Node | null; from: number; to: number } | null {
  if (!node) return null
  const name = 'field' in seg ? seg.field : seg.bracket
  if (isMap(node)) {
    const pair = findPair(node.items, name)
    if (!pair) return null
    const key = pair.key as Node | null
    const value = (pair.value as Node | null) ?? null
    const range = key?.range ?? value?.range
    if (!range) return null
    return { node: value, from: range[0], to: range[1] }
  }
  if (isSeq(node) && /^\d+$/.test(name)) {
    const item = node.items[Number(name)] as Node | null | undefined
    if (!item?.range) return null
    return { node: item, from: item.range[0], to: item.range[1] }
  }
  return null
}

// Field names match exactly, or else the way protobuf's JSON names do: "max_connections"
// and "maxConnections" are one field.
const loose = (s: string) => s.replace(/_/g, '').toLowerCase()

function findPair(items: unknown[], name: string) {
  const pairs = items.filter(isPair)
  const keyOf = (p: (typeof pairs)[number]) => (isScalar(p.key) ? String(p.key.value) : String(p.key))
  return pairs.find((p) => keyOf(p) === name) ?? pairs.find((p) => loose(keyOf(p)) === loose(name))
}
