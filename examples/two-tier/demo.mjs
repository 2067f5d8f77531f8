// The two-tier cache on two "hosts" (two cache directories) sharing one Redis: a value
// computed on host A is served on host B from Redis (and then from B's own tier); an update
// on A reaches B once B's local copy expires. Uses REDIS_URL, or starts a local redis-server.
//   node examples/two-tier/demo.mjs
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { startRedisServer } from './redis-server.mjs'
import { createTieredCache } from './tiered-cache.mjs'

const server = process.env.REDIS_URL ? null : await startRedisServer()
const redisUrl = process.env.REDIS_URL ?? server.url
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'two-tier-demo-'))
const LOCAL_TTL_MS = 500
const hostA = createTieredCache({ dir: path.join(root, 'host-a'), redisUrl, localTtlMs: LOCAL_TTL_MS })
const hostB = createTieredCache({ dir: path.join(root, 'host-b'), redisUrl, localTtlMs: LOCAL_TTL_MS })
try {
  const load = (host) => async () => ({ user: 1, name: 'Ada', loadedBy: host })
  console.log('A wrap:', await hostA.cache.wrap('user:1', load('A'))) // computed on A
  console.log('B wrap:', await hostB.cache.wrap('user:1', load('B'))) // from Redis: loadedBy A
  await hostA.cache.set('user:1', { user: 1, name: 'Ada Lovelace', loadedBy: 'A' })
  console.log('B right after the update:', await hostB.cache.get('user:1')) // B's local copy, stale
  await new Promise((resolve) => setTimeout(resolve, LOCAL_TTL_MS + 50))
  console.log(`B after ${LOCAL_TTL_MS} ms:`, await hostB.cache.get('user:1')) // from Redis: fresh
} finally {
  await hostA.cache.disconnect()
  await hostB.cache.disconnect()
  await server?.stop()
  fs.rmSync(root, { recursive: true, force: true })
}
