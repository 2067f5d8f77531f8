// Worker threads of one process sharing one cache directory: the process-wide registry gives
// them one LMDB environment; concurrent writers lose nothing, and a worker that is terminated,
// exits without close() or closes its handle leaves every other handle working.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { openLmdbCache } from '../index.js'
import { createCommandHandler, keyFor, parseKey, valueFor } from './fixtures/cache-commands.mjs'
import { Peer, withTimeout } from './fixtures/peer.mjs'

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-'))
}

async function waitUntil(condition, ms, what) {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(2)
  }
}

async function cleanUp(dir, peers, caches) {
  await Promise.all(peers.map((peer) => peer.kill().catch(() => {})))
  for (const cache of caches) await cache?.close().catch(() => {})
  fs.rmSync(dir, { recursive: true, force: true })
}

/**
 * Asserts that no other handle in this process still holds `dir` open: after the caller closed
 * its last handle, the directory is removed and reopened at the same path. A fresh environment
 * creates a new data.mdb there; a leaked one (still in the process registry) would be joined
 * and write into the deleted file instead.
 */
async function assertEnvironmentReleased(dir, what) {
  fs.rmSync(dir, { recursive: true, force: true })
  const cache = await openLmdbCache({ path: dir })
  try {
    await cache.set('fresh', true)
    assert.ok(
      fs.existsSync(path.join(dir, 'data.mdb')),
      `${what}: reopening a removed directory did not create data.mdb, so an earlier environment on this path is still open in the process`,
    )
    assert.equal(await cache.get('fresh'), true)
  } finally {
    await cache.close()
  }
}

/** Every entry whose key was made by keyFor must hold exactly valueFor; counts keys per prefix. */
async function checkKeyedEntries(cache) {
  const perPrefix = new Map()
  for await (const [key, value] of cache.entries()) {
    const parsed = parseKey(key)
    if (parsed === null) continue
    assert.deepEqual(value, valueFor(parsed.prefix, parsed.j), `value of ${key}`)
    perPrefix.set(parsed.prefix, (perPrefix.get(parsed.prefix) ?? 0) + 1)
  }
  return perPrefix
}

test('4 worker threads and the main thread open one directory at once and write 500 disjoint keys each; nothing is lost', { timeout: 50_000 }, async () => {
  const dir = tempDir()
  const workers = []
  const main = createCommandHandler(() => {})
  let mainCache
  try {
    for (let i = 0; i < 4; i++) workers.push(await Peer.worker(`worker ${i}`))

    // Open gate: the four workers block on a shared flag, then all five threads open together.
    const gate = new SharedArrayBuffer(8)
    const flag = new Int32Array(gate)
    const opens = workers.map((worker) => worker.call('gatedOpen', { opts: { path: dir }, gate }))
    await waitUntil(() => Atomics.load(flag, 1) === 4, 10_000, 'the 4 workers to wait at the open gate')
    Atomics.store(flag, 0, 1)
    Atomics.notify(flag, 0)
    await main({ op: 'open', opts: { path: dir } })
    mainCache = main.cacheNamed()
    await Promise.all(opens)

    // Each thread: 150 awaited sets, 4 batches of 50, 150 sets with 16 in flight; then reads
    // its own keys back.
    const COUNT = 500
    const owners = ['main', 'w0', 'w1', 'w2', 'w3']
    const runThread = async (call, prefix) => {
      const load = await call('load', { prefix, count: COUNT, batchSize: 50, window: 16 })
      assert.equal(load.written, COUNT, `${prefix}: acknowledged writes`)
      const own = await call('verify', { prefixes: [prefix], count: COUNT })
      assert.deepEqual(
        { checked: own.checked, mismatchCount: own.mismatchCount, mismatches: own.mismatches },
        { checked: COUNT, mismatchCount: 0, mismatches: [] },
        `${prefix} reading its own keys back`,
      )
    }
    await Promise.all([
      runThread((op, args) => main({ op, ...args }), 'main'),
      ...workers.map((worker, i) => runThread((op, args) => worker.call(op, args), `w${i}`)),
    ])

    // Barrier passed (every thread's writes acknowledged): everyone sees everyone's keys.
    const views = await Promise.all(workers.map((worker) => worker.call('verify', { prefixes: owners, count: COUNT })))
    views.forEach((view, i) => {
      assert.deepEqual(
        { checked: view.checked, mismatchCount: view.mismatchCount, mismatches: view.mismatches },
        { checked: owners.length * COUNT, mismatchCount: 0, mismatches: [] },
        `worker ${i} reading every thread's keys after the barrier`,
      )
    })
    const mainView = await main({ op: 'verify', prefixes: owners, count: COUNT })
    assert.equal(mainView.mismatchCount, 0, `main thread mismatches: ${JSON.stringify(mainView.mismatches)}`)
    const perPrefix = await checkKeyedEntries(mainCache)
    assert.deepEqual(Object.fromEntries(perPrefix), Object.fromEntries(owners.map((o) => [o, COUNT])))

    for (const worker of workers) assert.equal(await worker.call('closeAll'), 1)
    for (const worker of workers) assert.equal((await worker.exit()).code, 0, `${worker.label} exit code`)
    await mainCache.close()
    mainCache = undefined
    await assertEnvironmentReleased(dir, 'after all five handles closed')
  } finally {
    await cleanUp(dir, workers, [mainCache])
  }
})

test('a worker terminated with writes in flight does not crash the process; other handles keep working and the path reopens', { timeout: 40_000 }, async () => {
  const dir = tempDir()
  const peers = []
  let cache
  let reopened
  try {
    cache = await openLmdbCache({ path: dir })
    await cache.set('before', 'kept')

    const rounds = [
      { label: 'terminated right after opening', spray: false, delayMs: 0 },
      { label: 'terminated right after its first 200 unawaited sets', spray: true, delayMs: 0 },
      { label: 'terminated after 40 ms of unawaited sets', spray: true, delayMs: 40 },
      { label: 'terminated with an unawaited 5000-put batch queued', spray: true, delayMs: 0, bigBatch: 5000 },
      { label: 'terminated after 5 ms, a second handle of its own open', spray: true, delayMs: 5, twoHandles: true },
    ]
    for (const [r, round] of rounds.entries()) {
      const worker = await Peer.worker(`worker ${r}`)
      peers.push(worker)
      await worker.call('open', { opts: { path: dir } })
      if (round.twoHandles) await worker.call('open', { name: 'second', opts: { path: dir } })
      if (round.spray) {
        const { fired } = await worker.call('spray', { prefix: `t${r}`, perTurn: 200, bigBatch: round.bigBatch ?? 0 })
        assert.ok(fired >= 200, `${round.label}: fired ${fired} sets`)
      }
      if (round.delayMs > 0) await sleep(round.delayMs)
      await withTimeout(worker.target.terminate(), 10_000, `terminate() of worker ${r} (${round.label})`)
      assert.ok(worker.exitInfo !== null, `${round.label}: worker exited`)

      // The main thread's handle is untouched.
      await withTimeout(cache.set(`after-${r}`, { r }), 10_000, `main set after ${round.label}`)
      assert.deepEqual(await cache.get(`after-${r}`), { r }, `main read after ${round.label}`)
      assert.equal(await cache.get('before'), 'kept', `main read of an older key after ${round.label}`)
    }

    // Whatever the terminated workers got committed is whole: exact values, batch all-or-nothing.
    const perPrefix = await checkKeyedEntries(cache)
    const bigBatchKeys = perPrefix.get('t3B') ?? 0
    assert.ok(bigBatchKeys === 0 || bigBatchKeys === 5000, `the unawaited batch is atomic: found ${bigBatchKeys} of its 5000 keys`)

    // A new worker opens the same path, writes and closes normally.
    const late = await Peer.worker('late worker')
    peers.push(late)
    await late.call('open', { opts: { path: dir } })
    await late.call('set', { key: 'late', value: 'from a later worker' })
    assert.deepEqual(await late.call('get', { key: 'after-0' }), { value: { r: 0 } })
    await late.call('closeAll')
    assert.equal((await late.exit()).code, 0)
    assert.equal(await cache.get('late'), 'from a later worker')

    // Close and reopen: data kept, and the terminated workers' handles did not keep the
    // environment open.
    await cache.close()
    cache = undefined
    reopened = await openLmdbCache({ path: dir })
    assert.equal(await reopened.get('before'), 'kept')
    assert.deepEqual(await reopened.get(`after-${rounds.length - 1}`), { r: rounds.length - 1 })
    await reopened.set('reopened', 1)
    assert.equal(await reopened.get('reopened'), 1)
    await reopened.close()
    reopened = undefined
    await assertEnvironmentReleased(dir, 'after terminated workers and the main handle')
  } finally {
    await cleanUp(dir, peers, [cache, reopened])
  }
})

test('a worker that exits normally without close() leaves the main handle working; the path closes and reopens', { timeout: 30_000 }, async () => {
  const dir = tempDir()
  const peers = []
  let cache
  let reopened
  try {
    cache = await openLmdbCache({ path: dir })
    await cache.set('main-before', 1)

    const worker = await Peer.worker('worker')
    peers.push(worker)
    await worker.call('open', { opts: { path: dir } })
    await worker.call('open', { name: 'ns', opts: { path: dir, namespace: 'ns' } })
    const load = await worker.call('load', { prefix: 'x', count: 200 })
    assert.equal(load.written, 200)
    await worker.call('set', { name: 'ns', key: 'in-ns', value: 'v' })
    assert.deepEqual(await worker.call('get', { key: 'main-before' }), { value: 1 })
    const exit = await worker.exit()
    assert.deepEqual({ code: exit.code, error: exit.error }, { code: 0, error: undefined }, 'worker exit without close()')

    // Main handle unaffected, sees the worker's writes.
    await cache.set('main-after', 2)
    assert.equal(await cache.get('main-after'), 2)
    assert.equal(await cache.get('main-before'), 1)
    assert.equal(await cache.withNamespace('ns').get('in-ns'), 'v')
    const perPrefix = await checkKeyedEntries(cache)
    assert.equal(perPrefix.get('x'), 200)

    await cache.close()
    cache = undefined
    reopened = await openLmdbCache({ path: dir })
    assert.equal(await reopened.get('main-after'), 2)
    assert.deepEqual(await reopened.get(keyFor('x', 199)), valueFor('x', 199))
    await reopened.set('again', true)
    assert.equal(await reopened.get('again'), true)
    await reopened.close()
    reopened = undefined
    await assertEnvironmentReleased(dir, 'after a worker exited without close() and main closed')
  } finally {
    await cleanUp(dir, peers, [cache, reopened])
  }
})

test('closing a handle in a worker leaves the main handle (and other workers) on the same path working', { timeout: 30_000 }, async () => {
  const dir = tempDir()
  const peers = []
  let cache
  try {
    cache = await openLmdbCache({ path: dir })
    const closer = await Peer.worker('closing worker')
    const other = await Peer.worker('other worker')
    peers.push(closer, other)
    await closer.call('open', { opts: { path: dir } })
    await other.call('open', { opts: { path: dir } })

    await closer.call('set', { key: 'from-closer', value: 'c' })
    await closer.call('close')
    assert.equal(await closer.call('getErrorCode', {}), 'ERR_CACHE_CLOSED', 'the closed handle itself is closed')

    // Main thread: reads, writes, batches and iterates as before.
    assert.equal(await cache.get('from-closer'), 'c')
    await cache.set('main-after-close', 'm')
    await cache.batch([
      { type: 'put', key: 'b1', value: 1 },
      { type: 'put', key: 'b2', value: 2 },
    ])
    assert.equal(await cache.get('main-after-close'), 'm')
    assert.equal(await cache.has('b2'), true)
    assert.ok((await cache.sweepExpired()) >= 0)

    // The other worker too, both ways.
    assert.deepEqual(await other.call('get', { key: 'main-after-close' }), { value: 'm' })
    await other.call('set', { key: 'from-other', value: 'o' })
    assert.equal(await cache.get('from-other'), 'o')

    // The closing worker can open the path again.
    await closer.call('open', { opts: { path: dir } })
    assert.deepEqual(await closer.call('get', { key: 'from-other' }), { value: 'o' })
    await closer.call('closeAll')
    await other.call('closeAll')
    assert.equal((await closer.exit()).code, 0)
    assert.equal((await other.exit()).code, 0)

    assert.equal(await cache.get('b1'), 1)
    await cache.set('last', true)
    assert.equal(await cache.get('last'), true)
    await cache.close()
    cache = undefined
    await assertEnvironmentReleased(dir, 'after worker handles and the main handle closed')
  } finally {
    await cleanUp(dir, peers, [cache])
  }
})
