import { Link } from 'react-router'
import { usePageTitle } from '../ui/usePageTitle'

export function NotFoundPage() {
  usePageTitle('Not found')
  return (
    <>
      <h1>Page not found</h1>
      <p>
        There is no console page at this address. Go to the <Link to="/">overview</Link>.
      </p>
    </>
  )
}
