// Value format 2: what a read returns is exactly JSON.parse(JSON.stringify(value)), whatever
// the value, through every path (get, batch + entries, reopen, a format-1 directory), whether
// the record holds MessagePack or kept its JSON text. Property tests on fast-check.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import fc from 'fast-check'
import { openLmdbCache } from '../index.js'
import { collect } from './support/helpers.js'

const FORMAT1_FIXTURE = new URL('./fixtures/format1-cache/data.mdb', import.meta.url)

/** What level-cache returns for a stored value; `undefined` where JSON leaves it out. */
function expected(value) {
  const text = JSON.stringify(value)
  return text === undefined ? undefined : JSON.parse(text)
}

/** Equal as JSON.parse would have made it: same structure, prototypes, -0, and key order. */
function assertSameValue(got, want, what) {
  assert.equal(JSON.stringify(got), JSON.stringify(want), `${what}: as JSON, key order included`)
  try {
    assert.deepStrictEqual(got, want, what)
  } catch (error) {
    // deepStrictEqual recurses too deep for the 2,000-level values; JSON text compared them.
    if (!(error instanceof RangeError)) throw error
  }
}

// Numbers JSON rounds or rewrites, and integers past the int32/2^53 edges of the encoding.
const hostileNumber = fc.constantFrom(
  -0,
  NaN,
  Infinity,
  -Infinity,
  2 ** 31 - 1,
  2 ** 31,
  -(2 ** 31),
  -(2 ** 31) - 1,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 53 - 1,
  2 ** 53,
  2 ** 53 + 2,
  2 ** 64,
  -(2 ** 63),
  1e21,
  1e-7,
  5e-324,
  Number.MAX_VALUE,
  0.1 + 0.2,
)
// Strings with lone surrogates, escapes, non-ASCII, and the keys msgpack decoders treat specially.
const hostileString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('\ud800', 'a\udc00b', '\u0000', '"\\\n\t', '\u2028', '😀', '__proto__', 'constructor', 'toString', ''),
)
const key = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('__proto__', 'constructor', 'hasOwnProperty', '0', '-1', '1e3'))

/** An object with the given own entries, `__proto__` included as an own property. */
function ownObject(entries) {
  const object = {}
  for (const [k, v] of entries) Object.defineProperty(object, k, { value: v, enumerable: true, writable: true, configurable: true })
  return object
}

const { value: jsonish } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.oneof(fc.double(), fc.integer(), fc.maxSafeInteger(), hostileNumber),
    hostileString,
    fc.constantFrom(null, true, false, undefined),
    fc.constantFrom(() => 1, Symbol('s')),
    fc.date({ noInvalidDate: true }),
    tie('array'),
    tie('object'),
    tie('withToJSON'),
  ),
  array: fc.oneof(fc.array(tie('value'), { maxLength: 6 }), fc.sparseArray(tie('value'), { maxLength: 6 })),
  object: fc.array(fc.tuple(key, tie('value')), { maxLength: 6 }).map(ownObject),
  withToJSON: tie('value').map((inner) => ({ toJSON: () => inner, ignored: 1 })),
}))

async function withCache(fn, extra = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-format-'))
  try {
    return await fn(dir, (more = {}) => openLmdbCache({ path: dir, durability: 'nosync', ...extra, ...more }))
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** Every value of `values` through set/get, batch/entries and a reopen of `dir`. */
async function checkRoundTrips(open, values) {
  let cache = await open()
  try {
    const keys = values.map((_, i) => `v${String(i).padStart(3, '0')}`)
    for (let i = 0; i < values.length; i++) {
      await cache.set(keys[i], values[i])
      assertSameValue(await cache.get(keys[i]), expected(values[i]), `get after set of #${i}`)
    }
    const view = cache.withNamespace('batch')
    await view.batch(values.map((value, i) => ({ type: 'put', key: keys[i], value })))
    const entries = new Map(await collect(view.entries()))
    for (let i = 0; i < values.length; i++) {
      const want = expected(values[i])
      if (want === undefined) assert.equal(entries.has(keys[i]), false, `#${i}: undefined is absent from entries()`)
      else assertSameValue(entries.get(keys[i]), want, `entries() of #${i}`)
    }
    await cache.close()
    cache = await open()
    for (let i = 0; i < values.length; i++) {
      assertSameValue(await cache.get(keys[i]), expected(values[i]), `get after reopen of #${i}`)
    }
  } finally {
    await cache.close()
  }
}

test('any JSON-like value reads back as JSON.parse(JSON.stringify(value)): get, batch/entries, reopen', async () => {
  await withCache(async (_dir, open) => {
    await fc.assert(
      fc.asyncProperty(fc.array(jsonish, { minLength: 1, maxLength: 12 }), (values) => checkRoundTrips(open, values)),
      { numRuns: 120 },
    )
  })
})

test('in a format-1 directory, old records read as they were and new ones round-trip as anywhere', async () => {
  await withCache(async (dir, open) => {
    fs.copyFileSync(FORMAT1_FIXTURE, path.join(dir, 'data.mdb'))
    const cache = await open()
    // Written by 0.1.0 (see fixtures/format1-cache/make.mjs).
    assert.deepEqual(await cache.get('obj'), { id: 1, name: 'x', tags: ['a', 'b'], ok: true, nil: null })
    assert.equal(await cache.get('lone'), 'a\ud800b')
    assert.equal(await cache.get('big'), 2 ** 64)
    const proto = await cache.get('proto')
    assert.deepEqual(Object.keys(proto), ['__proto__', 'a'])
    assert.equal(Object.getPrototypeOf(proto), Object.prototype)
    assert.equal(await cache.get('ttl').then((v) => v.keep), 'until 2200')
    assert.equal(await cache.get('k'.repeat(600)), 'long key value')
    assert.equal(await cache.has('undef'), false)
    assert.equal(
      await cache
        .withNamespace('users')
        .get('u1')
        .then((v) => v.name),
      'Ann',
    )
    assert.equal((await collect(cache.entries())).length, 17)
    await cache.close()
    await fc.assert(
      fc.asyncProperty(fc.array(jsonish, { minLength: 1, maxLength: 8 }), (values) => checkRoundTrips(open, values)),
      { numRuns: 30 },
    )
  })
})

test('deep nesting, long strings and values past the scratch buffer round-trip', async () => {
  await withCache(async (_dir, open) => {
    const deepArray = JSON.parse(`${'['.repeat(2000)}1${']'.repeat(2000)}`)
    let deepObject = { leaf: true }
    for (let i = 0; i < 2000; i++) deepObject = { [`k${i % 3}`]: deepObject }
    const longText = 'x'.repeat(200 * 1024)
    const big = Array.from({ length: 3000 }, (_, i) => ({ i, text: `item ${i} ${'é'.repeat(20)}` }))
    // 127 levels: within what MessagePack carries (the transcoder's limit is 128).
    const nested127 = JSON.parse(`${'['.repeat(127)}"in"${']'.repeat(127)}`)
    await checkRoundTrips(open, [deepArray, deepObject, longText, { longText }, big, nested127, [longText, 'a\ud800']])
  })
})

test('a toJSON or ttlMs getter that writes to a cache leaves the value being encoded intact', async () => {
  await withCache(async (_dir, open) => {
    const cache = await open()
    try {
      const inner = { z: 'inner value', n: [1, 2, 3] }
      // The nested set runs in the middle of the outer value's encoding, and again between
      // reading the options and encoding.
      const outer = {
        a: 'before the nested write',
        b: {
          toJSON() {
            cache.set('from-toJSON', inner)
            return 'B'
          },
        },
        c: 'x'.repeat(5000),
      }
      const opts = {
        get ttlMs() {
          cache.set('from-getter', { deep: { inner } })
          return undefined
        },
      }
      await cache.set('outer', outer, opts)
      await cache.set('outer-batch', outer)
      await cache.batch([{ type: 'put', key: 'outer-in-batch', value: outer }])
      for (const key of ['outer', 'outer-batch', 'outer-in-batch']) {
        assert.deepStrictEqual(await cache.get(key), { a: 'before the nested write', b: 'B', c: 'x'.repeat(5000) }, key)
      }
      assert.deepStrictEqual(await cache.get('from-toJSON'), inner)
      assert.deepStrictEqual(await cache.get('from-getter'), { deep: { inner } })
    } finally {
      await cache.close()
    }
  })
})
