// Bounded caches (maxBytes, maxEntries): the bound is the directory's and every process
// keeps to it; eviction is near-LRU (compared with an exact LRU on a Zipf trace), takes
// expired entries first, keeps running totals that match a full count, and survives SIGKILL.
import assert from 'node:assert/strict'
import { fork, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { cacheStats, inspectLmdbCache, openLmdbCache } from '../index.js'
import { prng } from './support/helpers.js'

const WRITER = fileURLToPath(new URL('./fixtures/eviction-writer.mjs', import.meta.url))
const CLI = fileURLToPath(new URL('../bin/lmdb-cache.js', import.meta.url))

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-evict-'))
}

/** Counts entries and their bytes as the totals count them, from a full walk. */
async function fullCount(dir) {
  const cache = await inspectLmdbCache({ path: dir })
  try {
    return { entries: await cache.count(), stats: await cacheStats(cache) }
  } finally {
    await cache.close()
  }
}

function verify(dir) {
  const run = spawnSync(process.execPath, [CLI, 'verify', dir, '--json'], { encoding: 'utf8' })
  return { status: run.status, report: JSON.parse(run.stdout.trim()) }
}

/** A child writing with eviction-writer.mjs; resolves once it is ready. */
function startWriter(dir, prefix, count, valueSize, bounds, forever = false, pauseMs = 0) {
  const child = fork(WRITER, [dir, prefix, String(count), String(valueSize), JSON.stringify(bounds), forever ? 'forever' : '', String(pauseMs)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const messages = []
  let waiter = null
  child.on('message', (m) => {
    messages.push(m)
    waiter?.()
  })
  const next = (pred) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const found = messages.find(pred)
        if (found) {
          waiter = null
          resolve(found)
        }
      }
      waiter = check
      child.once('exit', (code, signal) => reject(new Error(`writer ${prefix} exited (${code ?? signal})`)))
      check()
    })
  return { child, next }
}

test('bounds are validated: whole numbers >= 1, or Infinity', async () => {
  const dir = tempDir()
  try {
    for (const bad of [0, -1, 1.5, Number.NaN, '10', null, 2 ** 60]) {
      for (const name of ['maxEntries', 'maxBytes']) {
        await assert.rejects(openLmdbCache({ path: dir, [name]: bad }), { code: 'ERR_INVALID_OPTIONS' }, `${name}: ${String(bad)}`)
      }
    }
    const cache = await openLmdbCache({ path: dir, maxEntries: 10, maxBytes: Number.POSITIVE_INFINITY })
    await cache.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('the bound is the directory: an open without it follows it, the last one that passes it wins, Infinity removes it', async () => {
  const dir = tempDir()
  try {
    const a = await openLmdbCache({ path: dir, maxEntries: 100, durability: 'nosync' })
    await a.set('first', 1)
    // Another process opens without a bound and writes 300 entries: the directory's bound holds.
    const b = startWriter(dir, 'b', 300, 10, {})
    await b.next((m) => m.ready)
    b.child.send('go')
    await b.next((m) => m.done)
    let s = await cacheStats(a)
    assert.equal(s.maxEntries, 100)
    assert.equal(s.maxBytes, null)
    assert.equal(s.countedEntries, 100)
    assert.equal(await a.count(), 100)
    // A later open with another bound replaces it for every process, this one included.
    const c = startWriter(dir, 'c', 0, 10, { maxEntries: 40 })
    await c.next((m) => m.ready)
    c.child.send('go')
    await c.next((m) => m.done)
    await a.set('after', 2)
    s = await cacheStats(a)
    assert.equal(s.maxEntries, 40)
    assert.equal(await a.count(), 40)
    assert.equal(await a.get('after'), 2)
    // `lmdb-cache stats` shows the directory's bound, totals and the counts of all processes.
    const cli = spawnSync(process.execPath, [CLI, 'stats', dir], { encoding: 'utf8' })
    assert.equal(cli.status, 0, cli.stderr)
    assert.match(cli.stdout, /^bounds {7}maxEntries 40, no byte bound \(least recently used entries are evicted past them\)$/m)
    assert.match(cli.stdout, /^counted {6}40 entries of at most 40, /m)
    const json = JSON.parse(spawnSync(process.execPath, [CLI, 'stats', dir, '--json'], { encoding: 'utf8' }).stdout)
    assert.equal(json.directoryCounters.evictions, 300 + 2 - 40, 'every eviction of every process')
    assert.match(cli.stdout, /^evictions {4}262 entries evicted/m)
    // Infinity removes it: nothing is evicted any more.
    const d = await openLmdbCache({ path: dir, maxEntries: Number.POSITIVE_INFINITY })
    for (let i = 0; i < 50; i++) await d.set(`more${i}`, i)
    s = await cacheStats(a)
    assert.equal(s.maxEntries, null)
    assert.equal(await a.count(), 90)
    assert.equal(s.countedEntries, 90, 'the totals are still kept')
    await d.close()
    await a.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('4 processes each writing 20 MB into a 16 MiB maxBytes: the data stays within the bound, the newest of each are there', { timeout: 240_000 }, async () => {
  const dir = tempDir()
  const MAX_BYTES = 16 * 1024 * 1024
  const VALUE = 1000
  const COUNT = 20_000 // ~20 MB of ~1 KB values per process
  try {
    const writers = []
    for (let i = 0; i < 4; i++) writers.push(startWriter(dir, `p${i}`, COUNT, VALUE, { maxBytes: MAX_BYTES }))
    await Promise.all(writers.map((w) => w.next((m) => m.ready)))
    for (const w of writers) w.child.send('go')
    const done = await Promise.all(writers.map((w) => w.next((m) => m.done)))
    assert.deepEqual(
      done.map((d) => d.written),
      [COUNT, COUNT, COUNT, COUNT],
    )
    const { entries, stats } = await fullCount(dir)
    assert.ok(stats.countedBytes <= MAX_BYTES, `${stats.countedBytes} bytes counted, bound ${MAX_BYTES}`)
    assert.ok(stats.countedBytes >= 0.9 * MAX_BYTES, `${stats.countedBytes} bytes counted: less than 90% of the bound`)
    assert.equal(stats.countedEntries, entries, 'the totals match a full count')
    const check = verify(dir)
    assert.equal(check.status, 0, JSON.stringify(check.report))
    const cache = await inspectLmdbCache({ path: dir })
    try {
      for (let p = 0; p < 4; p++) {
        for (let n = COUNT - 200; n < COUNT; n++) {
          const key = `p${p}:${String(n).padStart(7, '0')}`
          assert.equal((await cache.get(key))?.split(':')[0], String(n), `${key} (among the newest of its process) is there`)
        }
      }
      // Bytes counted = stored key + record, summed over what a walk finds.
      let walked = 0
      for await (const [key, value] of cache.entries()) walked += Buffer.byteLength(key) + 1 + Buffer.byteLength(value) + 3 + 5 + 4
      assert.ok(Math.abs(walked - stats.countedBytes) <= entries * 2, `walked ~${walked} bytes, counted ${stats.countedBytes}`)
    } finally {
      await cache.close()
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

/** `n` requests over `keys` keys, Zipf(s) by rank; ranks are mapped to keys in a shuffled order. */
function zipfTrace(n, keys, s, seed) {
  const rng = prng(seed)
  const cdf = new Float64Array(keys)
  let sum = 0
  for (let i = 0; i < keys; i++) {
    sum += 1 / (i + 1) ** s
    cdf[i] = sum
  }
  const names = Array.from({ length: keys }, (_, i) => i)
  for (let i = keys - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1))
    ;[names[i], names[j]] = [names[j], names[i]]
  }
  const trace = new Array(n)
  for (let r = 0; r < n; r++) {
    const u = rng() * sum
    let lo = 0
    let hi = keys - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cdf[mid] < u) lo = mid + 1
      else hi = mid
    }
    trace[r] = `z${names[lo]}`
  }
  return trace
}

function exactLruHits(trace, capacity) {
  const lru = new Map()
  let hits = 0
  for (const key of trace) {
    if (lru.has(key)) {
      hits++
      lru.delete(key)
    } else if (lru.size >= capacity) {
      lru.delete(lru.keys().next().value)
    }
    lru.set(key, true)
  }
  return hits
}

test('Zipf(0.99), 200,000 requests over 50,000 keys, maxEntries 2,000: hit ratio within 5 points of an exact LRU', { timeout: 300_000 }, async (t) => {
  const dir = tempDir()
  const trace = zipfTrace(200_000, 50_000, 0.99, 0x5eed)
  const lruRatio = exactLruHits(trace, 2_000) / trace.length
  const cache = await openLmdbCache({ path: dir, maxEntries: 2_000, durability: 'nosync' })
  try {
    let hits = 0
    for (let i = 0; i < trace.length; i++) {
      const key = trace[i]
      if ((await cache.get(key)) !== undefined) hits++
      else await cache.set(key, i)
    }
    const ratio = hits / trace.length
    const s = await cacheStats(cache)
    t.diagnostic(`hit ratio ${(ratio * 100).toFixed(2)} %, exact LRU ${(lruRatio * 100).toFixed(2)} %, ${s.evictions} evictions`)
    assert.ok(Math.abs(ratio - lruRatio) <= 0.05, `hit ratio ${ratio}, exact LRU ${lruRatio}`)
    assert.equal(s.hits, hits)
    assert.equal(s.misses, trace.length - hits)
    assert.equal(s.countedEntries, 2_000)
    assert.equal(await cache.count(), 2_000)
    assert.ok(s.evictions >= trace.length - hits - 2_000, `${s.evictions} evictions`)
  } finally {
    await cache.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test("recency is shared: the entries one process keeps reading survive another process's writes", { timeout: 120_000 }, async () => {
  const dir = tempDir()
  const HOT = 50
  const reader = await openLmdbCache({ path: dir, maxEntries: 1_000, durability: 'nosync' })
  try {
    for (let i = 0; i < HOT; i++) await reader.set(`hot${i}`, i)
    // Another process writes 4,000 new keys (4 times the bound), paced so that the cache
    // turns over in about 3 s; this one only reads its hot keys meanwhile. Its writer commits
    // the touches those reads queue (at least once a second); the other process's evictions
    // see them in the file.
    const writer = startWriter(dir, 'w', 4_000, 100, {}, false, 150)
    await writer.next((m) => m.ready)
    writer.child.send('go')
    let done = false
    writer.next((m) => m.done).then(() => (done = true))
    let misses = 0
    while (!done) {
      for (let i = 0; i < HOT; i++) if ((await reader.get(`hot${i}`)) === undefined) misses++
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    assert.equal(misses, 0, 'a hot key was evicted')
    const s = await cacheStats(reader)
    assert.equal(s.countedEntries, 1_000)
    assert.equal(s.directoryCounters.evictions >= 4_000 + HOT - 1_000, true, `${s.directoryCounters.evictions} evictions`)
    assert.equal(s.evictions, 0, 'the reading process evicted nothing itself')
  } finally {
    await reader.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('TTL and eviction together: expired entries go first and are not counted as evictions', async () => {
  const dir = tempDir()
  const cache = await openLmdbCache({ path: dir, maxEntries: 100, durability: 'nosync' })
  try {
    for (let i = 0; i < 50; i++) await cache.set(`short${i}`, i, { ttlMs: 1 })
    await new Promise((resolve) => setTimeout(resolve, 20))
    for (let i = 0; i < 100; i++) await cache.set(`fresh${i}`, i)
    let s = await cacheStats(cache)
    assert.equal(s.evictions, 0, 'only expired entries made room')
    assert.equal(s.countedEntries, 100)
    for (let i = 0; i < 100; i++) assert.equal(await cache.get(`fresh${i}`), i)
    // Read the first 10 again, then write 10 more: the 10 evicted are unread ones.
    await new Promise((resolve) => setTimeout(resolve, 30))
    for (let i = 0; i < 10; i++) await cache.get(`fresh${i}`)
    await new Promise((resolve) => setTimeout(resolve, 300)) // the touches are applied
    for (let i = 100; i < 110; i++) await cache.set(`fresh${i}`, i)
    s = await cacheStats(cache)
    assert.equal(s.evictions, 10)
    assert.equal(await cache.count(), 100)
    // A live entry with a ttl is evicted like any other; an expired one is never read back.
    for (let i = 0; i < 50; i++) assert.equal(await cache.get(`short${i}`), undefined)
    for (let i = 100; i < 110; i++) assert.equal(await cache.get(`fresh${i}`), i)
  } finally {
    await cache.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('SIGKILL mid-eviction leaves a consistent file: verify passes and the totals match a full count', { timeout: 120_000 }, async () => {
  const dir = tempDir()
  try {
    for (let round = 0; round < 3; round++) {
      const w = startWriter(dir, `r${round}`, 0, 300, { maxEntries: 500 }, true)
      await w.next((m) => m.ready)
      w.child.send('go')
      // Killed while evicting: several hundred evictions in, at a moment that varies.
      await w.next((m) => m.evictions > 300 + round * 137)
      w.child.kill('SIGKILL')
      await new Promise((resolve) => w.child.once('exit', resolve))
      const check = verify(dir)
      assert.equal(check.status, 0, JSON.stringify(check.report))
      assert.equal(check.report.totalsChecked, true, 'verify compared the totals with its full count')
      const { entries, stats } = await fullCount(dir)
      assert.equal(stats.countedEntries, entries, `round ${round}: the totals match a full count`)
    }
    const cache = await openLmdbCache({ path: dir })
    await cache.set('last', 1)
    assert.equal(await cache.count(), 500)
    await cache.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('a directory written without a bound (or by 0.1, format 1) is counted once at its first open with one', async () => {
  const dir = tempDir()
  try {
    fs.copyFileSync(new URL('./fixtures/format1-cache/data.mdb', import.meta.url), path.join(dir, 'data.mdb'))
    const plain = await openLmdbCache({ path: dir })
    for (let i = 0; i < 300; i++) await plain.set(`n${String(i).padStart(3, '0')}`, { i })
    assert.equal((await cacheStats(plain)).countedEntries, null, 'an unbounded directory keeps no totals')
    const entries = await plain.count()
    await plain.close()
    assert.equal(entries, 317)
    // The first bounded open counts the 318 records (a stored undefined is one, though
    // count() skips it), then evicts down to the bound; the format-1 records (no access
    // stamp) rank as the least recently used wherever the sampling meets them.
    const bounded = await openLmdbCache({ path: dir, maxEntries: 300 })
    await bounded.set('one more', 1)
    const s = await cacheStats(bounded)
    assert.equal(s.countedEntries, 300)
    assert.equal(s.evictions, 318 + 1 - 300)
    const live = await bounded.count()
    assert.ok(live === 300 || live === 299, `${live} live entries`)
    // Records written before the bound carry no access stamp: they rank as the oldest, so
    // 300 new entries replace them rather than each other.
    for (let i = 0; i < 300; i++) await bounded.set(`m${String(i).padStart(3, '0')}`, i)
    let kept = 0
    for (let i = 0; i < 300; i++) if ((await bounded.get(`m${String(i).padStart(3, '0')}`)) === i) kept++
    assert.ok(kept >= 290, `${kept} of the 300 new entries kept`)
    await bounded.close()
    const check = verify(dir)
    assert.equal(check.status, 0, JSON.stringify(check.report))
    assert.equal(check.report.totalsChecked, true)
    assert.equal(check.report.entries, 300, 'verify counts every record')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test("the package's other deletes keep the totals: clear(), delete(), del, a batch and a sweep, then verify agrees", async () => {
  const dir = tempDir()
  const cache = await openLmdbCache({ path: dir, maxEntries: 1_000, durability: 'nosync' })
  try {
    const users = cache.withNamespace('users')
    for (let i = 0; i < 200; i++) await users.set(`u${i}`, { i, name: `user ${i}` })
    for (let i = 0; i < 100; i++) await cache.set(`k${i}`, i, i % 2 === 0 ? { ttlMs: 1 } : undefined)
    assert.equal((await cacheStats(cache)).countedEntries, 300)
    assert.equal(await users.clear(), 200)
    assert.equal(await cache.delete('k1'), true)
    await cache.del('k3')
    await cache.batch([{ type: 'del', key: 'k5' }])
    await new Promise((resolve) => setTimeout(resolve, 20))
    assert.equal(await cache.sweepExpired(), 50)
    const s = await cacheStats(cache)
    assert.equal(s.countedEntries, 47)
    assert.equal(await cache.count(), 47)
  } finally {
    await cache.close()
  }
  const { status, report } = verify(dir)
  assert.equal(status, 0, JSON.stringify(report))
  assert.equal(report.totalsChecked, true)
  fs.rmSync(dir, { recursive: true, force: true })
})
