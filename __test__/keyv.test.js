// The Keyv store (@promethean/lmdb-cache/keyv): Keyv's own compliance suite (@keyv/test-suite,
// a vitest suite, run here in a vitest child process: __test__/keyv/suite.spec.mjs), and
// cache-manager 7 over it: wrap, mget, mset, ttl, clear of its own namespace only, with two
// processes sharing one directory. Also what the store does natively: TTLs other processes
// and has() see, values kept as MessagePack when Keyv's serializer is off.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { createCache } from 'cache-manager'
import Keyv from 'keyv'
import { openLmdbCache } from '../index.js'
import { KeyvLmdb } from '../keyv.js'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('..', import.meta.url))

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-keyv-'))
}

// vitest 4, which runs Keyv's suite, needs Node 20 or later (CI also tests on Node 18).
const NODE_MAJOR = Number(process.versions.node.split('.')[0])
const vitestSkip = NODE_MAJOR < 20 ? `vitest 4 needs Node 20+, this is ${process.version}` : false

test('@keyv/test-suite: api, values, namespace (serializer on and off) and iterator pass against KeyvLmdb', {
  timeout: 120_000,
  skip: vitestSkip,
}, async () => {
  const vitest = path.join(ROOT, 'node_modules', 'vitest', 'vitest.mjs')
  const { stdout } = await run(process.execPath, [vitest, 'run', '--root', ROOT, '--reporter', 'json', '__test__/keyv/suite.spec.mjs'], {
    cwd: ROOT,
    maxBuffer: 16 * 1024 * 1024,
  }).catch((error) => {
    throw new Error(`vitest failed:\n${error.stdout?.slice(-4000)}\n${error.stderr?.slice(-4000)}`)
  })
  const report = JSON.parse(stdout.slice(stdout.indexOf('{')))
  const results = report.testResults.flatMap((file) => file.assertionResults)
  const failed = results.filter((r) => r.status === 'failed').map((r) => r.fullName)
  assert.deepEqual(failed, [])
  const skipped = results.filter((r) => r.status !== 'passed').map((r) => r.title)
  assert.deepEqual(
    skipped.sort(),
    ['value can be a buffer', 'value can be an object containing a buffer'],
    'only the two JSON-semantics tests of the serializer-off run',
  )
  // api 22 + values 13 + namespace 3, twice; iterator 4; one wiring check.
  assert.equal(results.length, 81)
})

test('constructed synchronously with honest opts; keys, TTLs and clear are native and visible to the cache API', async () => {
  const dir = tempDir()
  const store = new KeyvLmdb({ path: dir })
  const cache = await openLmdbCache({ path: dir })
  try {
    assert.deepEqual(store.opts, { dialect: 'lmdb-cache', url: fs.realpathSync(dir) })
    const keyv = new Keyv({ store, namespace: 'app', serialize: undefined, deserialize: undefined })
    await keyv.set('user', { name: 'Ada' }, 60_000)
    await keyv.set('short', 1, 1)
    const app = cache.withNamespace('app')
    // Keyv's namespace is the cache's namespace; its envelope is stored as a value, not JSON text.
    assert.deepEqual((await app.get('user')).value, { name: 'Ada' })
    assert.equal(typeof (await app.get('user')).expires, 'number')
    await new Promise((resolve) => setTimeout(resolve, 5))
    assert.equal(await app.has('short'), false, 'the ttl is the entry’s native expiry')
    assert.equal(await keyv.has('short'), false)
    await cache.set('outside', 1)
    await keyv.clear()
    assert.equal(await app.count(), 0)
    assert.equal(await cache.get('outside'), 1, 'clear() keeps to its namespace')
    assert.throws(() => new KeyvLmdb({ path: '' }), { code: 'ERR_INVALID_OPTIONS' })
    // Over an already open cache, which disconnect() leaves open.
    const shared = new KeyvLmdb({ cache })
    await new Keyv({ store: shared }).set('k', 'v')
    await shared.disconnect()
    assert.equal(await cache.withNamespace('keyv').get('k'), JSON.stringify({ value: 'v' }), "Keyv's default serializer: its JSON text")
  } finally {
    await store.disconnect()
    await cache.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('cache-manager 7: wrap, mget, mset, ttl and clear (own namespace only), two processes on one directory', { timeout: 60_000 }, async () => {
  const dir = tempDir()
  const store = new KeyvLmdb({ path: dir })
  const other = new Keyv({ store: new KeyvLmdb({ path: dir }), namespace: 'other' })
  const cache = createCache({ stores: [new Keyv({ store, namespace: 'cm' })] })
  try {
    await other.set('kept', 'by other')
    await cache.mset([
      { key: 'a', value: { n: 1 }, ttl: 60_000 },
      { key: 'b', value: 'two' },
    ])
    let computed = 0
    assert.equal(await cache.wrap('w', async () => ++computed, 60_000), 1)
    assert.equal(await cache.wrap('w', async () => ++computed, 60_000), 1, 'served, not recomputed')
    const before = Date.now()
    const { stdout } = await run(process.execPath, [path.join(ROOT, '__test__', 'fixtures', 'cache-manager-child.mjs'), dir, 'cm'])
    const seen = JSON.parse(stdout)
    assert.deepEqual(seen.mget, [{ n: 1 }, 'two', null], 'undefined printed as null')
    assert.ok(seen.ttl > before && seen.ttl <= Date.now() + 60_000, `ttl ${seen.ttl}`)
    assert.equal(seen.wrapped, 1, "the child got the parent's wrapped value")
    assert.equal(seen.computedForW, 0, 'without computing it')
    assert.equal(seen.computedNew, 'made by child')
    // The child's writes are here.
    assert.deepEqual(await cache.mget(['fromChild', 'fromChild2', 'childWrap']), [{ pid: seen.pid }, [1, 2], 'made by child'])
    assert.ok((await cache.ttl('fromChild')) > Date.now())
    assert.equal(await cache.ttl('fromChild2'), undefined, 'no ttl')
    await cache.clear()
    assert.deepEqual(await cache.mget(['a', 'b', 'w', 'fromChild']), [undefined, undefined, undefined, undefined])
    assert.equal(await other.get('kept'), 'by other', "another namespace's entries stay")
  } finally {
    await cache.disconnect()
    await other.disconnect()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
