// Two tiers beyond one machine (examples/two-tier/): this package as each host's tier and a
// real redis-server as the shared one, through cache-manager. Two hosts are two cache
// directories. redis-server must be installed (.ci/run installs it): without it this test
// fails, it does not skip.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { startRedisServer } from '../examples/two-tier/redis-server.mjs'
import { createTieredCache } from '../examples/two-tier/tiered-cache.mjs'
import { openLmdbCache } from '../index.js'

const EXAMPLE = fileURLToPath(new URL('../examples/two-tier/', import.meta.url))
const LOCAL_TTL_MS = 300
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

let server
let root
before(async () => {
  server = await startRedisServer() // throws (so the tests fail) when redis-server is missing
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-two-tier-'))
})
after(async () => {
  await server?.stop()
  if (root) fs.rmSync(root, { recursive: true, force: true })
})

test('a value computed on host A is served on host B from Redis, then from B’s own tier; an update reaches B within B’s local TTL', {
  timeout: 30_000,
}, async () => {
  const hostA = createTieredCache({ dir: path.join(root, 'a'), redisUrl: server.url, localTtlMs: LOCAL_TTL_MS })
  const hostB = createTieredCache({ dir: path.join(root, 'b'), redisUrl: server.url, localTtlMs: LOCAL_TTL_MS })
  const bDirect = await openLmdbCache({ path: path.join(root, 'b'), namespace: 'app' })
  try {
    const computed = []
    const load = (host) => async () => {
      computed.push(host)
      return { id: 1, version: 1 }
    }
    assert.deepEqual(await hostA.cache.wrap('item:1', load('A')), { id: 1, version: 1 })
    assert.deepEqual(await hostA.shared.get('item:1'), { id: 1, version: 1 }, 'in Redis')
    assert.equal(await bDirect.get('item:1'), undefined, 'not on host B yet')
    assert.deepEqual(await hostB.cache.wrap('item:1', load('B')), { id: 1, version: 1 })
    assert.deepEqual(computed, ['A'], 'B read it from Redis, not computing it')
    assert.deepEqual((await bDirect.get('item:1')).value, { id: 1, version: 1 }, 'and copied it into its own tier')

    // An update on A: B serves its own copy until B's local TTL ends, then reads Redis.
    await hostA.cache.set('item:1', { id: 1, version: 2 })
    assert.deepEqual(await hostB.cache.get('item:1'), { id: 1, version: 1 }, 'stale on B, within its local TTL')
    await sleep(LOCAL_TTL_MS + 50)
    assert.deepEqual(await hostB.cache.get('item:1'), { id: 1, version: 2 }, 'fresh once B’s copy expired')

    // mget and del across tiers; del is per host (B's local copy, if any, lives out its TTL).
    await hostA.cache.mset([
      { key: 'x', value: 'X' },
      { key: 'y', value: 'Y' },
    ])
    assert.deepEqual(await hostB.cache.mget(['x', 'y', 'z']), ['X', 'Y', undefined])
    await hostA.cache.del('x')
    assert.equal(await hostA.shared.get('x'), undefined)
  } finally {
    await bDirect.close()
    await hostA.cache.disconnect()
    await hostB.cache.disconnect()
  }
})

test('the example runs against the real server', { timeout: 30_000 }, async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(EXAMPLE, 'demo.mjs')], {
    env: { ...process.env, REDIS_URL: server.url },
  })
  const lines = stdout.trim().split('\n')
  assert.equal(lines.length, 4, stdout)
  assert.match(lines[1], /^B wrap: .*loadedBy: 'A'/)
  assert.match(lines[2], /name: 'Ada',/)
  assert.match(lines[3], /name: 'Ada Lovelace'/)
})
