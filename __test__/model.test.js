// Model-based randomized test: sequences of operations drawn by fast-check (fc.gen(), one
// seeded run per seed) are checked on the cache, one by one, against an in-memory model of
// the level-cache contract:
//
// - full keys are namespace + U+241F + key, `withNamespace` nests with "/", keys are UTF-8
//   (a lone surrogate reads back as U+FFFD), entries() yields byte order of the UTF-8 key;
// - values come back as JSON.parse(JSON.stringify(value)); a stored undefined is absent for
//   get/has and skipped by entries(); a stored null is present;
// - TTL: ttlMs ?? defaultTtlMs, absolute expiry, an entry with expiry <= now is gone;
//   sweepExpired() deletes (and counts) every expired entry still stored;
// - batches apply in order, del of a missing key works, close/reopen keeps everything and
//   a closed handle's views reject with ERR_CACHE_CLOSED.
//
// Time is real (no fake clock): most TTLs are 0, negative, huge or infinite, so their
// outcome is certain; a few are 5-40 ms, and while one of those might have expired the
// model accepts both outcomes (and then knows the entry may have been deleted lazily).
//
// Reproduce a failure with MODEL_SEED=<seed> (and MODEL_OPS=<n>): the seed is fast-check's,
// and in the message.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { openLmdbCache } from '../index.js'
import fc from 'fast-check'

const SEP = '\u241F'
const SEEDS = process.env.MODEL_SEED ? [Number(process.env.MODEL_SEED)] : [1, 2, 3, 4]
const OPS = Number(process.env.MODEL_OPS ?? 3000)

/**
 * The draws this test makes, taken from fast-check's generator `g` (fc.gen()): a run is
 * reproduced from fast-check's seed, and a failing one is reported with it.
 */
function draws(g) {
  // Unbiased: fast-check leans towards small values and edges by default, which would skew
  // the mix of operations this test chooses by ranges of one draw.
  const below = (n) => fc.noBias(fc.integer({ min: 0, max: n - 1 }))
  const next = () => g(below, 2 ** 32) / 2 ** 32
  next.int = (n) => (n <= 1 ? 0 : g(below, n))
  next.pick = (items) => items[next.int(items.length)]
  next.chance = (p) => next() < p
  return next
}

const utf8 = (s) => Buffer.from(s, 'utf8')
/** What a key becomes after its trip through UTF-8 (lone surrogates turn into U+FFFD). */
const normalise = (s) => utf8(s).toString('utf8')
const byUtf8 = (a, b) => Buffer.compare(utf8(a), utf8(b))
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------
// Inputs

const NAMESPACES = ['', 'a', 'b', 'a/b', 'é', '😀', 'x\u241Fy', 'ns']

function keyPool(random) {
  const fixed = [
    '',
    'a',
    'b',
    'ab',
    'a/b',
    'a\u241Fb',
    'b\u241Fa',
    'é',
    'e\u0301',
    '😀',
    '\u{10FFFF}',
    '\uFFFF',
    'k\u0000',
    'k\u0000z',
    '\u241F',
    'x\u241Fy',
    'y',
    '\uD800', // lone surrogate: the same key as U+FFFD
    '\uFFFD',
    '\u2028',
    'Z',
    '~',
    ' ',
    `L1${'x'.repeat(600)}`, // long keys: stored in the long form (> 480 bytes)
    `L2${'x'.repeat(600)}`,
    `M${'😀'.repeat(200)}`,
  ]
  const alphabet = ['a', 'b', '/', 'é', '😀', '\u241F', '\u0000', 'z', 'A']
  const random_ = Array.from({ length: 24 }, () => Array.from({ length: 1 + random.int(4) }, () => random.pick(alphabet)).join(''))
  return [...fixed, ...random_]
}

function randomString(random, max = 12) {
  const alphabet = ['a', 'Z', ' ', '"', '\\', '\n', 'é', '😀', '\u0000', '\u2028', '\uD800', '\uDFFF', '\u241F', '{', '}']
  return Array.from({ length: random.int(max) }, () => random.pick(alphabet)).join('')
}

function randomValue(random, depth = 0) {
  switch (random.int(depth > 2 ? 8 : 15)) {
    case 0:
      return null
    case 1:
      return random.chance(0.5)
    case 2:
      return random.int(2_000_000) - 1_000_000
    case 3:
      return (random() - 0.5) * 1e12
    case 4:
      return random.pick([-0, NaN, Infinity, -Infinity, 1e308, 5e-324, Number.MAX_SAFE_INTEGER, -1e-7])
    case 5:
      return randomString(random)
    case 6:
      return ''
    case 7:
      return new Date(random.int(4_000_000_000_000))
    case 8:
      return Array.from({ length: random.int(5) }, () => (random.chance(0.1) ? random.pick([undefined, () => 1, Symbol('s')]) : randomValue(random, depth + 1)))
    case 9:
    case 10: {
      const object = {}
      for (let i = random.int(5); i > 0; i--) {
        const key = random.chance(0.05) ? '__proto__' : randomString(random, 5)
        Object.defineProperty(object, key, {
          value: random.chance(0.1) ? undefined : randomValue(random, depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        })
      }
      return object
    }
    case 11:
      return undefined
    case 12:
      return random.chance(0.5) ? () => 'fn' : Symbol('s')
    case 13: {
      const n = random.int(10)
      return { toJSON: () => ({ via: 'toJSON', n }) }
    }
    default:
      // Sometimes larger than the 64 KiB read buffer of the native side.
      return 'v'.repeat(random.chance(0.3) ? 70_000 + random.int(60_000) : random.int(2000))
  }
}

function randomTtl(random) {
  const r = random()
  if (r < 0.55) return { opts: undefined }
  if (r < 0.62) return { opts: {} }
  if (r < 0.66) return { opts: { ttlMs: undefined } }
  if (r < 0.69) return { opts: { ttlMs: null } }
  if (r < 0.77) return { opts: { ttlMs: random.pick([0, -1, -1000, -Infinity, 0.5 - 1]) } }
  if (r < 0.87) return { opts: { ttlMs: random.pick([1e9, 3.6e6, Infinity, 1e12]) } }
  if (r < 0.92) return { opts: { ttlMs: 5 + random.int(36) } } // real, short: outcome uncertain for a while
  return { opts: null }
}

// ---------------------------------------------------------------------------------------
// The model

/** Stored entries: normalised full key -> { json, expLo, expHi, maybeGone }. */
class Model {
  constructor() {
    this.store = new Map()
  }

  /** The bounds of an expiry computed as Date.now() + ttl somewhere in [before, after]. */
  static expiry(ttl, before, after) {
    if (ttl === undefined || ttl === null || ttl === Infinity) return { expLo: Infinity, expHi: Infinity }
    // Stored expiries are whole milliseconds, rounded up.
    return { expLo: before + ttl, expHi: Math.ceil(after + ttl) }
  }

  put(fullKey, value, ttl, before, after) {
    this.store.set(normalise(fullKey), { json: JSON.stringify(value), ...Model.expiry(ttl, before, after), maybeGone: false })
  }

  del(fullKey) {
    this.store.delete(normalise(fullKey))
  }

  /** 'live', 'expired' or 'uncertain' for a read whose Date.now() lies in [before, after]. */
  static state(entry, before, after) {
    if (entry.expLo > after) return 'live'
    if (entry.expHi <= before) return 'expired'
    return 'uncertain'
  }
}

const expectedValue = (entry) => (entry.json === undefined ? undefined : JSON.parse(entry.json))

// ---------------------------------------------------------------------------------------
// The run

async function run(random, seed, opCount) {
  const keys = keyPool(random)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-model-'))
  const durability = ['durable', 'nosync', 'strict', 'nosync'][seed % 4]
  const model = new Model()
  const handles = [] // { cache, namespace, defaultTtlMs, open }
  const views = [] // { cache, namespace, handle }
  const closedViews = []
  const inflight = []
  const log = []
  const counts = {}
  let step = 0

  const note = (text) => {
    log.push(`#${step} ${text}`)
    if (log.length > 25) log.shift()
  }

  const openHandle = async () => {
    const namespace = random.chance(0.6) ? '' : random.pick(NAMESPACES)
    const defaultTtlMs = random.pick([undefined, undefined, undefined, 1e9, -1])
    const options = { path: dir, durability }
    if (namespace !== '' || random.chance(0.3)) options.namespace = namespace
    if (defaultTtlMs !== undefined) options.defaultTtlMs = defaultTtlMs
    const cache = await openLmdbCache(options)
    const handle = { cache, namespace, defaultTtlMs, open: true }
    handles.push(handle)
    views.push({ cache, namespace, handle })
    note(`open namespace=${JSON.stringify(namespace)} defaultTtlMs=${defaultTtlMs}`)
    return handle
  }

  const settle = async () => {
    const pending = inflight.splice(0)
    await Promise.all(pending)
  }

  const prefixOf = (view) => (view.namespace === '' ? '' : view.namespace + SEP)
  const openViews = () => views.filter((v) => v.handle.open)

  /** Applies a put to the model: ttlMs ?? defaultTtlMs, as the contract says. */
  const modelPut = (view, key, value, ttlMs, before, after) => {
    const ttl = ttlMs ?? view.handle.defaultTtlMs
    model.put(prefixOf(view) + key, value, ttl, before, after)
  }

  const checkGet = async (view, key, how) => {
    const fullKey = normalise(prefixOf(view) + key)
    const before = Date.now()
    const got = how === 'has' ? await view.cache.has(key) : await view.cache.get(key)
    const after = Date.now()
    const entry = model.store.get(fullKey)
    const what = `${how}(${JSON.stringify(fullKey).slice(0, 60)})`
    if (entry === undefined) {
      assert.equal(got, how === 'has' ? false : undefined, `${what} of a missing key`)
      return
    }
    const state = Model.state(entry, before, after)
    const present = how === 'has' ? entry.json !== undefined : expectedValue(entry)
    const absent = how === 'has' ? false : undefined
    if (state === 'live') assert.deepStrictEqual(got, present, `${what} of a live entry`)
    else if (state === 'expired') assert.deepStrictEqual(got, absent, `${what} of an expired entry`)
    else if (!isDeepStrictEqual(got, absent)) assert.deepStrictEqual(got, present, `${what} of an entry expiring now`)
    // An expired entry met by a read is deleted lazily.
    if (state !== 'live') entry.maybeGone = true
  }

  const checkEntries = async (view, opts) => {
    const prefix = prefixOf(view)
    const before = Date.now()
    const got = []
    for await (const pair of view.cache.entries(opts)) got.push(pair)
    const after = Date.now()
    let limit = opts?.limit
    if (limit === undefined || limit === null || limit === Infinity || limit < 0) limit = Infinity
    limit = Math.floor(limit)
    const candidates = [...model.store.entries()]
      .filter(([fullKey]) => fullKey.startsWith(prefix))
      .sort(([a], [b]) => byUtf8(a, b))
      .map(([fullKey, entry]) => ({ fullKey, entry, state: Model.state(entry, before, after) }))
    for (const c of candidates) if (c.state !== 'live') c.entry.maybeGone = true
    const visible = candidates.filter((c) => c.state !== 'expired' && c.entry.json !== undefined)
    const what = `entries(${JSON.stringify(opts)}) of namespace ${JSON.stringify(view.namespace)}`
    assert.ok(got.length <= limit, `${what}: ${got.length} entries over the limit`)
    let i = 0
    for (const [key, value] of got) {
      while (i < visible.length && visible[i].fullKey !== prefix + key) {
        assert.notEqual(
          visible[i].state,
          'live',
          `${what}: live ${JSON.stringify(visible[i].fullKey).slice(0, 60)} missing before ${JSON.stringify(key).slice(0, 60)}`,
        )
        i++
      }
      assert.ok(i < visible.length, `${what}: unexpected or out-of-order key ${JSON.stringify(key).slice(0, 60)}`)
      assert.deepStrictEqual(value, expectedValue(visible[i].entry), `${what}: value of ${JSON.stringify(key).slice(0, 60)}`)
      i++
    }
    if (got.length < limit) {
      for (; i < visible.length; i++)
        assert.notEqual(visible[i].state, 'live', `${what}: live ${JSON.stringify(visible[i].fullKey).slice(0, 60)} missing at the end`)
    }
  }

  const checkSweep = async (view) => {
    const before = Date.now()
    const count = await view.cache.sweepExpired()
    const after = Date.now()
    let lower = 0
    let upper = 0
    for (const [fullKey, entry] of model.store) {
      const state = Model.state(entry, before, after)
      if (state === 'live') continue
      upper++
      if (state === 'expired') {
        if (!entry.maybeGone) lower++
        model.store.delete(fullKey) // swept now, or deleted lazily before
      } else {
        entry.maybeGone = true
      }
    }
    assert.ok(count >= lower && count <= upper, `sweepExpired() returned ${count}, expected between ${lower} and ${upper}`)
  }

  const checkClosed = async (view) => {
    const closed = (promise, what) => assert.rejects(promise, { code: 'ERR_CACHE_CLOSED' }, what)
    await closed(view.cache.get('a'), 'get after close')
    await closed(view.cache.has('a'), 'has after close')
    await closed(view.cache.set('a', 1), 'set after close')
    await closed(view.cache.del('a'), 'del after close')
    await closed(view.cache.batch([{ type: 'del', key: 'a' }]), 'batch after close')
    await closed(view.cache.sweepExpired(), 'sweepExpired after close')
    await closed(view.cache.entries().next(), 'entries after close')
    await view.cache.close() // still resolves
  }

  /** Everything, through a fresh handle without namespace. */
  const checkAll = async () => {
    const cache = await openLmdbCache({ path: dir })
    try {
      await checkEntries({ cache, namespace: '', handle: null }, undefined)
    } finally {
      await cache.close()
    }
  }

  try {
    await openHandle()
    for (step = 0; step < opCount; step++) {
      const live = openViews()
      const view = random.pick(live)
      const r = random()
      const key = random.pick(keys)
      let op
      if (r < 0.24) op = 'set'
      else if (r < 0.33) op = 'del'
      else if (r < 0.45) op = 'batch'
      else if (r < 0.6) op = 'get'
      else if (r < 0.68) op = 'has'
      else if (r < 0.78) op = 'entries'
      else if (r < 0.82) op = 'withNamespace'
      else if (r < 0.85) op = 'sweep'
      else if (r < 0.87) op = 'close'
      else if (r < 0.885) op = 'open'
      else if (r < 0.895) op = 'closedView'
      else if (r < 0.905) op = 'checkAll'
      else if (r < 0.915) op = 'sleep'
      else op = random.chance(0.5) ? 'get' : 'set'
      counts[op] = (counts[op] ?? 0) + 1
      // Reads see every write issued before them: wait for the writes in flight.
      if (!['set', 'del', 'batch', 'withNamespace'].includes(op)) await settle()

      switch (op) {
        case 'set': {
          const value = randomValue(random)
          const { opts } = randomTtl(random)
          note(`set ns=${JSON.stringify(view.namespace)} key=${JSON.stringify(key).slice(0, 40)} opts=${JSON.stringify(opts)}`)
          const before = Date.now()
          const promise = view.cache.set(key, value, opts)
          modelPut(view, key, value, opts?.ttlMs, before, Date.now())
          inflight.push(promise)
          break
        }
        case 'del': {
          note(`del ns=${JSON.stringify(view.namespace)} key=${JSON.stringify(key).slice(0, 40)}`)
          inflight.push(view.cache.del(key))
          model.del(prefixOf(view) + key)
          break
        }
        case 'batch': {
          const ops = Array.from({ length: random.chance(0.05) ? 0 : 1 + random.int(8) }, () => {
            const k = random.chance(0.3) ? key : random.pick(keys)
            if (random.chance(0.3)) return { type: 'del', key: k }
            const put = { type: 'put', key: k, value: randomValue(random) }
            const { opts } = randomTtl(random)
            if (opts && 'ttlMs' in opts) put.ttlMs = opts.ttlMs
            return put
          })
          note(
            `batch ns=${JSON.stringify(view.namespace)} ${ops.length} ops: ${ops.map((o) => `${o.type} ${JSON.stringify(o.key).slice(0, 20)}${'ttlMs' in o ? ` ttl=${o.ttlMs}` : ''}`).join(', ')}`,
          )
          const before = Date.now()
          const promise = view.cache.batch(ops)
          const after = Date.now()
          for (const o of ops) {
            if (o.type === 'del') model.del(prefixOf(view) + o.key)
            else modelPut(view, o.key, o.value, o.ttlMs, before, after)
          }
          inflight.push(promise)
          break
        }
        case 'get':
        case 'has':
          note(`${op} ns=${JSON.stringify(view.namespace)} key=${JSON.stringify(key).slice(0, 40)}`)
          await checkGet(view, key, op)
          break
        case 'entries': {
          const opts = random.pick([
            undefined,
            {},
            { limit: 0 },
            { limit: 1 },
            { limit: 3 },
            { limit: 1 + random.int(40) },
            { limit: -1 },
            { limit: Infinity },
            { limit: 2.7 },
          ])
          note(`entries ns=${JSON.stringify(view.namespace)} ${JSON.stringify(opts)}`)
          await checkEntries(view, opts)
          break
        }
        case 'withNamespace': {
          const ns = random.pick(NAMESPACES)
          const namespace = ns === '' ? view.namespace : view.namespace === '' ? ns : `${view.namespace}/${ns}`
          note(`withNamespace(${JSON.stringify(ns)}) on ${JSON.stringify(view.namespace)}`)
          views.push({ cache: view.cache.withNamespace(ns), namespace, handle: view.handle })
          break
        }
        case 'sweep':
          note(`sweepExpired from ${JSON.stringify(view.namespace)}`)
          await checkSweep(view)
          break
        case 'close': {
          const handle = random.pick(handles.filter((h) => h.open))
          note(`close handle namespace=${JSON.stringify(handle.namespace)}`)
          await handle.cache.close()
          handle.open = false
          for (const v of views.filter((v) => v.handle === handle)) closedViews.push(v)
          if (!handles.some((h) => h.open)) await openHandle()
          break
        }
        case 'open':
          if (handles.filter((h) => h.open).length < 3) await openHandle()
          break
        case 'closedView':
          if (closedViews.length > 0) {
            const v = random.pick(closedViews)
            note(`closed view ${JSON.stringify(v.namespace)}`)
            await checkClosed(v)
          }
          break
        case 'checkAll':
          note('check all')
          await checkAll()
          break
        case 'sleep':
          note('sleep')
          await sleep(5 + random.int(30))
          break
      }
    }
    await settle()
    // Close everything, reopen, and compare the whole database once more.
    for (const handle of handles.filter((h) => h.open)) await handle.cache.close()
    step = opCount
    note('final check after reopening')
    await checkAll()
    return counts
  } catch (error) {
    await Promise.allSettled(inflight)
    const message = `model test failed: seed ${seed}, operation #${step} (rerun with MODEL_SEED=${seed} MODEL_OPS=${opCount})\nlast operations:\n  ${log.join('\n  ')}\n${error.message}`
    throw Object.assign(new Error(message, { cause: error }), { seed })
  } finally {
    for (const handle of handles) await handle.cache.close().catch(() => {})
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

function isDeepStrictEqual(a, b) {
  try {
    assert.deepStrictEqual(a, b)
    return true
  } catch {
    return false
  }
}

for (const seed of SEEDS) {
  test(`random operations agree with the model of the contract (seed ${seed}, ${OPS} operations)`, { timeout: 120_000 }, async () => {
    const started = Date.now()
    let counts
    // One run per seed; a failing run of thousands of operations is reported, not shrunk.
    await fc.assert(
      fc.asyncProperty(fc.gen(), async (g) => {
        counts = await run(draws(g), seed, OPS)
      }),
      { seed, numRuns: 1, endOnFailure: true },
    )
    console.log(`# seed ${seed}: ${Date.now() - started} ms, ${JSON.stringify(counts)}`)
  })
}
