// Ordered range reads (gt/gte/lt/lte/reverse/limit) and batches across views: the additions
// the message store builds on. Checked against sorting in JS.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { openLmdbCache } from '../index.js'
import fc from 'fast-check'

const utf8Compare = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))

async function collect(iterable) {
  const out = []
  for await (const item of iterable) out.push(item)
  return out
}

async function withCache(fn) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-ranges-'))
  const cache = await openLmdbCache({ path: dir })
  try {
    await fn(cache)
  } finally {
    await cache.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

test('range options select exactly the keys within the bounds, in both directions, across pages', async () => {
  const alphabet = ['a', 'b', 'c', 'é', '😀', '0', '9', ':']
  const shortKey = fc.array(fc.constantFrom(...alphabet), { minLength: 1, maxLength: 6 }).map((chars) => chars.join(''))
  const [shortKeys] = fc.sample(fc.uniqueArray(shortKey, { minLength: 400, maxLength: 400 }), { seed: 7, numRuns: 1 })
  // Long keys sharing their first 480 bytes: a group stored in hash order.
  const all = [...shortKeys, ...['1', '2', ''].map((tail) => 'L'.repeat(500) + tail)]
  const sorted = [...all].sort(utf8Compare)
  const inRange = (k, o) =>
    (o.gt === undefined || utf8Compare(k, o.gt) > 0) &&
    (o.gte === undefined || utf8Compare(k, o.gte) >= 0) &&
    (o.lt === undefined || utf8Compare(k, o.lt) < 0) &&
    (o.lte === undefined || utf8Compare(k, o.lte) <= 0)
  // A bound: mostly a stored key, else a single character (between or around the keys).
  const bound = fc.oneof({ weight: 7, arbitrary: fc.constantFrom(...sorted) }, { weight: 3, arbitrary: fc.constantFrom(...alphabet) })
  const lower = fc.option(fc.record({ name: fc.constantFrom('gt', 'gte'), key: bound }), { freq: 2 })
  const upper = fc.option(fc.record({ name: fc.constantFrom('lt', 'lte'), key: bound }), { freq: 2 })
  const options = fc
    .record({ lower, upper, reverse: fc.boolean(), limit: fc.option(fc.nat({ max: 149 }), { freq: 2 }) })
    .map(({ lower, upper, reverse, limit }) => {
      const opts = {}
      if (lower !== null) opts[lower.name] = lower.key
      if (upper !== null) opts[upper.name] = upper.key
      if (reverse) opts.reverse = true
      if (limit !== null) opts.limit = limit
      return opts
    })
  await withCache(async (root) => {
    const view = root.withNamespace('s')
    await view.batch(all.map((key) => ({ type: 'put', key, value: key.length })))
    await root.set('outside', 1) // another namespace must never leak in
    await root.withNamespace('t').set('a', 1)
    await fc.assert(
      fc.asyncProperty(options, async (opts) => {
        let expected = sorted.filter((k) => inRange(k, opts))
        // Long keys sharing their first 480 bytes come as a group in hash order (README).
        const group = (k) => (Buffer.byteLength(k) > 480 ? 'L' : k)
        if (opts.reverse) expected.reverse()
        if (opts.limit !== undefined) expected = expected.slice(0, opts.limit)
        const got = (await collect(view.entries(opts))).map(([k]) => k)
        assert.deepEqual(got.map(group), expected.map(group), JSON.stringify(opts))
        assert.deepEqual(new Set(got), new Set(expected), JSON.stringify(opts))
        const bounds = Object.fromEntries(['gt', 'gte', 'lt', 'lte'].filter((b) => opts[b] !== undefined).map((b) => [b, opts[b]]))
        assert.equal(await view.count(bounds), sorted.filter((k) => inRange(k, bounds)).length, `count ${JSON.stringify(bounds)}`)
      }),
      { seed: 7, numRuns: 120 },
    )
  })
})

test('pages forward and backward from a cursor over time-ordered keys', async () => {
  await withCache(async (root) => {
    const messages = root.withNamespace('messages')
    const ids = Array.from({ length: 250 }, (_, i) => `session1:${String(1_700_000_000_000 + i * 1000).padStart(16, '0')}:${i}`)
    await messages.batch(ids.map((key, i) => ({ type: 'put', key, value: { i } })))
    await messages.set('session2:0000000000000001:x', { other: true })
    const page = async (opts) => (await collect(messages.entries({ gte: 'session1:', lt: 'session1;', ...opts }))).map(([, v]) => v.i)
    const session = { gte: undefined, lt: undefined }
    assert.deepEqual(await page({ limit: 3 }), [0, 1, 2])
    assert.deepEqual(await page({ limit: 3, reverse: true }), [249, 248, 247])
    const cursor = ids[100]
    assert.deepEqual(await page({ gte: undefined, gt: cursor, limit: 2 }), [101, 102])
    assert.deepEqual(await page({ lt: cursor, limit: 2, reverse: true }), [99, 98])
    assert.deepEqual(await page({ ...session, gte: 'session1:', lte: cursor, limit: 2, reverse: true }), [100, 99])
    assert.equal((await page({})).length, 250)
  })
})

test('a batch may write to several views of one cache atomically', async () => {
  await withCache(async (root) => {
    const messages = root.withNamespace('messages')
    const byUuid = root.withNamespace('by-uuid')
    await messages.batch([
      { type: 'put', key: 's:1:u1', value: { text: 'hi' } },
      { type: 'put', view: byUuid, key: 'u1', value: 's:1:u1' },
    ])
    assert.deepEqual(await messages.get('s:1:u1'), { text: 'hi' })
    assert.equal(await byUuid.get('u1'), 's:1:u1')
    // One bad value anywhere: nothing of the batch is written, in any view.
    await assert.rejects(
      messages.batch([
        { type: 'put', key: 's:2:u2', value: 1 },
        { type: 'put', view: byUuid, key: 'u2', value: 10n },
      ]),
      { code: 'ERR_INVALID_VALUE' },
    )
    assert.equal(await messages.has('s:2:u2'), false)
    assert.equal(await byUuid.has('u2'), false)
    await messages.batch([{ type: 'del', view: byUuid, key: 'u1' }])
    assert.equal(await byUuid.has('u1'), false)
    // A view of another open cache cannot join: it may be another directory.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-ranges-other-'))
    const other = await openLmdbCache({ path: dir })
    await assert.rejects(messages.batch([{ type: 'put', view: other, key: 'x', value: 1 }]), { code: 'ERR_INVALID_BATCH' })
    await other.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })
})

test('range options are validated', async () => {
  await withCache(async (cache) => {
    await assert.rejects(collect(cache.entries({ gt: 1 })), { code: 'ERR_INVALID_OPTIONS' })
    await assert.rejects(collect(cache.entries({ gt: 'a', gte: 'b' })), { code: 'ERR_INVALID_OPTIONS' })
  })
})

test('count() counts live entries only, across native chunks, and is validated', async () => {
  await withCache(async (root) => {
    const big = root.withNamespace('big')
    const n = 100_050 // more than one native chunk of 100,000
    for (let s = 0; s < n; s += 10_000) {
      const ops = []
      for (let i = s; i < Math.min(s + 10_000, n); i++) ops.push({ type: 'put', key: `k${String(i).padStart(6, '0')}`, value: i })
      await big.batch(ops)
    }
    await root.withNamespace('bigger').set('k000001', 1) // a neighbouring namespace
    assert.equal(await big.count(), n)
    assert.equal(await big.count({ gte: 'k000010', lt: 'k000020' }), 10)
    assert.equal(await big.count({ gt: 'k100049' }), 0)

    const small = root.withNamespace('small')
    await small.batch([
      { type: 'put', key: 'a', value: 1 },
      { type: 'put', key: 'b', value: 2, ttlMs: 1 },
      { type: 'put', key: 'c', value: undefined },
      { type: 'put', key: 'd', value: null },
    ])
    await new Promise((resolve) => setTimeout(resolve, 20))
    // b has expired and c holds undefined: neither is an entry for get/has/entries either.
    assert.equal(await small.count(), (await collect(small.entries())).length)
    assert.equal(await small.count(), 2)

    await assert.rejects(small.count({ gt: 'a', gte: 'a' }), { name: 'TypeError', code: 'ERR_INVALID_OPTIONS' })
    await assert.rejects(small.count({ lt: 5 }), { name: 'TypeError', code: 'ERR_INVALID_OPTIONS' })
    await assert.rejects(small.count('a'), { name: 'TypeError', code: 'ERR_INVALID_OPTIONS' })
  })
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-ranges-'))
  const cache = await openLmdbCache({ path: dir })
  await cache.close()
  await assert.rejects(cache.count(), { code: 'ERR_CACHE_CLOSED' })
  fs.rmSync(dir, { recursive: true, force: true })
})
