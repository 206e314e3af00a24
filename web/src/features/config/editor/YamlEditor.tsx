// The YAML editor: CodeMirror 6, loaded only with the editor page. Problems the server finds
// are shown as diagnostics on their lines (and listed by the page, for screen readers).
//
// The editor lives in a shadow root. CodeMirror writes its styles at run time; in the page's
// own document it would do so with a <style> element, which the console's
// Content-Security-Policy (style-src 'self') refuses, while in a shadow root it uses a
// constructed style sheet, which CSP does not govern. So the policy stays strict, and the
// editor's look is set here with EditorView.theme, since the page's CSS does not reach in.

import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands'
import { yaml } from '@codemirror/lang-yaml'
import { bracketMatching, defaultHighlightStyle, indentOnInput, syntaxHighlighting } from '@codemirror/language'
import { lintGutter, setDiagnostics, type Diagnostic } from '@codemirror/lint'
import { EditorState } from '@codemirror/state'
import {
  drawSelection,
  EditorView,
  highlightActiveLine,
  highlightActiveLineGutter,
  keymap,
  lineNumbers,
} from '@codemirror/view'
import { useEffect, useImperativeHandle, useRef, type Ref } from 'react'

/** A problem to mark: offsets into the text, and what is wrong. */
export interface Problem {
  from: number
  to: number
  message: string
}

export interface YamlEditorHandle {
  text(): string
  /** setText replaces the whole text, as one undoable change. */
  setText(text: string): void
  /** setProblems replaces the marked problems; an empty list clears them. */
  setProblems(problems: Problem[]): void
  /** goToLine puts the cursor at the start of a line (1-based) and focuses the editor. */
  goToLine(line: number): void
}

export interface YamlEditorProps {
  initial: string
  /** The accessible name of the text box. */
  label: string
  /** The id of the help text that says how to leave the editor with the keyboard. */
  describedBy?: string
  onChange?: (text: string) => void
  readOnly?: boolean
  ref?: Ref<YamlEditorHandle>
}

const theme = EditorView.theme({
  '&': { minHeight: '20rem', maxHeight: '65vh', backgroundColor: '#ffffff', color: 'var(--ink, #17212b)' },
  '&.cm-focused': { outline: '3px solid var(--focus, #ffbf47)' },
  '.cm-scroller': { fontFamily: 'var(--mono, monospace)', fontSize: '0.9rem', lineHeight: '1.5' },
  '.cm-gutters': { backgroundColor: '#f0f3f7', color: '#4a5866', borderRight: '1px solid #d5dde5' },
})

export function YamlEditor({ initial, label, describedBy, onChange, readOnly = false, ref }: YamlEditorProps) {
  const host = useRef<HTMLDivElement>(null)
  const view = useRef<EditorView | null>(null)
  const changed = useRef(onChange)
  changed.current = onChange

  useEffect(() => {
    const el = host.current!
    // An effect may run twice (React's strict mode); a shadow root can be attached only once.
    const shadow = el.shadowRoot ?? el.attachShadow({ mode: 'open' })
    const v = new EditorView({
      root: shadow,
      parent: shadow,
      state: EditorState.create({
        doc: initial,
        extensions: [
          lineNumbers(),
          highlightActiveLineGutter(),
          history(),
          drawSelection(),
          indentOnInput(),
          bracketMatching(),
          syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
          highlightActiveLine(),
          // Tab indents (YAML is all indentation); Escape then Tab moves focus on, as
          // CodeMirror does for every editor that takes Tab.
          keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
          yaml(),
          lintGutter(),
          theme,
          EditorState.readOnly.of(readOnly),
          EditorView.contentAttributes.of({
            'aria-label': label,
            ...(describedBy ? { 'aria-describedby': describedBy } : {}),
          }),
          EditorView.updateListener.of((u) => {
            if (u.docChanged) changed.current?.(u.state.doc.toString())
          }),
        ],
      }),
    })
    view.current = v
    return () => {
      v.destroy()
      view.current = null
    }
    // The editor is created once; a new initial text means a new editor (give it a key).
  }, [])

  useImperativeHandle(
    ref,
    () => ({
      text: () => view.current?.state.doc.toString() ?? '',
      setText: (text) => {
        const v = view.current
        if (v) v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: text } })
      },
      setProblems: (problems) => {
        const v = view.current
        if (!v) return
        const len = v.state.doc.length
        const diags: Diagnostic[] = problems.map((p) => {
          const from = Math.min(p.from, len)
          return { from, to: Math.max(from, Math.min(p.to, len)), severity: 'error', message: p.message }
        })
        v.dispatch(setDiagnostics(v.state, diags))
      },
      goToLine: (line) => {
        const v = view.current
        if (!v) return
        const l = v.state.doc.line(Math.max(1, Math.min(line, v.state.doc.lines)))
        v.dispatch({ selection: { anchor: l.from }, scrollIntoView: true })
        v.focus()
      },
    }),
    [],
  )

  return <div className="editor" ref={host} />
}
