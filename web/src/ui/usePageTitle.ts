import { useEffect } from 'react'

/** usePageTitle names the browser tab after the page. */
export function usePageTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · Sluice` : 'Sluice'
  }, [title])
}
