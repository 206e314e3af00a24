// @vitest-environment jsdom
import { cleanup, render, screen } from '@testing-library/react'
import { afterEach, describe, expect, it } from 'vitest'
import { MTLSShare } from './GraphPage'

afterEach(cleanup)

describe('MTLSShare', () => {
  it('shows a closed lock named for screen readers when all traffic was mutual TLS', () => {
    render(<MTLSShare share={1} />)
    expect(screen.getByRole('img', { name: 'Mutual TLS' })).toBeTruthy()
    expect(screen.getByText(/mTLS 100 %/)).toBeTruthy()
  })
  it('says when only part was, and shows a dash when nothing is known', () => {
    const { rerender } = render(<MTLSShare share={0.5} />)
    expect(screen.getByRole('img', { name: 'Partly mutual TLS' })).toBeTruthy()
    expect(screen.getByText(/mTLS 50 %/)).toBeTruthy()
    rerender(<MTLSShare share={0} />)
    expect(screen.getByRole('img', { name: 'No mutual TLS' })).toBeTruthy()
    rerender(<MTLSShare share={null} />)
    expect(screen.queryByRole('img')).toBeNull()
    expect(screen.getByText('—')).toBeTruthy()
  })
})
