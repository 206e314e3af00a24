import { describe, expect, it } from 'vitest'
import { loginPath, safeNext } from './next'

describe('loginPath', () => {
  it('remembers the page, its query and its fragment', () => {
    expect(loginPath({ pathname: '/config/virtualservices', search: '?namespace=prod', hash: '#x' })).toBe(
      '/login?next=%2Fconfig%2Fvirtualservices%3Fnamespace%3Dprod%23x',
    )
  })
  it('does not remember the overview or the login page itself', () => {
    expect(loginPath({ pathname: '/' })).toBe('/login')
    expect(loginPath({ pathname: '/login', search: '?next=%2Fproxies' })).toBe('/login')
  })
})

describe('safeNext', () => {
  const cases: [string | null, string][] = [
    ['/proxies', '/proxies'],
    ['/config/virtualservices?namespace=prod', '/config/virtualservices?namespace=prod'],
    [null, '/'],
    ['', '/'],
    ['https://evil.example/', '/'],
    ['//evil.example/path', '/'],
    ['/\\evil.example', '/'],
    ['javascript:alert(1)', '/'],
    ['/login?next=/proxies', '/'],
  ]
  for (const [next, want] of cases) {
    it(`${next} → ${want}`, () => expect(safeNext(next)).toBe(want))
  }
})
