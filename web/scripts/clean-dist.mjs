// Empties dist/ before a build, keeping the committed .keep stub that go:embed needs (see
// embed.go). Vite's own emptyOutDir would delete it and leave the work tree dirty.
import { readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'

const dist = new URL('../dist/', import.meta.url).pathname
for (const name of readdirSync(dist)) {
  if (name !== '.keep') rmSync(join(dist, name), { recursive: true, force: true })
}
