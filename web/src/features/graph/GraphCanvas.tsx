import cytoscape, { type Core, type ElementDefinition } from 'cytoscape'
import { useEffect, useRef } from 'react'
import { edgeLabel, health, nodeTraffic, type GraphView } from './model'

/** What is selected: a node or an edge, by id. */
export type Selection = { kind: 'node' | 'edge'; id: string } | null

// Colours of the style sheet's --ok, --warn and --bad, and a grey for no traffic.
const colours = { ok: '#1d6b3a', warn: '#b36b00', bad: '#a4161a', idle: '#8a97a3' }

const style: cytoscape.StylesheetJson = [
  {
    selector: 'node',
    style: {
      label: 'data(label)',
      'font-size': 11,
      'text-valign': 'bottom',
      'text-margin-y': 4,
      'background-color': 'data(colour)',
      'border-width': 2,
      'border-color': '#ffffff',
      width: 26,
      height: 26,
      'min-zoomed-font-size': 7,
    },
  },
  { selector: 'node[type = "service"]', style: { shape: 'round-rectangle', width: 34 } },
  { selector: 'node[type = "gateway"]', style: { shape: 'diamond' } },
  { selector: 'node[type = "unknown"]', style: { shape: 'ellipse', 'background-color': '#8a97a3' } },
  {
    selector: 'edge',
    style: {
      label: 'data(label)',
      'font-size': 9,
      'text-rotation': 'autorotate',
      'text-background-color': '#ffffff',
      'text-background-opacity': 0.85,
      'text-background-padding': '1px',
      'line-color': 'data(colour)',
      'target-arrow-color': 'data(colour)',
      'target-arrow-shape': 'triangle',
      'curve-style': 'bezier',
      width: 2,
      'min-zoomed-font-size': 8,
    },
  },
  { selector: ':selected', style: { 'border-color': '#ffbf47', 'border-width': 4, 'line-color': '#0b63b6', 'target-arrow-color': '#0b63b6' } },
]

function nodeData(view: GraphView, id: string, label: string, type: string) {
  return { id, label, type, colour: colours[health(nodeTraffic(view, id).summary.successRate)] }
}

// Cytoscape adds a <style> element to the page for its container's position unless an element
// with this id is already there; the server's Content-Security-Policy refuses inline styles, so
// a placeholder stands in and styles.css gives .graph-canvas that position instead.
const cytoscapeStylesheetId = '__________cytoscape_stylesheet'

function preventInlineStylesheet() {
  if (document.getElementById(cytoscapeStylesheetId)) return
  const placeholder = document.createElement('meta')
  placeholder.id = cytoscapeStylesheetId
  placeholder.name = 'cytoscape-stylesheet'
  placeholder.content = 'in styles.css'
  document.head.appendChild(placeholder)
}

/**
 * syncElements makes the graph's elements those of view: it updates the data of the elements
 * that stay (in place: no element is recreated), adds the new ones and removes the gone ones,
 * in one batch. It reports whether nodes came or went, the only change that needs a new layout.
 */
export function syncElements(c: Core, view: GraphView): boolean {
  let structural = false
  c.batch(() => {
    const want = new Set<string>()
    const added: ElementDefinition[] = []
    for (const n of view.nodes) {
      want.add(n.id)
      const data = nodeData(view, n.id, n.label, n.type)
      const el = c.getElementById(n.id)
      if (el.nonempty()) el.data(data)
      else added.push({ group: 'nodes', data })
    }
    for (const e of view.edges) {
      want.add(e.id)
      const data = { id: e.id, source: e.source, target: e.target, label: edgeLabel(e), colour: colours[health(e.successRate)] }
      const el = c.getElementById(e.id)
      if (el.nonempty()) el.data(data)
      else added.push({ group: 'edges', data })
    }
    const gone = c.elements().filter((el) => !want.has(el.id()))
    if (gone.nonempty()) {
      if (gone.nodes().nonempty()) structural = true
      gone.remove()
    }
    if (added.length > 0) {
      if (added.some((a) => a.group === 'nodes')) structural = true
      c.add(added)
    }
  })
  return structural
}

/**
 * GraphCanvas draws the graph with Cytoscape on a canvas. The graph is created once; each new
 * view updates the data of the elements in place, adds and removes what changed, and lays the
 * graph out again only when nodes came or went, so a live update every second stays cheap
 * with hundreds of nodes.
 */
export function GraphCanvas({ view, selected, onSelect, label }: { view: GraphView; selected: Selection; onSelect: (s: Selection) => void; label: string }) {
  const container = useRef<HTMLDivElement>(null)
  const cy = useRef<Core | null>(null)
  const select = useRef(onSelect)
  select.current = onSelect

  useEffect(() => {
    preventInlineStylesheet()
    const c = cytoscape({
      container: container.current,
      style,
      wheelSensitivity: 0.3,
      minZoom: 0.1,
      maxZoom: 3,
      textureOnViewport: true,
      hideEdgesOnViewport: true,
      selectionType: 'single',
    })
    c.on('tap', 'node', (ev) => select.current({ kind: 'node', id: ev.target.id() }))
    c.on('tap', 'edge', (ev) => select.current({ kind: 'edge', id: ev.target.id() }))
    c.on('tap', (ev) => {
      if (ev.target === c) select.current(null)
    })
    cy.current = c
    // The side panel narrows the canvas: Cytoscape must measure it again.
    const ro = new ResizeObserver(() => c.resize())
    if (container.current) ro.observe(container.current)
    return () => {
      ro.disconnect()
      c.destroy()
      cy.current = null
    }
  }, [])

  useEffect(() => {
    const c = cy.current
    if (!c) return
    const structural = syncElements(c, view)
    if (structural) {
      // Callers on the left, what they call to their right: edges run across, where their
      // labels read best.
      c.layout({
        name: 'breadthfirst',
        directed: true,
        spacingFactor: 1.2,
        animate: false,
        fit: true,
        padding: 40,
        transform: (_n, p) => ({ x: p.y * 1.8, y: p.x }),
      }).run()
    }
  }, [view])

  useEffect(() => {
    const c = cy.current
    if (!c) return
    c.elements().unselect()
    if (selected) c.getElementById(selected.id).select()
  }, [selected, view])

  return <div ref={container} className="graph-canvas" role="img" aria-label={label} />
}
