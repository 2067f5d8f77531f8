// Real child processes sharing one cache directory: concurrent writers lose no acknowledged
// write, a write acknowledged in one process is visible to the next read in another, and a
// second process opens a directory that another process holds open (LevelDB's lock refused it).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { openLmdbCache } from '../index.js'
import { keyFor, parseKey, valueFor } from './fixtures/cache-commands.mjs'
import { Peer } from './fixtures/peer.mjs'

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-'))
}

async function cleanUp(dir, peers, caches) {
  await Promise.all(peers.map((peer) => peer.kill().catch(() => {})))
  for (const cache of caches) await cache?.close().catch(() => {})
  fs.rmSync(dir, { recursive: true, force: true })
}

/** Closes the peer's caches and waits for it to end on its own with exit code 0. */
async function finish(peer) {
  await peer.call('closeAll')
  const exit = await peer.exit()
  assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, `${peer.label} exit`)
}

test('4 processes write disjoint keys and shared hot keys concurrently; every acknowledged write is there', { timeout: 50_000 }, async () => {
  const dir = tempDir()
  const peers = []
  let cache
  try {
    const PROCESSES = 4
    const COUNT = 1000
    const HOT_KEYS = 8
    for (let i = 0; i < PROCESSES; i++) peers.push(await Peer.process(`process ${i}`))

    // What each process reports as acknowledged (its promise resolved), as it happens.
    const acked = new Map() // prefix -> Set of j
    const hotAcked = new Map() // hot key -> Set of JSON values
    for (const peer of peers) {
      peer.onEvent = (event) => {
        if (event.event !== 'ack') return
        if (!acked.has(event.prefix)) acked.set(event.prefix, new Set())
        for (const j of event.keys) acked.get(event.prefix).add(j)
        for (const [key, value] of event.hot) {
          if (!hotAcked.has(key)) hotAcked.set(key, new Set())
          hotAcked.get(key).add(JSON.stringify(value))
        }
      }
    }

    // All open, then all write at once: 300 awaited sets, 8 batches of 50 (+2 hot puts each),
    // 300 sets with 16 in flight; a hot-key write every 10 keys.
    await Promise.all(peers.map((peer) => peer.call('open', { opts: { path: dir } })))
    const loads = await Promise.all(
      peers.map((peer, i) => peer.call('load', { prefix: `p${i}`, count: COUNT, hotKeys: HOT_KEYS, batchSize: 50, window: 16 }, 40_000)),
    )
    for (const [i, load] of loads.entries()) assert.equal(load.written, COUNT, `process ${i}: acknowledged disjoint writes`)
    await Promise.all(peers.map(finish))

    // The IPC reports cover every write each process made.
    for (let i = 0; i < PROCESSES; i++) assert.equal(acked.get(`p${i}`)?.size, COUNT, `acks reported by process ${i}`)
    const hotWrites = loads.reduce((sum, load) => sum + load.hotWritten, 0)
    assert.equal(
      [...hotAcked.values()].reduce((sum, set) => sum + set.size, 0),
      hotWrites,
      'hot-key acks reported',
    )

    // The parent opens the directory afterwards: zero lost, no foreign or torn value.
    cache = await openLmdbCache({ path: dir })
    const lost = []
    const wrong = []
    for (const [prefix, js] of acked) {
      for (const j of js) {
        const actual = await cache.get(keyFor(prefix, j))
        if (actual === undefined) lost.push(keyFor(prefix, j))
        else if (JSON.stringify(actual) !== JSON.stringify(valueFor(prefix, j))) wrong.push({ key: keyFor(prefix, j), actual })
      }
    }
    assert.deepEqual({ lost: lost.slice(0, 20), lostCount: lost.length }, { lost: [], lostCount: 0 }, 'acknowledged disjoint writes lost')
    assert.deepEqual(wrong.slice(0, 10), [], 'disjoint keys holding another value')
    for (let h = 0; h < HOT_KEYS; h++) {
      const key = `hot-${h}`
      const actual = await cache.get(key)
      assert.ok(actual !== undefined, `${key} is missing`)
      assert.ok(hotAcked.get(key)?.has(JSON.stringify(actual)), `${key} holds ${JSON.stringify(actual)}, which no process had acknowledged`)
    }
    let total = 0
    for await (const [key, value] of cache.entries()) {
      total++
      const parsed = parseKey(key)
      if (parsed !== null) assert.deepEqual(value, valueFor(parsed.prefix, parsed.j), `entries() value of ${key}`)
    }
    assert.equal(total, PROCESSES * COUNT + HOT_KEYS, 'number of stored entries')
  } finally {
    await cleanUp(dir, peers, [cache])
  }
})

test('read-your-writes across processes: a value acknowledged in process A is what process B reads next, 300 rounds', { timeout: 45_000 }, async () => {
  const dir = tempDir()
  const peers = []
  try {
    const a = await Peer.process('process A')
    const b = await Peer.process('process B')
    peers.push(a, b)
    await a.call('open', { opts: { path: dir } })
    await b.call('open', { opts: { path: dir } })

    const ROUNDS = 300
    const stale = [] // B still saw nothing before A's write: must hold for a fresh key
    const mismatches = []
    for (let i = 0; i < ROUNDS; i++) {
      const key = `k${i}`
      // B reads first (a reader that just looked must not keep an old snapshot) ...
      const before = await b.call('get', { key })
      if (before.value !== undefined) stale.push({ key, before: before.value })
      // ... A writes and is acknowledged; only then is B asked.
      const value = { i, nonce: `${process.pid}-${i}-${Math.random()}` }
      await a.call('set', { key, value })
      const seen = await b.call('get', { key })
      if (JSON.stringify(seen.value) !== JSON.stringify(value)) {
        mismatches.push({ round: i, expected: value, actual: seen.value === undefined ? '<undefined>' : seen.value })
      }
    }
    assert.deepEqual(stale, [], 'B saw keys before A wrote them')
    assert.deepEqual(
      { count: mismatches.length, first: mismatches.slice(0, 10) },
      { count: 0, first: [] },
      `rounds of ${ROUNDS} where B did not read A's acknowledged value`,
    )
    await finish(a)
    await finish(b)
  } finally {
    await cleanUp(dir, peers, [])
  }
})

test("a second process opens the directory while the first holds it open; both see each other's writes", { timeout: 40_000 }, async () => {
  const dir = tempDir()
  const peers = []
  let cache
  try {
    const first = await Peer.process('first process')
    peers.push(first)
    await first.call('open', { opts: { path: dir } })
    await first.call('set', { key: 'from-first', value: { by: 'first' } })

    // The first process still holds the directory open.
    const second = await Peer.process('second process')
    peers.push(second)
    await second.call('open', { opts: { path: dir } })
    assert.deepEqual(await second.call('get', { key: 'from-first' }), { value: { by: 'first' } }, "second reads the first's write")
    await second.call('set', { key: 'from-second', value: { by: 'second' } })
    assert.deepEqual(await first.call('get', { key: 'from-second' }), { value: { by: 'second' } }, "first reads the second's write")

    // Batches and deletes cross too.
    await second.call('batch', {
      ops: [
        { type: 'put', key: 'b1', value: 1 },
        { type: 'del', key: 'from-first' },
      ],
    })
    assert.deepEqual(await first.call('get', { key: 'b1' }), { value: 1 })
    assert.equal(await first.call('has', { key: 'from-first' }), false, "first sees the second's delete")

    // The test process is a third opener while both hold it.
    cache = await openLmdbCache({ path: dir })
    assert.deepEqual(await cache.get('from-second'), { by: 'second' })
    await cache.set('from-parent', 'p')
    assert.deepEqual(await first.call('get', { key: 'from-parent' }), { value: 'p' })
    assert.deepEqual(await second.call('get', { key: 'from-parent' }), { value: 'p' })

    // The first leaves; the second keeps working and its writes reach the parent.
    await finish(first)
    await second.call('set', { key: 'after-first-left', value: 2 })
    assert.deepEqual(await second.call('get', { key: 'from-parent' }), { value: 'p' })
    assert.equal(await cache.get('after-first-left'), 2)
    await finish(second)
    assert.equal(await cache.get('b1'), 1)
  } finally {
    await cleanUp(dir, peers, [cache])
  }
})
