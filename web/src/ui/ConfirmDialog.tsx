import { useEffect, useId, useRef, type ReactNode } from 'react'
import { describeError } from './States'

export interface ConfirmDialogProps {
  open: boolean
  title: string
  children: ReactNode
  confirmLabel: string
  onConfirm: () => void
  onCancel: () => void
  busy?: boolean
  error?: unknown
  /** Disables the confirm button, e.g. while what it would do is still loading. */
  confirmDisabled?: boolean
}

/**
 * ConfirmDialog asks before a change that affects the mesh. It is a modal <dialog>: focus
 * moves into it and stays there, Escape cancels, and focus returns where it was.
 */
export function ConfirmDialog(p: ConfirmDialogProps) {
  const ref = useRef<HTMLDialogElement>(null)
  const titleId = useId()

  useEffect(() => {
    const d = ref.current
    if (!d) return
    if (p.open && !d.open) {
      if (typeof d.showModal === 'function') d.showModal()
      else d.setAttribute('open', '')
    } else if (!p.open && d.open) {
      d.close()
    }
  }, [p.open])

  return (
    <dialog
      ref={ref}
      className="dialog"
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault()
        if (!p.busy) p.onCancel()
      }}
    >
      {p.open && (
        <>
          <h2 id={titleId}>{p.title}</h2>
          <div className="dialog-body">{p.children}</div>
          {p.error != null && (
            <p className="error-text" role="alert">
              {describeError(p.error)}
            </p>
          )}
          <div className="actions">
            <button type="button" onClick={p.onCancel} disabled={p.busy}>
              Cancel
            </button>
            <button type="button" className="primary" onClick={p.onConfirm} disabled={p.busy || p.confirmDisabled}>
              {p.busy ? 'Working…' : p.confirmLabel}
            </button>
          </div>
        </>
      )}
    </dialog>
  )
}
