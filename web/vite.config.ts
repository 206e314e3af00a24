import react from '@vitejs/plugin-react'
import { defineConfig } from 'vitest/config'

// The console is served by sluice-server from web/dist (see embed.go). `npm run dev` serves it
// from Vite instead and forwards the API to a running server (SLUICE_SERVER, by default the
// demo's http://127.0.0.1:8080), so the session cookie stays same-origin.
const server = process.env.SLUICE_SERVER ?? 'http://127.0.0.1:8080'

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    // scripts/clean-dist.mjs empties dist before the build but keeps the committed stub that
    // go:embed needs on a machine that never built the console.
    emptyOutDir: false,
    target: 'es2022',
    // Browsers the console supports all have modulepreload; the polyfill is dead weight.
    modulePreload: { polyfill: false },
  },
  server: {
    proxy: {
      '/api': { target: server, ws: true },
      '/healthz': server,
      '/readyz': server,
    },
  },
  test: {
    include: ['src/**/*.test.{ts,tsx}'],
    environment: 'node',
  },
})
