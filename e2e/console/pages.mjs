// Page objects of the console. They find everything by its role and accessible name, as a
// user of assistive technology would, so a test that passes also shows the page is usable
// that way; none relies on a CSS class, except to read CodeMirror's text, which has no role.

import { check, eventually } from './browser.mjs'

/** The sidebar and what every signed-in page shares. */
export class Shell {
  constructor(page) {
    this.page = page
    this.nav = page.getByRole('navigation', { name: 'Main' })
    this.banner = page.getByRole('alert').filter({ hasText: 'sluice-server is not answering' })
  }

  heading(name) {
    return this.page.getByRole('heading', { level: 1, name })
  }

  async go(section) {
    await this.nav.getByRole('link', { name: section, exact: true }).click()
    await this.heading(section).waitFor()
  }

  async signOut() {
    await this.page.getByRole('button', { name: 'Sign out' }).click()
    await this.page.waitForURL('**/login')
  }
}

export class LoginPage {
  constructor(page) {
    this.page = page
    this.username = page.getByLabel('Username')
    this.password = page.getByLabel('Password')
    this.submit = page.getByRole('button', { name: 'Sign in' })
  }

  async open() {
    await this.page.goto('/login')
    await this.username.waitFor()
  }

  async signIn(username, password) {
    await this.username.fill(username)
    await this.password.fill(password)
    await this.submit.click()
  }

  async error() {
    return this.page.getByRole('alert').textContent()
  }
}

export class ConfigPage {
  constructor(page) {
    this.page = page
    this.kinds = page.getByRole('navigation', { name: 'Kinds' })
    this.namespace = page.getByLabel('Namespace')
    this.table = page.getByRole('table')
  }

  async openKind(label) {
    await this.kinds.getByRole('link', { name: new RegExp(`^${label}`) }).click()
    await this.page.getByRole('heading', { level: 2, name: label }).waitFor()
  }

  /** names lists the resource names in the table (the row headers). */
  async names() {
    await this.table.or(this.page.getByText(/^No /)).first().waitFor()
    return this.table.getByRole('rowheader').allTextContents()
  }

  async newResource() {
    await this.page.getByRole('link', { name: 'New resource' }).click()
    await this.page.getByRole('heading', { level: 1, name: 'New resource' }).waitFor()
    return new EditorPage(this.page)
  }
}

export class EditorPage {
  constructor(page) {
    this.page = page
    this.editor = page.getByRole('textbox', { name: 'Resource YAML' })
    this.validateButton = page.getByRole('button', { name: 'Validate' })
    this.applyButton = page.getByRole('button', { name: 'Apply' })
    this.problems = page.getByRole('list', { name: 'Problems' })
  }

  async text() {
    await this.editor.waitFor()
    return this.editor.evaluate((el) => [...el.querySelectorAll('.cm-line')].map((l) => l.textContent).join('\n'))
  }

  /**
   * setText replaces the editor's text as a user pasting it would: select all, then paste.
   * (Playwright's fill types into the editable element, which turns runs of spaces into
   * no-break spaces, fatal to YAML.) It checks that the editor took the text as it is.
   */
  async setText(yaml) {
    await this.editor.click()
    await this.page.keyboard.press('ControlOrMeta+A')
    await this.editor.evaluate((el, text) => {
      const data = new DataTransfer()
      data.setData('text/plain', text)
      el.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }))
    }, yaml)
    const got = await this.text()
    check(got.trimEnd() === yaml.trimEnd(), `the editor holds:\n${got}\ninstead of:\n${yaml}`)
  }

  async validate() {
    await this.validateButton.click()
    return this.result()
  }

  async apply() {
    await this.applyButton.click()
    return this.result()
  }

  /** result waits for the answer to the last Validate or Apply, and returns its heading. */
  async result() {
    const heading = this.page.getByRole('heading', { level: 2, name: /^(Valid|Applied as revision|Nothing changed|Not valid|Not saved)/ })
    await heading.waitFor()
    await eventually('the buttons are enabled again', async () => check(await this.applyButton.isEnabled(), 'still busy'))
    return heading.textContent()
  }

  /** problemList returns the listed problems' texts. */
  async problemList() {
    return this.problems.getByRole('listitem').allTextContents()
  }

  /**
   * goToProblem follows a problem's "Line N" button and returns the text of the line the
   * cursor is then on (CodeMirror marks it as the active line), once the editor has focus.
   */
  async goToProblem(index) {
    await this.problems.getByRole('listitem').nth(index).getByRole('button').click()
    return eventually('the editor has focus', async () => {
      const line = await this.editor.evaluate((el) =>
        el.getRootNode().activeElement === el ? el.querySelector('.cm-activeLine')?.textContent : null,
      )
      check(line != null, 'not focused')
      return line
    })
  }
}

export class ResourcePage {
  constructor(page) {
    this.page = page
  }

  async open(plural, namespace, name, view = '') {
    await this.page.goto(`/config/${plural}/${namespace}/${name}${view ? '/' + view : ''}`)
    await this.page.getByRole('heading', { level: 1, name: new RegExp(`${namespace}/${name}`) }).waitFor()
  }

  async edit() {
    await this.page.getByRole('link', { name: 'Edit' }).click()
    await this.page.getByRole('heading', { level: 1, name: /^Edit/ }).waitFor()
    const e = new EditorPage(this.page)
    await e.editor.waitFor()
    return e
  }

  async history() {
    await this.page.getByRole('navigation', { name: 'Resource views' }).getByRole('link', { name: 'History' }).click()
    await this.page.getByRole('heading', { level: 2, name: 'History' }).waitFor()
  }

  /** revisions lists the revision numbers in the history table, newest first. */
  async revisions() {
    const table = this.page.getByRole('table', { name: /Revisions that changed/ })
    await table.waitFor()
    return (await table.getByRole('rowheader').allTextContents()).map(Number)
  }

  /** diffTable is the side-by-side diff of the revision shown. */
  diffTable() {
    return this.page.getByRole('table', { name: /What revision \d+ changed/ })
  }

  async rollbackTo(revision) {
    await this.page.getByRole('button', { name: `Roll back to revision ${revision}` }).click()
    const dialog = this.page.getByRole('dialog', { name: `Roll` })
    await dialog.getByRole('table', { name: /What the rollback changes/ }).waitFor()
    await dialog.getByRole('button', { name: 'Roll back' }).click()
    await this.page.getByRole('status').filter({ hasText: `Rolled back to revision ${revision}` }).waitFor()
    return dialog
  }
}

export class RevisionsPage {
  constructor(page) {
    this.page = page
  }

  async open() {
    await this.page.goto('/revisions')
    await this.page.getByRole('heading', { level: 1, name: 'Revisions' }).waitFor()
    await this.page.getByRole('list').filter({ has: this.page.getByRole('heading', { level: 2 }) }).first().waitFor()
  }

  async showChanges(revision) {
    await this.page.getByRole('button', { name: `Show changes of revision ${revision}` }).click()
  }

  async rollbackMeshTo(revision) {
    await this.page.getByRole('button', { name: `Roll the mesh back to revision ${revision}` }).click()
    const dialog = this.page.getByRole('dialog', { name: `Roll the whole mesh back to revision ${revision}?` })
    await dialog.getByRole('table').first().waitFor()
    await dialog.getByRole('button', { name: 'Roll back the mesh' }).click()
    await this.page.getByRole('status').filter({ hasText: `Rolled the mesh back to revision ${revision}` }).waitFor()
  }
}

export class ProxiesPage {
  constructor(page) {
    this.page = page
    this.table = page.getByRole('table', { name: 'Proxies and their configuration state' })
  }

  /** row returns the row of a service's proxy. */
  row(service) {
    return this.table.getByRole('row').filter({ has: this.page.getByRole('rowheader', { name: service, exact: true }) })
  }
}

/** The traffic graph: the canvas, and the table of the same edges under it. */
export class GraphPage {
  constructor(page) {
    this.page = page
    this.canvas = page.getByRole('img', { name: /^Traffic graph: \d+ nodes/ })
    this.edges = page.getByRole('table', { name: /Traffic between nodes/ })
    this.versions = page.getByRole('checkbox', { name: 'Show versions' })
    this.namespace = page.getByLabel('Namespace')
  }

  async open() {
    await this.page.goto('/graph')
    await this.page.getByRole('heading', { level: 1, name: 'Traffic graph' }).waitFor()
  }

  /** edge returns the row of the edge from one node to another, by their labels. */
  edge(from, to) {
    return this.edges.getByRole('rowheader', { name: `${from} to ${to}`, exact: true })
  }

  /**
   * rows returns the edges table as shown: one object per edge, keyed by column (From, To,
   * Rate, Success, p99, mTLS).
   */
  async rows() {
    return this.edges.evaluate((table) => {
      const headers = [...table.querySelectorAll('thead th')].map((th) => th.textContent.trim())
      return [...table.querySelectorAll('tbody tr')].map((tr) =>
        Object.fromEntries([...tr.querySelectorAll('td, th')].map((c, i) => [headers[i], c.textContent.trim()])),
      )
    })
  }

  /** details opens the side panel of the edge from → to and returns it. */
  async details(from, to) {
    await this.edge(from, to).getByRole('button').click()
    const panel = this.page.getByRole('complementary', { name: `${from} → ${to}` })
    await panel.waitFor()
    return panel
  }
}

/** A service's page: versions, the canary slider, charts, routes and the tap. */
export class ServicePage {
  constructor(page, service) {
    this.page = page
    this.service = service
    this.applyButton = page.getByRole('button', { name: 'Apply', exact: true })
    this.rollbackButton = page.getByRole('button', { name: 'Roll back', exact: true })
    this.status = page.getByRole('status').filter({ hasText: /revision \d+/ })
  }

  async open(namespace) {
    await this.page.goto(`/services/${namespace}/${this.service}`)
    await this.page.getByRole('heading', { level: 1, name: this.service }).waitFor()
    await this.page.getByRole('heading', { level: 2, name: 'Traffic split' }).waitFor()
  }

  slider(version) {
    return this.page.getByRole('slider', { name: `${this.service} ${version} weight` })
  }

  async weight(version) {
    return Number(await this.slider(version).inputValue())
  }

  /** setWeight moves a slider from the keyboard, as a user would: Home, then arrows. */
  async setWeight(version, value) {
    const s = this.slider(version)
    await s.focus()
    await this.page.keyboard.press('Home')
    for (let i = 0; i < value; i++) await this.page.keyboard.press('ArrowRight')
    check((await this.weight(version)) === value, `the ${version} slider is at ${await this.weight(version)}, want ${value}`)
  }

  /**
   * propagated waits until the panel says the change reached every sidecar, and returns the
   * message, which is "<what>: revision R applied to N/M sidecars in X ms."
   */
  async propagated(what) {
    const done = this.page.getByText(new RegExp(`^${what}: revision \\d+ applied to (\\d+)/\\1 sidecars in \\d+ ms\\.$`))
    await done.waitFor({ timeout: 40_000 })
    return done.textContent()
  }
}

export class ExperimentsPage {
  constructor(page) {
    this.page = page
    this.running = page.getByRole('table', { name: 'Running and scheduled experiments' })
    this.past = page.getByRole('table', { name: /Past experiment runs/ })
  }

  async open() {
    await this.page.goto('/experiments')
    await this.page.getByRole('heading', { level: 1, name: 'Experiments' }).waitFor()
  }

  /** create fills the form: fields by label, checkboxes by name (true to tick). */
  async create(fields, boxes) {
    for (const [name, on] of Object.entries(boxes)) await this.page.getByRole('checkbox', { name }).setChecked(on)
    for (const [label, value] of Object.entries(fields)) await this.page.getByLabel(label, { exact: true }).fill(value)
    await this.page.getByRole('button', { name: 'Start experiment' }).click()
    await this.page.getByRole('status').filter({ hasText: /applied: it starts now/ }).waitFor()
  }

  runningRow(name) {
    return this.running.getByRole('row').filter({ has: this.page.getByRole('rowheader', { name }) })
  }
}

export class AuditPage {
  constructor(page) {
    this.page = page
    this.table = page.getByRole('table', { name: /Audit log entries/ })
  }

  async open() {
    await this.page.goto('/audit')
    await this.page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor()
  }

  async filter(fields) {
    for (const [label, value] of Object.entries(fields)) await this.page.getByLabel(label, { exact: true }).fill(value)
    await this.page.getByRole('button', { name: 'Filter' }).click()
  }

  async actors() {
    await this.table.waitFor()
    return this.table.getByRole('rowheader').allTextContents()
  }
}

export class AccessPage {
  constructor(page) {
    this.page = page
    this.tokens = page.getByRole('table', { name: 'API tokens' })
    this.users = page.getByRole('table', { name: 'Users' })
  }

  async open() {
    await this.page.goto('/access')
    await this.page.getByRole('heading', { level: 1, name: 'Users and tokens' }).waitFor()
  }

  /** createToken makes a token and returns its secret, shown once. */
  async createToken(name) {
    await this.page.getByLabel('Token name').fill(name)
    await this.page.getByRole('button', { name: 'Create token' }).click()
    const secret = this.page.getByLabel('New token')
    await secret.waitFor()
    return secret.textContent()
  }

  async revokeToken(name) {
    await this.page.getByRole('button', { name: `Revoke token ${name}` }).click()
    await this.page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click()
    await this.tokens.getByRole('row').filter({ has: this.page.getByRole('rowheader', { name }) }).getByText('Revoked').waitFor()
  }

  async createUser(username, password, role) {
    const form = this.page.getByRole('form', { name: 'New user' })
    await form.getByLabel('Username').fill(username)
    await form.getByLabel('Password').fill(password)
    await form.getByLabel('Role').selectOption(role)
    await form.getByRole('button', { name: 'Create user' }).click()
    await this.users.getByRole('rowheader', { name: username, exact: true }).waitFor()
  }

  async setRole(username, role) {
    await this.page.getByLabel(`Role of ${username}`).selectOption(role)
  }

  async deleteUser(username) {
    await this.page.getByRole('button', { name: `Delete user ${username}` }).click()
    await this.page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click()
    await this.users.getByRole('rowheader', { name: username, exact: true }).waitFor({ state: 'detached' })
  }
}
