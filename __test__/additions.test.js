// The optional additions to level-cache's API: delete() reporting whether the key held a live
// entry, clear() of a view (its namespace; the root view: everything) in bounded chunks,
// keys() without values, and getMany() from one read transaction.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { openLmdbCache } from '../index.js'

async function withCache(fn) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-additions-'))
  const cache = await openLmdbCache({ path: dir })
  try {
    await fn(cache, dir)
  } finally {
    await cache.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function collect(iterator) {
  const out = []
  for await (const item of iterator) out.push(item)
  return out
}

test('delete() resolves true only for a live entry and removes expired ones too; del() still resolves undefined', async () => {
  await withCache(async (cache) => {
    await cache.set('live', 1)
    await cache.set('gone', 2, { ttlMs: 1 })
    await cache.set('undef', undefined)
    await sleep(5)
    assert.equal(await cache.delete('live'), true)
    assert.equal(await cache.delete('live'), false)
    assert.equal(await cache.delete('gone'), false, 'expired: not live')
    assert.equal(await cache.delete('undef'), false, 'a stored undefined is absent')
    assert.equal(await cache.delete('never'), false)
    assert.equal(await cache.count(), 0)
    await cache.set('x', 1)
    assert.equal(await cache.del('x'), undefined, "level-cache's del is unchanged")
    await assert.rejects(cache.delete(5), { code: 'ERR_INVALID_KEY' })
  })
})

test('clear() of a view removes its namespace only, over many chunks; the root view clears everything', async () => {
  await withCache(async (cache) => {
    const a = cache.withNamespace('a')
    const b = cache.withNamespace('b')
    const nested = a.withNamespace('n')
    const COUNT = 10_000 // more than one chunk of the native clear
    const ops = []
    for (let i = 0; i < COUNT; i++) ops.push({ type: 'put', key: `k${i}`, value: { i }, ttlMs: i % 2 === 0 ? 60_000 : undefined })
    await a.batch(ops)
    await b.set('k1', 'b1')
    await nested.set('k1', 'n1')
    await cache.set('a', 'root key named a')
    assert.equal(await a.clear(), COUNT)
    assert.equal(await a.count(), 0)
    assert.equal(await b.get('k1'), 'b1')
    assert.equal(await nested.get('k1'), 'n1', 'a nested namespace is a namespace of its own')
    assert.equal(await cache.get('a'), 'root key named a')
    // The expiry index rows went with the entries: a sweep far in the future finds nothing of a's.
    assert.equal(await a.sweepExpired(), 0)
    assert.equal(await cache.clear(), 3)
    assert.equal(await cache.count(), 0)
    assert.equal(await cache.clear(), 0)
  })
})

test('keys() pages like entries(): bounds, reverse, limit; expired and undefined entries left out', async () => {
  await withCache(async (cache) => {
    const view = cache.withNamespace('ns')
    const keys = Array.from({ length: 300 }, (_, i) => `key${String(i).padStart(3, '0')}`)
    await view.batch(keys.map((key) => ({ type: 'put', key, value: 'x'.repeat(500) })))
    await view.set('old', 1, { ttlMs: 1 })
    await view.set('undef', undefined)
    await cache.set('outside', 1)
    await sleep(5)
    assert.deepEqual(await collect(view.keys()), keys)
    assert.deepEqual(await collect(view.keys({ reverse: true, limit: 3 })), keys.slice(-3).reverse())
    assert.deepEqual(await collect(view.keys({ gt: 'key100', lte: 'key103' })), ['key101', 'key102', 'key103'])
    const entries = await collect(view.entries())
    assert.deepEqual(
      entries.map(([key]) => key),
      keys,
    )
  })
})

test('getMany() returns one value per key from one snapshot, undefined where there is none', async () => {
  await withCache(async (cache) => {
    const view = cache.withNamespace('m')
    const big = 'y'.repeat(100_000) // larger than the scratch buffer: the answer comes as a Buffer
    await view.set('obj', { a: 1, b: [true, null] })
    await view.set('str', 'text')
    await view.set('proto', JSON.parse('{"__proto__":{"x":1}}'))
    await view.set('old', 1, { ttlMs: 1 })
    await view.set('undef', undefined)
    await view.set('null', null)
    await view.set('big', big)
    await cache.set('obj', 'root, not m')
    const long = 'L'.repeat(2000)
    await view.set(long, 'long key')
    await sleep(5)
    const keys = ['obj', 'missing', 'str', 'proto', 'old', 'undef', 'null', long, 'obj']
    const values = await view.getMany(keys)
    assert.deepEqual(values, [
      { a: 1, b: [true, null] },
      undefined,
      'text',
      JSON.parse('{"__proto__":{"x":1}}'),
      undefined,
      undefined,
      null,
      'long key',
      { a: 1, b: [true, null] },
    ])
    assert.equal(Object.getPrototypeOf(values[3]), Object.prototype, '__proto__ stays an own key')
    assert.deepEqual(await view.getMany(['big', 'str']), [big, 'text'])
    assert.deepEqual(await view.getMany([]), [])
    await assert.rejects(view.getMany('obj'), { code: 'ERR_INVALID_KEY' })
    await assert.rejects(view.getMany(['ok', 1]), { code: 'ERR_INVALID_KEY' })
  })
})
