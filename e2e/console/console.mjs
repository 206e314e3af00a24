// The console's browser test steps, run one at a time by e2e/console_test.go against a real
// sluice-server, which checks what each step did through the API:
//
//   node e2e/console/console.mjs <step>
//
// with SLUICE_URL, SLUICE_USER, SLUICE_PASSWORD and SCREENSHOT_DIR set, and PROFILE_DIR to
// share a browser profile (and so a signed-in session) between steps: sluice-server limits
// sign-ins per user to a few a minute, as it should. A step exits 0 when everything it
// checked held, and 1 with the reason otherwise.

import { Browser, check, eventually } from './browser.mjs'
import {
  AccessPage,
  AuditPage,
  ConfigPage,
  EditorPage,
  ExperimentsPage,
  GraphPage,
  LoginPage,
  ProxiesPage,
  ResourcePage,
  RevisionsPage,
  ServicePage,
  Shell,
} from './pages.mjs'

const env = (name) => {
  const v = process.env[name]
  if (!v) throw new Error(`set ${name}`)
  return v
}
const baseURL = env('SLUICE_URL')
const user = env('SLUICE_USER')
const password = env('SLUICE_PASSWORD')

const reviewsRule = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2`

const reviewsRoute = (v1, v2) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: ${v1}
    - destination:
        host: reviews
        subset: v2
      weight: ${v2}`

// An unknown field ("weigth") in the second route.
const invalidRoute = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
  namespace: default
spec:
  hosts:
  - ratings
  http:
  - route:
    - destination:
        host: ratings
      weight: 90
    - destination:
        host: ratings
      weigth: 10`

/**
 * openConsole opens the console at its overview, signing in only if the profile has no
 * session (which also shows that a reload restores one); it returns the page's shell.
 */
async function openConsole(page) {
  await page.goto('/')
  const shell = new Shell(page)
  const login = new LoginPage(page)
  await shell.heading('Overview').or(login.username).waitFor()
  if (await login.username.isVisible()) {
    await login.signIn(user, password)
    await shell.heading('Overview').waitFor()
  }
  return shell
}

/** apiSession signs in to the API apart from the browser, as another user's tab would. */
async function apiSession(username, password) {
  const res = await fetch(new URL('/api/v1/login', baseURL), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  })
  check(res.ok, `login: ${res.status}`)
  const { csrfToken } = await res.json()
  const cookie = res.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ')
  return {
    async apply(yaml) {
      const r = await fetch(new URL('/api/v1/apply', baseURL), {
        method: 'POST',
        headers: { 'Content-Type': 'application/yaml', Cookie: cookie, 'X-CSRF-Token': csrfToken },
        body: yaml,
      })
      check(r.ok, `apply: ${r.status} ${await r.text()}`)
    },
  }
}

const steps = {
  // Signing in: a wrong password is refused, the right one opens the overview.
  async login(b) {
    const page = await b.page()
    await page.goto('/')
    await page.waitForURL('**/login')
    const login = new LoginPage(page)
    await login.username.waitFor()
    await b.screenshot(page, 'login')
    await login.signIn(user, 'not-the-password')
    await eventually('the wrong password is refused', async () =>
      check((await login.error())?.includes('Wrong username or password'), 'no error shown'),
    )
    await login.signIn(user, password)
    const shell = new Shell(page)
    await shell.heading('Overview').waitFor()
    await page.getByRole('heading', { level: 2, name: 'Needs attention' }).waitFor()
    await page.getByRole('table', { name: 'Resources by kind' }).waitFor()
    await b.screenshot(page, 'overview')
  },

  // A VirtualService and a DestinationRule, validated and applied in one go, then listed.
  async apply(b) {
    const page = await b.page()
    const shell = await openConsole(page)
    await shell.go('Config')
    const editor = await new ConfigPage(page).newResource()
    await editor.setText(reviewsRoute(100, 0) + '\n---\n' + reviewsRule)

    check((await editor.validate()) === 'Valid', 'Validate did not find the YAML valid')
    for (const name of ['VirtualService default/reviews', 'DestinationRule default/reviews']) {
      await page.getByRole('table', { name: new RegExp(`Changes to ${name}`) }).waitFor()
    }
    await b.screenshot(page, 'editor-validate')

    const applied = await editor.apply()
    check(/^Applied as revision \d+$/.test(applied ?? ''), `Apply answered "${applied}"`)

    await shell.go('Config')
    const config = new ConfigPage(page)
    await config.openKind('Virtual services')
    await eventually('reviews is listed', async () => check((await config.names()).includes('reviews'), 'not listed'))
    await b.screenshot(page, 'config')
    await config.openKind('Destination rules')
    await eventually('the rule is listed', async () => check((await config.names()).includes('reviews'), 'not listed'))
  },

  // An unknown field is placed on its line, and nothing is saved (the Go test checks that).
  async invalid(b) {
    const page = await b.page()
    await openConsole(page)
    await page.goto('/config/new')
    const editor = new EditorPage(page)
    await editor.setText(invalidRoute)
    const result = await editor.apply()
    check(result === 'Not valid: nothing was saved', `Apply answered "${result}"`)

    const line = invalidRoute.split('\n').findIndex((l) => l.includes('weigth')) + 1
    const problems = await editor.problemList()
    check(problems.length === 1, `want one problem, got ${JSON.stringify(problems)}`)
    check(problems[0].startsWith(`Line ${line}`), `the problem is not on line ${line}: "${problems[0]}"`)
    check(problems[0].includes('weigth'), `the problem does not name the field: "${problems[0]}"`)
    const text = await editor.goToProblem(0)
    check(text.includes('weigth: 10'), `following the problem went to "${text}", not the line with weigth`)
    await b.screenshot(page, 'editor-invalid')
  },

  // An edit through the editor makes a second revision; History shows both, side by side,
  // and rolls back to the first (the Go test checks the spec through the API).
  async history(b) {
    const page = await b.page()
    await openConsole(page)
    const resource = new ResourcePage(page)
    await resource.open('virtualservices', 'default', 'reviews')
    await page.getByLabel('YAML of default/reviews').waitFor()
    await b.screenshot(page, 'resource')

    const editor = await resource.edit()
    check((await editor.text()).includes('resourceVersion'), 'the editor did not load the stored YAML')
    await editor.setText(reviewsRoute(50, 50))
    const applied = await editor.apply()
    check(/^Applied as revision \d+$/.test(applied ?? ''), `Apply answered "${applied}"`)

    await resource.open('virtualservices', 'default', 'reviews')
    await resource.history()
    const revs = await resource.revisions()
    check(revs.length === 2, `history lists revisions ${revs}, want two`)
    const diff = resource.diffTable()
    await diff.getByRole('cell', { name: /removed:\s+weight: 100/ }).waitFor()
    await diff.getByRole('cell', { name: /added:\s+weight: 50/ }).first().waitFor()
    await b.screenshot(page, 'history')

    await resource.rollbackTo(revs[1])
    await eventually('the rollback is in the history', async () => {
      const now = await resource.revisions()
      check(now.length === 3, `history lists ${now}`)
    })
  },

  // Someone else changes the resource while it is open in the editor: Apply says who and
  // when, and the current version can be loaded and edited instead.
  async conflict(b) {
    const page = await b.page()
    await openConsole(page)
    const resource = new ResourcePage(page)
    await resource.open('destinationrules', 'default', 'reviews')
    const editor = await resource.edit()

    const otherUser = env('OTHER_USER')
    const other = await apiSession(otherUser, env('OTHER_PASSWORD'))
    await other.apply(reviewsRule.replace('version: v2', 'version: v2\n      track: stable'))

    await editor.setText(reviewsRule.replace('version: v1', 'version: v1\n      track: old'))
    const result = await editor.apply()
    check(result === 'Not saved: changed meanwhile', `Apply answered "${result}"`)
    const says = await page.getByRole('alert').filter({ hasText: 'review and retry' }).getByRole('paragraph').first().textContent()
    check(new RegExp(`^Changed by ${otherUser} (just now|\\d+ seconds? ago) — review and retry`).test(says ?? ''), `the conflict says "${says}"`)
    await b.screenshot(page, 'editor-conflict')

    await page.getByRole('button', { name: /Load the current version/ }).click()
    await eventually('the current version is loaded', async () => check((await editor.text()).includes('track: stable'), 'not yet'))
    const text = await editor.text()
    await editor.setText(text.replace('version: v1', 'version: v1\n      track: old'))
    const retried = await editor.apply()
    check(/^Applied as revision \d+$/.test(retried ?? ''), `the retry answered "${retried}"`)
  },

  // A real sidecar (service hello), started by the Go test, is listed connected and in sync.
  async proxies(b) {
    const page = await b.page()
    const shell = await openConsole(page)
    await shell.go('Proxies')
    const proxies = new ProxiesPage(page)
    const row = proxies.row('hello')
    await row.waitFor()
    await eventually('the sidecar is in sync', async () => {
      const cells = (await row.getByRole('cell').allTextContents()).join(' | ')
      check(cells.includes('Yes') && cells.includes('In sync'), `row: ${cells}`)
    })
    // Its identity, and the mTLS mode per inbound port (PERMISSIVE: no policy is written).
    const cells = (await row.getByRole('cell').allTextContents()).join(' | ')
    check(cells.includes('spiffe://cluster.local/ns/default/sa/hello'), `no identity in the row: ${cells}`)
    check((await row.getByRole('list', { name: /^mTLS modes of / }).textContent()).includes('PERMISSIVE'), `no mTLS mode in the row: ${cells}`)
    await b.screenshot(page, 'proxies')
    // Its workload opens the configuration the sidecar applied, read from its admin port.
    await row.getByRole('link', { name: / configuration$/ }).click()
    const clusters = page.getByRole('table', { name: 'Clusters in effect on this proxy' })
    await clusters.getByRole('rowheader', { name: /hello\.default\.svc\.cluster\.local/ }).first().waitFor()
    const endpoints = page.getByRole('table', { name: 'Endpoints in effect on this proxy' })
    await endpoints.getByText('HEALTHY', { exact: true }).first().waitFor()
    await page.getByRole('heading', { level: 2, name: /^Listeners/ }).waitFor()
    await b.screenshot(page, 'proxy-config')
    await shell.go('Overview')
    await page.getByText(/connected prox(y has|ies have) applied revision/).waitFor()
    await b.screenshot(page, 'overview-with-proxy')
  },

  // The mesh-wide log, a revision's diff, and a rollback of the whole mesh to FIRST_REVISION.
  async revisions(b) {
    const page = await b.page()
    await openConsole(page)
    const revisions = new RevisionsPage(page)
    await revisions.open()
    const first = Number(env('FIRST_REVISION'))
    await revisions.showChanges(first)
    await page.getByRole('table', { name: /VirtualService default\/reviews/ }).first().waitFor()
    await b.screenshot(page, 'revisions')
    await revisions.rollbackMeshTo(first)
  },

  // When the server stops answering, a banner says so and the page keeps its content; it goes
  // away by itself when the server is back.
  async banner(b) {
    const page = await b.page()
    const shell = await openConsole(page)
    await shell.go('Proxies')
    const down = (route) => route.abort('connectionrefused')
    await page.route('**/api/**', down)
    await page.route('**/healthz', down)
    await shell.banner.waitFor({ timeout: 15_000 })
    await shell.heading('Proxies').waitFor()
    await b.screenshot(page, 'server-down')
    await page.unroute('**/api/**', down)
    await page.unroute('**/healthz', down)
    await shell.banner.waitFor({ state: 'detached', timeout: 20_000 })
  },

  // The console works from the keyboard alone: sign in, then reach a page through the sidebar.
  async keyboard(b) {
    const page = await b.page()
    await page.goto('/login')
    await new LoginPage(page).username.waitFor()
    await page.keyboard.type(user)
    await page.keyboard.press('Tab')
    await page.keyboard.type(password)
    await page.keyboard.press('Enter')
    const shell = new Shell(page)
    await shell.heading('Overview').waitFor()
    let reached = false
    for (let i = 0; i < 30 && !reached; i++) {
      await page.keyboard.press('Tab')
      reached = await page.evaluate(() => document.activeElement?.textContent === 'Proxies')
    }
    check(reached, 'Tab never reached the Proxies link')
    await page.keyboard.press('Enter')
    await shell.heading('Proxies').waitFor()
    const focused = await page.evaluate(() => document.activeElement?.id)
    check(focused === 'main', `after navigating, focus is on "${focused}", not the page`)

    // This step's user is a viewer: the console offers no change it would refuse.
    await page.goto('/config/virtualservices')
    await page.getByRole('table').getByRole('link', { name: 'reviews' }).click()
    await page.getByRole('navigation', { name: 'Resource views' }).getByRole('link', { name: 'History' }).click()
    await page.getByRole('heading', { level: 2, name: 'History' }).waitFor()
    for (const control of [page.getByRole('link', { name: 'Edit' }), page.getByRole('button', { name: /^Roll back/ })]) {
      check((await control.count()) === 0, 'a viewer is offered a change')
    }
    await page.goto('/config/new')
    await page.getByRole('note').filter({ hasText: 'need the admin role; you have the viewer role' }).waitFor()
    check(await page.getByRole('button', { name: 'Apply' }).isDisabled(), 'a viewer can press Apply')
  },

  // Signing out, then a deep link: the login page, then back to the link. A session that
  // ends while in use (its cookie gone) sends the user to sign in and back too.
  async session(b) {
    const page = await b.page()
    const shell = await openConsole(page)
    await shell.signOut()
    const deep = '/config/virtualservices/default/reviews/history'
    await page.goto(deep)
    await page.waitForURL((u) => u.pathname === '/login' && u.searchParams.get('next') === deep)
    await new LoginPage(page).signIn(user, password)
    await page.waitForURL((u) => u.pathname === deep)
    await page.getByRole('heading', { level: 2, name: 'History' }).waitFor()

    await b.context.clearCookies()
    await shell.nav.getByRole('link', { name: 'Proxies' }).click()
    await page.waitForURL((u) => u.pathname === '/login' && u.searchParams.get('next') === '/proxies')
    await page.getByRole('status').filter({ hasText: 'Your session ended' }).waitFor()
    await new LoginPage(page).signIn(user, password)
    await shell.heading('Proxies').waitFor()
  },
  // Bookinfo runs behind sidecars and a gateway, and the Go test sends requests through it
  // meanwhile: the graph shows who calls whom with figures, and an edge's details.
  async graph(b) {
    const page = await b.page()
    await openConsole(page)
    await page.getByRole('table', { name: /Each service's traffic over the last 10s/ }).getByRole('link', { name: 'reviews' }).waitFor({ timeout: 30_000 })
    await b.screenshot(page, 'overview-live')
    const graph = new GraphPage(page)
    await graph.open()
    await graph.canvas.waitFor({ timeout: 30_000 })
    await graph.edge('productpage', 'reviews').waitFor({ timeout: 30_000 })
    const panel = await graph.details('productpage', 'reviews')
    const text = await panel.textContent()
    check(/Rate[\d.]+ rps/.test(text) && /Success rate[\d.]+ %/.test(text) && /p50 \/ p95 \/ p99/.test(text), `the edge's details say "${text}"`)
    await b.screenshot(page, 'graph')
    await page.keyboard.press('Escape')
    await panel.waitFor({ state: 'detached' })
    await graph.versions.check()
    await graph.edge('reviews', 'reviews-v3 (v3)').waitFor({ timeout: 30_000 })
    await b.screenshot(page, 'graph-versions')

    // The live tap on the service page, filtered on the server to successful GETs.
    const svc = new ServicePage(page, 'reviews')
    await svc.open('default')
    await page.getByLabel('Method').selectOption('GET')
    await page.getByLabel('Status').selectOption('2xx')
    await page.getByRole('button', { name: 'Start tap' }).click()
    const tap = page.getByRole('table', { name: /Requests to reviews\.default\.svc\.cluster\.local/ })
    await tap.getByRole('row').nth(1).waitFor({ timeout: 30_000 })
    const row = await tap.getByRole('row').nth(1).getByRole('cell').allTextContents()
    check(row[3] === 'GET' && /^2\d\d$/.test(row[5]) && row[4].startsWith('/reviews/'), `a tapped request: ${row}`)
  },

  // The canary slider, from the keyboard: reviews v3 to 30 %, Apply, and the panel follows
  // the revision to every sidecar (the Go test then measures the split through the gateway).
  async canary(b) {
    const page = await b.page()
    await openConsole(page)
    const svc = new ServicePage(page, 'reviews')
    await svc.open('default')
    await eventually('the split is read', async () => check((await svc.weight('v3')) === 100, `v3 is at ${await svc.weight('v3')}`))
    check(await svc.applyButton.isDisabled(), 'Apply is enabled before anything moved')
    await svc.setWeight('v3', 30)
    const sum = (await svc.weight('v1')) + (await svc.weight('v2')) + (await svc.weight('v3'))
    check(sum === 100, `the weights add up to ${sum}`)
    // v2 locked at 0: v3's 70 points go to v1 alone.
    await page.getByRole('checkbox', { name: 'Lock reviews v2' }).check()
    check(await svc.slider('v2').isDisabled(), 'a locked slider moves')
    await svc.setWeight('v3', 30)
    check((await svc.weight('v2')) === 35 && (await svc.weight('v1')) === 35, 'the locked weight moved, or the free one did not')
    await page.getByRole('checkbox', { name: 'Lock reviews v2' }).uncheck()
    await page.getByRole('button', { name: 'Reset' }).click()
    await page.getByRole('checkbox', { name: 'Lock reviews v2' }).check()
    await svc.setWeight('v3', 30)
    check((await svc.weight('v1')) === 70 && (await svc.weight('v2')) === 0, `v1 ${await svc.weight('v1')}, v2 ${await svc.weight('v2')}`)
    await svc.applyButton.click()
    const said = await svc.propagated('Apply')
    console.log(said)
    await page.getByRole('link', { name: 'default/reviews' }).first().waitFor()
    // Each version shows the identity its sidecars hold.
    const versions = page.getByRole('table', { name: 'Versions of reviews and their endpoints' })
    for (const v of ['v1', 'v2', 'v3']) {
      const header = await versions.getByRole('rowheader').filter({ hasText: new RegExp(`^${v}`) }).textContent()
      check(header.includes('spiffe://cluster.local/ns/default/sa/bookinfo-reviews'), `version ${v}: "${header}"`)
    }
    await b.screenshot(page, 'service')
  },

  // Roll back puts the split as it was before the slider moved.
  async rollback(b) {
    const page = await b.page()
    await openConsole(page)
    const svc = new ServicePage(page, 'reviews')
    await svc.open('default')
    await eventually('the split is read', async () => check((await svc.weight('v3')) === 30, `v3 is at ${await svc.weight('v3')}`))
    await svc.rollbackButton.click()
    await svc.propagated('Rollback')
    await eventually('the slider shows the restored split', async () => check((await svc.weight('v3')) === 100, `v3 is at ${await svc.weight('v3')}`))
  },

  // A viewer sees the traffic controls, disabled, and why.
  async viewer(b) {
    const page = await b.page()
    await openConsole(page)
    const svc = new ServicePage(page, 'reviews')
    await svc.open('default')
    await page.getByText('Your role, viewer, cannot change traffic.').waitFor()
    for (const v of ['v1', 'v2', 'v3']) check(await svc.slider(v).isDisabled(), `a viewer can move the ${v} slider`)
    check(await svc.applyButton.isDisabled(), 'a viewer can press Apply')
    check(await svc.rollbackButton.isDisabled(), 'a viewer can press Roll back')
    check(await page.getByRole('button', { name: 'Promote v3' }).isDisabled(), 'a viewer can promote')
    await b.screenshot(page, 'service-viewer')
  },

  // A fault experiment from the form: an abort on ratings, running with a countdown.
  async experiment(b) {
    const page = await b.page()
    await openConsole(page)
    const ex = new ExperimentsPage(page)
    await ex.open()
    await ex.create(
      { 'Experiment name': 'ratings-abort', 'Target service': 'ratings', Duration: '5m', 'Answer with HTTP status': '503', 'Aborted requests (%)': '100' },
      { Delay: false, Abort: true },
    )
    const row = ex.runningRow('default/ratings-abort')
    await row.waitFor({ timeout: 30_000 })
    await eventually('the experiment runs', async () => check((await row.getByRole('cell').allTextContents()).includes('Running'), 'not running yet'))
    const left = await row.getByRole('timer').textContent()
    check(/^[45]:\d\d$/.test(left ?? ''), `time left: "${left}"`)
    await b.screenshot(page, 'experiments')

    // Its effect on the graph, whose figures cover the last seconds: reviews' calls to
    // ratings fail (the aborts the caller's sidecar answers itself count against ratings).
    const graph = new GraphPage(page)
    await graph.open()
    await graph.edges.waitFor({ timeout: 30_000 })
    await eventually('the aborts show on reviews\' calls', async () => {
      const failing = (await graph.rows()).filter((r) => r.From === 'reviews' && r.To === 'ratings' && /%$/.test(r.Success) && r.Success !== '100.0 %')
      check(failing.length > 0, `edges from reviews: ${JSON.stringify((await graph.rows()).filter((r) => r.From === 'reviews'))}`)
    }, 30_000)
    await b.screenshot(page, 'graph-experiment')
  },

  // Stop ends the running experiment; it moves to the past ones.
  async stop(b) {
    const page = await b.page()
    await openConsole(page)
    const ex = new ExperimentsPage(page)
    await ex.open()
    await ex.runningRow('default/ratings-abort').getByRole('button', { name: 'Stop ratings-abort' }).click()
    await ex.runningRow('default/ratings-abort').waitFor({ state: 'detached' })
    await ex.past.getByRole('row').filter({ hasText: 'default/ratings-abort' }).filter({ hasText: 'Stopped' }).first().waitFor()

    // The errors leave the graph as its short window moves past them.
    const graph = new GraphPage(page)
    await graph.open()
    await graph.edges.waitFor({ timeout: 30_000 })
    await eventually('reviews → ratings succeeds again, and nothing from reviews fails', async () => {
      const fromReviews = (await graph.rows()).filter((r) => r.From === 'reviews')
      check(fromReviews.some((r) => r.To === 'ratings' && r.Success === '100.0 %'), `edges from reviews: ${JSON.stringify(fromReviews)}`)
      check(fromReviews.every((r) => r.Success === '100.0 %'), `edges from reviews: ${JSON.stringify(fromReviews)}`)
    }, 40_000)
    await b.screenshot(page, 'graph-after-experiment')
  },

  // The audit log, filtered by user.
  async audit(b) {
    const page = await b.page()
    await openConsole(page)
    const audit = new AuditPage(page)
    await audit.open()
    await audit.table.waitFor()
    await audit.filter({ User: 'bob' })
    await eventually('only bob is listed', async () => {
      const actors = await audit.actors()
      check(actors.length > 0 && actors.every((a) => a === 'bob'), `actors: ${actors}`)
    })
    await audit.filter({ User: '', Action: 'experiment.stop' })
    await eventually('the stop is listed', async () => check((await audit.actors()).join() === 'alice', `actors: ${await audit.actors()}`))
    await b.screenshot(page, 'audit')
  },

  // A token, shown once, then revoked; a user created, given another role, deleted.
  async access(b) {
    const page = await b.page()
    await openConsole(page)
    const access = new AccessPage(page)
    await access.open()
    const secret = await access.createToken('e2e-token')
    check(/^slc_/.test(secret ?? ''), `the token is "${secret}"`)
    await page.getByRole('button', { name: 'Copy token' }).waitFor()
    await b.screenshot(page, 'access')
    await page.getByRole('button', { name: 'Done' }).click()
    check((await page.getByLabel('New token').count()) === 0, 'the secret is still shown')
    await access.revokeToken('e2e-token')
    await access.createUser('frank', 'frank-e2e-password', 'viewer')
    await access.setRole('frank', 'operator')
    await eventually('frank is an operator', async () => check((await page.getByLabel('Role of frank').inputValue()) === 'operator', 'not yet'))
    await access.deleteUser('frank')
  },
}

const name = process.argv[2]
const step = steps[name]
if (!step) {
  console.error(`usage: node console.mjs <step>; steps: ${Object.keys(steps).join(', ')}`)
  process.exit(2)
}
const b = await Browser.launch({ baseURL, screenshots: env('SCREENSHOT_DIR'), profile: process.env.PROFILE_DIR })
let failed = false
try {
  await step(b)
  if (b.problems.length > 0) throw new Error(`the page reported:\n  ${b.problems.join('\n  ')}`)
  console.log(`console step ${name}: ok`)
} catch (err) {
  failed = true
  console.error(`console step ${name} failed: ${err?.stack ?? err}`)
  try {
    const page = await b.page()
    console.error(`at ${page.url()}`)
    await b.screenshot(page, `failed-${name}`)
  } catch {
    // The browser itself is gone; the error above says why.
  }
} finally {
  await b.close()
}
process.exit(failed ? 1 : 0)
