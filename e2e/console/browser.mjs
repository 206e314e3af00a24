// Starts Debian's Chromium through playwright-core (installed with the console's npm packages
// in web/node_modules; never a browser downloaded by Playwright) and watches each page for
// what must never happen: a Content-Security-Policy violation or an uncaught script error.

import { mkdtempSync, mkdirSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const require = createRequire(new URL('../../web/package.json', import.meta.url))
const { chromium } = require('playwright-core')

export const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium'

// Flags for a closed network: without the background ones, Chromium keeps trying to reach
// Google's services at start-up.
const flags = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--no-default-browser-check',
]

/** Browser is one Chromium with a fresh profile, and what went wrong in its pages. */
export class Browser {
  /**
   * launch starts Chromium. With opts.profile, it uses (and keeps) that profile directory, so
   * that steps run one after another share a signed-in session; otherwise a fresh one.
   * @param {{ baseURL: string, screenshots: string, profile?: string }} opts
   */
  static async launch(opts) {
    const profile = opts.profile || mkdtempSync(join(tmpdir(), 'sluice-console-e2e-'))
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath,
      headless: true,
      args: flags,
      baseURL: opts.baseURL,
      viewport: { width: 1400, height: 900 },
      reducedMotion: 'reduce',
    })
    context.setDefaultTimeout(20_000)
    context.setDefaultNavigationTimeout(30_000)
    return new Browser(context, opts.profile ? null : profile, opts)
  }

  /** profile is the temporary profile directory to remove on close; null for a kept one. */
  constructor(context, profile, opts) {
    this.context = context
    this.profile = profile
    this.opts = opts
    /** @type {string[]} */
    this.problems = []
    mkdirSync(opts.screenshots, { recursive: true })
  }

  /** page returns the profile's page, watched for CSP violations and script errors. */
  async page() {
    const page = this.context.pages()[0] ?? (await this.context.newPage())
    if (!page.__watched) {
      page.__watched = true
      page.on('console', (msg) => {
        if (msg.type() === 'error' && /Content.Security.Policy/i.test(msg.text())) this.problems.push(`CSP: ${msg.text()}`)
      })
      page.on('pageerror', (err) => this.problems.push(`uncaught error: ${err.message}`))
    }
    return page
  }

  /** screenshot saves the page as e2e/screenshots/<name>.png. */
  async screenshot(page, name) {
    await page.screenshot({ path: join(this.opts.screenshots, `${name}.png`), fullPage: true })
  }

  async close() {
    await this.context.close().catch(() => {})
    if (this.profile) rmSync(this.profile, { recursive: true, force: true })
  }
}

/** check throws with message unless ok. */
export function check(ok, message) {
  if (!ok) throw new Error(message)
}

/** eventually retries fn until it stops throwing or the time is up; it returns fn's result. */
export async function eventually(what, fn, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs
  let last
  while (Date.now() < deadline) {
    try {
      return await fn()
    } catch (err) {
      last = err
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  throw new Error(`${what}: still failing after ${timeoutMs} ms: ${last?.message ?? last}`)
}
