// Prints the size of every script and style sheet of the build, gzipped as they would travel,
// and fails the build when the JavaScript the first page load needs (the entry and the
// chunks index.html preloads) is over the budget. Everything else is loaded on demand.
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'

const budgetKB = 300
const dist = new URL('../dist/', import.meta.url).pathname
const html = readFileSync(join(dist, 'index.html'), 'utf8')

const initial = new Set()
for (const m of html.matchAll(/<script[^>]*\bsrc="\/([^"]+\.js)"/g)) initial.add(m[1])
for (const m of html.matchAll(/<link[^>]*rel="modulepreload"[^>]*href="\/([^"]+\.js)"/g)) initial.add(m[1])
if (/<script(?![^>]*\bsrc=)[^>]*>/.test(html)) {
  console.error('bundle-size: index.html has an inline script, which the Content-Security-Policy refuses')
  process.exit(1)
}

const kb = (n) => (n / 1024).toFixed(1).padStart(7) + ' KB'
const rows = readdirSync(join(dist, 'assets'))
  .filter((f) => f.endsWith('.js') || f.endsWith('.css'))
  .map((f) => {
    const body = readFileSync(join(dist, 'assets', f))
    const path = 'assets/' + f
    return { path, raw: body.length, gz: gzipSync(body, { level: 9 }).length, initial: initial.has(path) }
  })
  .sort((a, b) => Number(b.initial) - Number(a.initial) || b.gz - a.gz)

console.log('\nconsole bundle (gzipped as served):')
for (const r of rows) {
  const when = r.path.endsWith('.css') ? 'style' : r.initial ? 'initial' : 'lazy'
  console.log(`  ${when.padEnd(8)} ${kb(r.gz)} gz ${kb(r.raw)} raw  ${r.path}`)
}
const initialGz = rows.filter((r) => r.initial).reduce((n, r) => n + r.gz, 0)
const lazyGz = rows.filter((r) => !r.initial && r.path.endsWith('.js')).reduce((n, r) => n + r.gz, 0)
console.log(`  initial JS ${kb(initialGz)} gz of a ${budgetKB} KB budget; lazy JS ${kb(lazyGz)} gz\n`)
if (initial.size === 0) {
  console.error('bundle-size: found no script in index.html')
  process.exit(1)
}
if (initialGz > budgetKB * 1024) {
  console.error(`bundle-size: the initial JavaScript is over the ${budgetKB} KB budget: load the new code lazily`)
  process.exit(1)
}
