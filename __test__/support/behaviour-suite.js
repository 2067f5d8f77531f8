// The behaviour suite of the level-cache contract, written once and run against
// several implementations / option sets (see ../behaviour.test.js and
// ../baseline.test.js).
//
//   defineBehaviourSuite({ label, open, options, improved })
//
//   open(opts)  -> Promise<Cache>; opts = { ...options, path, ...perTestOptions }
//   options     extra options merged into every open (e.g. { durability: 'nosync' })
//   improved    true for @promethean/lmdb-cache: also pins the points where it
//               deliberately differs from the original (error codes, closed state,
//               emoji/empty/long keys, several handles on one path).

import { describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { SEP, assertRejects, collect, jsonRoundTrip, pseudoRandomString, shuffled, sleep, utf8Compare, withCache, withDir } from './helpers.js'

const TTL_MS = 50
const PAST_TTL_MS = 110 // wait this long for a TTL_MS entry to be expired
const LONG_TTL_MS = 60_000

const CACHE_METHODS = ['get', 'has', 'set', 'del', 'batch', 'entries', 'sweepExpired', 'withNamespace', 'close']

const circular = () => {
  const value = { name: 'loop' }
  value.self = value
  return value
}

/** Values JSON cannot encode (JSON.stringify throws a TypeError). */
const BAD_VALUES = [
  ['a BigInt', () => 10n],
  ['an object holding a BigInt', () => ({ n: [1, 2n] })],
  ['a circular object', circular],
]

export function defineBehaviourSuite({ label, open, options = {}, improved = false }) {
  const inCache = (extra, fn) => withCache(open, options, extra, fn)
  const inDir = (fn) => withDir(open, options, fn)
  const badValueCode = improved ? 'ERR_INVALID_VALUE' : undefined

  describe(`level-cache behaviour [${label}]`, () => {
    // ------------------------------------------------------------------ API shape
    describe('the Cache object', () => {
      test('open resolves to a plain object holding the nine cache functions', async () => {
        await inCache({}, async (cache) => {
          assert.equal(typeof cache, 'object')
          for (const name of CACHE_METHODS) {
            assert.equal(typeof cache[name], 'function', `cache.${name}`)
          }
          const view = cache.withNamespace('v')
          for (const name of CACHE_METHODS) {
            assert.equal(typeof view[name], 'function', `view.${name}`)
          }
        })
      })

      test('set, del, batch and close resolve to undefined', async () => {
        await inCache({}, async (cache) => {
          assert.equal(await cache.set('k', 1), undefined)
          assert.equal(await cache.del('k'), undefined)
          assert.equal(await cache.batch([{ type: 'put', key: 'k', value: 1 }]), undefined)
          assert.equal(await cache.close(), undefined)
        })
      })

      test('opening a path whose parent directories do not exist creates them', async () => {
        await inDir(async ({ dbPath, open: openAt }) => {
          const cache = await openAt({ path: `${dbPath}/nested/deeper/cache` })
          await cache.set('k', 'v')
          assert.equal(await cache.get('k'), 'v')
        })
      })

      test('data persists across close and reopen of the same path', async () => {
        await inDir(async ({ open: openAt }) => {
          const first = await openAt()
          await first.set('k', { kept: true })
          await first.withNamespace('ns').set('j', [1, 2])
          await first.close()
          const second = await openAt()
          assert.deepEqual(await second.get('k'), { kept: true })
          assert.deepEqual(await second.withNamespace('ns').get('j'), [1, 2])
        })
      })
    })

    // ------------------------------------------------------------------ values
    describe('JSON value semantics', () => {
      test('values read back as JSON.parse(JSON.stringify(value)), object key order kept', async () => {
        const cases = [
          ['object (key order b, a, c)', { b: 1, a: 2, c: { z: 1, y: 2 } }],
          ['object with integer-like keys', { b: 1, 2: 'two', a: 0, 1: 'one' }],
          ['array', [1, 'two', null, true, { x: [] }]],
          ['empty string', ''],
          ['string', 'hello'],
          ['zero', 0],
          ['negative float', -1.5],
          ['large number', 1e300],
          ['max safe integer', Number.MAX_SAFE_INTEGER],
          ['smallest denormal', 5e-324],
          ['true', true],
          ['false', false],
          ['empty object', {}],
          ['empty array', []],
          ['deeply nested', { a: [{ b: [{ c: { d: ['deep', { e: null }] } }] }] }],
          ['NaN (reads back null)', NaN],
          ['Infinity (reads back null)', Infinity],
          ['-0 (reads back 0)', -0],
          ['object with undefined and function members (dropped)', { a: undefined, f() {}, b: 1 }],
          ['array holding undefined (reads back null)', [undefined, 1]],
          ['object with toJSON', { toJSON: () => ({ via: 'toJSON' }) }],
          ['Map (reads back {})', new Map([[1, 2]])],
        ]
        await inCache({}, async (cache) => {
          for (const [i, [, value]] of cases.entries()) {
            await cache.set(`v${i}`, value)
          }
          for (const [i, [name, value]] of cases.entries()) {
            const got = await cache.get(`v${i}`)
            const expected = jsonRoundTrip(value)
            assert.deepStrictEqual(got, expected, name)
            assert.equal(JSON.stringify(got), JSON.stringify(value), `${name}: serialised form / key order`)
            assert.equal(await cache.has(`v${i}`), true, `${name}: has`)
          }
        })
      })

      test('a Date reads back as its ISO string, alone or nested', async () => {
        await inCache({}, async (cache) => {
          const when = new Date(Date.UTC(2024, 1, 29, 12, 34, 56, 789))
          await cache.set('date', when)
          await cache.set('nested', { when, list: [when] })
          assert.equal(await cache.get('date'), '2024-02-29T12:34:56.789Z')
          assert.deepEqual(await cache.get('nested'), {
            when: '2024-02-29T12:34:56.789Z',
            list: ['2024-02-29T12:34:56.789Z'],
          })
        })
      })

      test('undefined stored reads back as undefined and has() is false', async () => {
        await inCache({}, async (cache) => {
          await cache.set('k', 'before')
          await cache.set('k', undefined)
          assert.equal(await cache.get('k'), undefined)
          assert.equal(await cache.has('k'), false)
        })
      })

      test('entries() skips a key whose stored value is undefined', async () => {
        await inCache({}, async (cache) => {
          await cache.set('a', 1)
          await cache.set('b', undefined)
          await cache.set('c', 3)
          assert.deepEqual(await collect(cache.entries()), [
            ['a', 1],
            ['c', 3],
          ])
        })
      })

      test('null stored reads back as null and has() is true', async () => {
        await inCache({}, async (cache) => {
          await cache.set('k', null)
          assert.equal(await cache.get('k'), null)
          assert.equal(await cache.has('k'), true)
          assert.deepEqual(await collect(cache.entries()), [['k', null]])
        })
      })

      test('unicode, emoji, NUL, line separators and lone surrogates in values round-trip', async () => {
        const values = [
          'héllo wörld',
          '中文字符',
          '😀👍🏽👨‍👩‍👧 flags 🇫🇷',
          'nul\u0000inside',
          'line\u2028para\u2029',
          'lone \uD800 surrogate',
          `separator ${SEP} inside`,
          { 键: '值', '😀': ['🎉', 'é'] },
        ]
        await inCache({}, async (cache) => {
          for (const [i, value] of values.entries()) await cache.set(`u${i}`, value)
          for (const [i, value] of values.entries()) {
            assert.deepStrictEqual(await cache.get(`u${i}`), jsonRoundTrip(value), `value #${i}`)
          }
        })
      })

      test('a ~200 KB value and a ~5 MB value round-trip', async () => {
        const medium = Array.from({ length: 2000 }, (_, i) => ({
          id: i,
          name: pseudoRandomString(80, i + 1),
          tags: ['a', 'b', String(i)],
        }))
        assert.ok(JSON.stringify(medium).length > 190_000)
        const large = { blob: pseudoRandomString(5 * 1024 * 1024, 42), tail: 'end' }
        await inCache({}, async (cache) => {
          await cache.set('medium', medium)
          await cache.set('large', large)
          await cache.set('small', 's')
          assert.deepStrictEqual(await cache.get('medium'), medium)
          const got = await cache.get('large')
          assert.equal(got.blob.length, large.blob.length)
          assert.ok(got.blob === large.blob, '5 MB string differs')
          assert.equal(got.tail, 'end')
          assert.equal(await cache.get('small'), 's')
          const listed = await collect(cache.entries())
          assert.deepEqual(
            listed.map(([k]) => k),
            ['large', 'medium', 'small'],
          )
          assert.equal(listed[0][1].blob.length, large.blob.length)
        })
      })

      test('stored values are copies: mutating after set or after get changes nothing', async () => {
        await inCache({}, async (cache) => {
          const value = { list: [1, 2], inner: { n: 1 } }
          await cache.set('k', value)
          value.list.push(3)
          value.inner.n = 99
          const first = await cache.get('k')
          assert.deepEqual(first, { list: [1, 2], inner: { n: 1 } })
          first.list.push(4)
          first.inner.n = 42
          assert.deepEqual(await cache.get('k'), { list: [1, 2], inner: { n: 1 } })
        })
      })
    })

    // ------------------------------------------------------------------ basic ops
    describe('get / has / set / del', () => {
      test('get of a missing key is undefined and has() is false', async () => {
        await inCache({}, async (cache) => {
          assert.equal(await cache.get('missing'), undefined)
          assert.equal(await cache.has('missing'), false)
        })
      })

      test('keys of every length around 64 chars, ASCII or not, are told apart and read back', async () => {
        // ASCII keys up to 64 chars take a JS copy into the native buffer, others the UTF-8
        // encoder: keys that differ only in one char must never meet.
        const unique = new Set()
        for (const len of [0, 1, 63, 64, 65, 200]) {
          const base = 'k'.repeat(len)
          for (const tail of ['', '\x7f', '\x80', 'é', '😀']) unique.add(base + tail)
          if (len > 1) unique.add(`é${base.slice(1)}`)
        }
        const keys = [...unique]
        await inCache({}, async (root) => {
          for (const cache of [root, root.withNamespace('ns')]) {
            await cache.batch(keys.map((key, i) => ({ type: 'put', key, value: i })))
            for (let i = 0; i < keys.length; i++) {
              assert.equal(await cache.get(keys[i]), i, `get(${JSON.stringify(keys[i])})`)
              assert.equal(await cache.has(keys[i]), true)
            }
            assert.equal(await cache.get(`${'k'.repeat(64)}x`), undefined)
          }
        })
      })

      test('del of a missing key succeeds', async () => {
        await inCache({}, async (cache) => {
          await cache.del('missing')
          await cache.withNamespace('ns').del('missing')
          assert.equal(await cache.get('missing'), undefined)
        })
      })

      test('set overwrites an existing value', async () => {
        await inCache({}, async (cache) => {
          await cache.set('k', { v: 1 })
          await cache.set('k', 'second')
          assert.equal(await cache.get('k'), 'second')
          assert.deepEqual(await collect(cache.entries()), [['k', 'second']])
        })
      })

      test('del removes a key from get, has and entries', async () => {
        await inCache({}, async (cache) => {
          await cache.set('k', 1)
          await cache.set('other', 2)
          await cache.del('k')
          assert.equal(await cache.get('k'), undefined)
          assert.equal(await cache.has('k'), false)
          assert.deepEqual(await collect(cache.entries()), [['other', 2]])
        })
      })

      test('keys with unicode, emoji, spaces, slashes, NUL and the separator round-trip', async () => {
        const keys = ['中文', 'é', '😀', 'with space', 'a/b', `x${SEP}y`, 'nul\u0000key', '\uFFFD']
        await inCache({}, async (cache) => {
          for (const [i, key] of keys.entries()) await cache.set(key, i)
          for (const [i, key] of keys.entries()) {
            assert.equal(await cache.get(key), i, `key ${JSON.stringify(key)}`)
            assert.equal(await cache.has(key), true)
          }
          for (const key of keys) await cache.del(key)
          assert.deepEqual(await collect(cache.entries()), [])
        })
      })

      test('concurrent sets and gets on distinct keys all land', async () => {
        await inCache({}, async (cache) => {
          const n = 300
          await Promise.all(Array.from({ length: n }, (_, i) => cache.set(`c${String(i).padStart(3, '0')}`, { i })))
          const got = await Promise.all(Array.from({ length: n }, (_, i) => cache.get(`c${String(i).padStart(3, '0')}`)))
          assert.deepEqual(
            got,
            Array.from({ length: n }, (_, i) => ({ i })),
          )
          assert.equal((await collect(cache.entries())).length, n)
        })
      })
    })

    // ------------------------------------------------------------------ namespaces
    describe('namespaces', () => {
      test(`a cache opened with namespace "a" stores key k under "a${SEP}k"`, async () => {
        await inDir(async ({ open: openAt }) => {
          const a = await openAt({ namespace: 'a' })
          await a.set('k', 1)
          assert.deepEqual(await collect(a.entries()), [['k', 1]])
          await a.close()
          const root = await openAt()
          assert.deepEqual(await collect(root.entries()), [[`a${SEP}k`, 1]])
          assert.equal(await root.get(`a${SEP}k`), 1)
          assert.equal(await root.get('k'), undefined)
        })
      })

      test('withNamespace("b") on namespace "a" is namespace "a/b"', async () => {
        await inDir(async ({ open: openAt }) => {
          const a = await openAt({ namespace: 'a' })
          await a.withNamespace('b').set('k', 'ab')
          assert.equal(await a.get('k'), undefined)
          await a.close()
          const root = await openAt()
          assert.deepEqual(await collect(root.entries()), [[`a/b${SEP}k`, 'ab']])
          await root.close()
          const ab = await openAt({ namespace: 'a/b' })
          assert.equal(await ab.get('k'), 'ab')
        })
      })

      test('withNamespace("b") on a cache without namespace is namespace "b"; chains nest with "/"', async () => {
        await inCache({}, async (root) => {
          await root.withNamespace('b').set('k', 1)
          await root.withNamespace('b').withNamespace('c').set('k', 2)
          assert.deepEqual(await collect(root.entries()), [
            [`b/c${SEP}k`, 2],
            [`b${SEP}k`, 1],
          ])
          assert.equal(await root.get(`b${SEP}k`), 1)
          assert.equal(await root.withNamespace('b/c').get('k'), 2)
        })
      })

      test('withNamespace("") keeps the current namespace', async () => {
        await inDir(async ({ open: openAt }) => {
          const a = await openAt({ namespace: 'a' })
          await a.withNamespace('').set('k', 'in a')
          assert.equal(await a.get('k'), 'in a')
          await a.close()
          const root = await openAt()
          await root.withNamespace('').set('top', 'in root')
          assert.deepEqual(await collect(root.entries()), [
            [`a${SEP}k`, 'in a'],
            ['top', 'in root'],
          ])
        })
      })

      test('namespace "" in the options means no namespace', async () => {
        await inDir(async ({ open: openAt }) => {
          const cache = await openAt({ namespace: '' })
          await cache.set('k', 1)
          await cache.close()
          const root = await openAt()
          assert.deepEqual(await collect(root.entries()), [['k', 1]])
        })
      })

      test('views share one database and see each other\u2019s writes', async () => {
        await inCache({}, async (root) => {
          const v1 = root.withNamespace('a').withNamespace('b')
          await v1.set('k', 1)
          assert.equal(await root.withNamespace('a').withNamespace('b').get('k'), 1)
          assert.equal(await root.withNamespace('a/b').get('k'), 1)
          assert.equal(await root.get(`a/b${SEP}k`), 1)
          await root.set(`a/b${SEP}j`, 2)
          assert.equal(await v1.get('j'), 2)
          await root.withNamespace('a').withNamespace('b').del('k')
          assert.equal(await v1.get('k'), undefined)
          assert.equal(await v1.has('j'), true)
        })
      })

      test('the same key in different namespaces does not collide', async () => {
        await inCache({}, async (root) => {
          const spaces = ['a', 'b', 'ab', 'a/b']
          await root.set('k', 'root')
          for (const ns of spaces) await root.withNamespace(ns).set('k', ns)
          for (const ns of spaces) assert.equal(await root.withNamespace(ns).get('k'), ns)
          assert.equal(await root.get('k'), 'root')
          await root.withNamespace('a').del('k')
          assert.equal(await root.withNamespace('a').get('k'), undefined)
          assert.equal(await root.withNamespace('ab').get('k'), 'ab')
          assert.equal(await root.withNamespace('a/b').get('k'), 'a/b')
          assert.equal(await root.get('k'), 'root')
        })
      })
    })

    // ------------------------------------------------------------------ TTL
    describe('TTL', () => {
      test('set with ttlMs is readable before expiry and gone from get/has/entries after', async () => {
        await inCache({}, async (cache) => {
          await cache.set('short', 'v', { ttlMs: TTL_MS })
          await cache.set('forever', 'f')
          assert.equal(await cache.get('short'), 'v')
          assert.equal(await cache.has('short'), true)
          assert.deepEqual(await collect(cache.entries()), [
            ['forever', 'f'],
            ['short', 'v'],
          ])
          await sleep(PAST_TTL_MS)
          assert.deepEqual(await collect(cache.entries()), [['forever', 'f']])
          assert.equal(await cache.get('short'), undefined)
          assert.equal(await cache.has('short'), false)
          assert.equal(await cache.get('forever'), 'f')
        })
      })

      test('defaultTtlMs applies to set and to batch puts without ttlMs, in views too; ttlMs overrides it', async () => {
        await inCache({ defaultTtlMs: TTL_MS }, async (cache) => {
          const view = cache.withNamespace('v')
          await cache.set('d', 1)
          await cache.batch([
            { type: 'put', key: 'bd', value: 2 },
            { type: 'put', key: 'blong', value: 3, ttlMs: LONG_TTL_MS },
          ])
          await cache.set('long', 4, { ttlMs: LONG_TTL_MS })
          await view.set('vd', 5)
          await view.batch([{ type: 'put', key: 'vbd', value: 6 }])
          for (const [c, k] of [
            [cache, 'd'],
            [cache, 'bd'],
            [cache, 'blong'],
            [cache, 'long'],
            [view, 'vd'],
            [view, 'vbd'],
          ]) {
            assert.equal(await c.has(k), true, `${k} before expiry`)
          }
          await sleep(PAST_TTL_MS)
          for (const [c, k] of [
            [cache, 'd'],
            [cache, 'bd'],
            [view, 'vd'],
            [view, 'vbd'],
          ]) {
            assert.equal(await c.get(k), undefined, `${k} after default ttl`)
          }
          assert.equal(await cache.get('blong'), 3)
          assert.equal(await cache.get('long'), 4)
          assert.deepEqual(await collect(cache.entries()), [
            ['blong', 3],
            ['long', 4],
          ])
        })
      })

      test('a per-op ttlMs shorter than defaultTtlMs wins; ttlMs undefined falls back to the default', async () => {
        await inCache({ defaultTtlMs: LONG_TTL_MS }, async (cache) => {
          await cache.set('short', 1, { ttlMs: TTL_MS })
          await cache.batch([{ type: 'put', key: 'bshort', value: 2, ttlMs: TTL_MS }])
          await cache.set('plain', 3)
          await cache.set('undef', 4, { ttlMs: undefined })
          await cache.set('empty-opts', 5, {})
          await sleep(PAST_TTL_MS)
          assert.equal(await cache.get('short'), undefined)
          assert.equal(await cache.get('bshort'), undefined)
          assert.equal(await cache.get('plain'), 3)
          assert.equal(await cache.get('undef'), 4)
          assert.equal(await cache.get('empty-opts'), 5)
        })
      })

      test('ttlMs 0 or negative expires at once (expiry <= now is expired)', async () => {
        await inCache({}, async (cache) => {
          await cache.set('zero', 1, { ttlMs: 0 })
          await cache.set('negative', 2, { ttlMs: -1000 })
          await cache.batch([{ type: 'put', key: 'bzero', value: 3, ttlMs: 0 }])
          await cache.set('kept', 4)
          assert.equal(await cache.get('zero'), undefined)
          assert.equal(await cache.has('negative'), false)
          assert.equal(await cache.get('bzero'), undefined)
          assert.deepEqual(await collect(cache.entries()), [['kept', 4]])
        })
      })

      test('expiry is absolute and stored with the value: it survives close and reopen', async () => {
        await inDir(async ({ open: openAt }) => {
          const first = await openAt()
          await first.set('k', 'v', { ttlMs: TTL_MS + 100 })
          await first.set('p', 'permanent')
          await first.close()
          const second = await openAt()
          assert.equal(await second.get('k'), 'v')
          await sleep(PAST_TTL_MS + 100)
          assert.equal(await second.get('k'), undefined)
          assert.equal(await second.get('p'), 'permanent')
        })
      })

      test('expired entries are skipped by entries() of namespaced views', async () => {
        await inCache({}, async (root) => {
          const a = root.withNamespace('a')
          await a.set('x', 1, { ttlMs: TTL_MS })
          await a.set('y', 2)
          await a.batch([{ type: 'put', key: 'z', value: 3, ttlMs: TTL_MS }])
          await sleep(PAST_TTL_MS)
          assert.deepEqual(await collect(a.entries()), [['y', 2]])
          assert.deepEqual(await collect(root.entries()), [[`a${SEP}y`, 2]])
        })
      })

      test('sweepExpired() from any view deletes every expired entry of every namespace and returns the count', async () => {
        await inCache({}, async (root) => {
          const a = root.withNamespace('a')
          const ab = a.withNamespace('b')
          const other = root.withNamespace('other')
          // five expired-to-be
          await root.set('r1', 1, { ttlMs: TTL_MS })
          await a.set('x', 2, { ttlMs: TTL_MS })
          await ab.batch([{ type: 'put', key: 'z', value: 3, ttlMs: TTL_MS }])
          await other.set('q', 4, { ttlMs: TTL_MS })
          await other.batch([{ type: 'put', key: 'q2', value: 5, ttlMs: TTL_MS }])
          // three survivors
          await root.set('r2', 'keep')
          await a.set('y', 'keep', { ttlMs: LONG_TTL_MS })
          await other.batch([{ type: 'put', key: 'w', value: 'keep' }])
          await sleep(PAST_TTL_MS)
          // Nothing reads the expired entries before the sweep.
          assert.equal(await ab.sweepExpired(), 5)
          assert.equal(await root.sweepExpired(), 0)
          assert.equal(await a.sweepExpired(), 0)
          assert.equal(await root.get('r2'), 'keep')
          assert.equal(await a.get('y'), 'keep')
          assert.equal(await other.get('w'), 'keep')
          assert.deepEqual(
            (await collect(root.entries())).map(([k]) => k),
            [`a${SEP}y`, `other${SEP}w`, 'r2'],
          )
        })
      })

      test('sweepExpired() on an empty database, or with nothing expired, returns 0', async () => {
        await inCache({}, async (cache) => {
          assert.equal(await cache.sweepExpired(), 0)
          await cache.set('k', 1, { ttlMs: LONG_TTL_MS })
          await cache.set('j', 2)
          assert.equal(await cache.withNamespace('n').sweepExpired(), 0)
          assert.equal(await cache.get('k'), 1)
          assert.equal(await cache.get('j'), 2)
        })
      })
    })

    // ------------------------------------------------------------------ entries
    describe('entries()', () => {
      test('yields [key, value] in ascending UTF-8 byte order of the stored key', async () => {
        const keys = ['😀', '中', 'é', 'a', 'B', 'b', 'aa', 'a b', '~', '\uFFFD', '\uFF01', 'Z', '0', ' ', 'Ω']
        await inCache({}, async (cache) => {
          for (const key of shuffled(keys)) await cache.set(key, `v:${key}`)
          const listed = await collect(cache.entries())
          const expected = [...keys].sort(utf8Compare)
          assert.deepEqual(
            listed.map(([k]) => k),
            expected,
          )
          assert.deepEqual(
            listed,
            expected.map((k) => [k, `v:${k}`]),
          )
          const pos = (k) => expected.indexOf(k)
          // byte order, not UTF-16 code unit order ('\uFF01' > '😀' in UTF-16)
          for (const [lo, hi] of [
            ['B', 'a'],
            ['a', 'é'],
            ['é', '中'],
            ['中', '\uFF01'],
            ['\uFF01', '😀'],
          ]) {
            assert.ok(pos(lo) < pos(hi), `${lo} before ${hi}`)
          }
        })
      })

      test('a namespaced view yields its logical keys in byte order', async () => {
        const keys = ['中', 'é', 'a', 'B', 'aa', 'a b', '~', '\uFFFD']
        await inCache({}, async (root) => {
          const ns = root.withNamespace('ns')
          for (const key of shuffled(keys, 3)) await ns.set(key, key.length)
          assert.deepEqual(
            await collect(ns.entries()),
            [...keys].sort(utf8Compare).map((k) => [k, k.length]),
          )
        })
      })

      test(
        improved
          ? 'a key starting with an emoji in a namespace is returned by entries() (the original drops it)'
          : 'a key starting with an emoji in a namespace is dropped by entries() (the original\u2019s U+FFFF range end)',
        async () => {
          await inCache({}, async (root) => {
            const ns = root.withNamespace('ns')
            await ns.set('😀x', 1)
            await ns.set('\uFFFDy', 2)
            await ns.set('b', 3)
            assert.equal(await ns.get('😀x'), 1)
            const expected = improved
              ? [
                  ['b', 3],
                  ['\uFFFDy', 2],
                  ['😀x', 1],
                ]
              : [
                  ['b', 3],
                  ['\uFFFDy', 2],
                ]
            assert.deepEqual(await collect(ns.entries()), expected)
          })
        },
      )

      test('honours limit; limit 0 yields nothing, -1 or absent yields everything', async () => {
        await inCache({}, async (root) => {
          const ns = root.withNamespace('n')
          await ns.batch(['e', 'c', 'a', 'd', 'b'].map((key) => ({ type: 'put', key, value: key })))
          await root.set('outside', 0)
          const keysOf = async (opts) => (await collect(ns.entries(opts))).map(([k]) => k)
          assert.deepEqual(await keysOf({ limit: 2 }), ['a', 'b'])
          assert.deepEqual(await keysOf({ limit: 1 }), ['a'])
          assert.deepEqual(await keysOf({ limit: 5 }), ['a', 'b', 'c', 'd', 'e'])
          assert.deepEqual(await keysOf({ limit: 50 }), ['a', 'b', 'c', 'd', 'e'])
          assert.deepEqual(await keysOf({ limit: 0 }), [])
          assert.deepEqual(await keysOf({ limit: -1 }), ['a', 'b', 'c', 'd', 'e'])
          assert.deepEqual(await keysOf({}), ['a', 'b', 'c', 'd', 'e'])
          assert.deepEqual(await keysOf(undefined), ['a', 'b', 'c', 'd', 'e'])
          assert.deepEqual(await keysOf({ limit: undefined }), ['a', 'b', 'c', 'd', 'e'])
          assert.equal((await collect(root.entries({ limit: 3 }))).length, 3)
        })
      })

      test('a namespaced view sees only its own namespace, not "ab", "a/b", neighbours or root keys', async () => {
        await inCache({}, async (root) => {
          const a = root.withNamespace('a')
          await root.set('a', 'root a')
          await root.set('k', 'root k')
          await a.set('x', 'a x')
          await root.set(`a${SEP}y`, 'a y') // same stored name as a.set('y')
          await root.withNamespace('ab').set('x', 'ab x')
          await a.withNamespace('b').set('z', 'a/b z')
          await root.set('a\u2420', 'neighbour after')
          await root.set('a\u241E', 'neighbour before')
          assert.deepEqual(await collect(a.entries()), [
            ['x', 'a x'],
            ['y', 'a y'],
          ])
          assert.deepEqual(await collect(a.withNamespace('b').entries()), [['z', 'a/b z']])
          assert.deepEqual(await collect(root.withNamespace('ab').entries()), [['x', 'ab x']])
        })
      })

      test('a view without namespace sees every key under its full stored name', async () => {
        await inCache({}, async (root) => {
          await root.set('plain', 1)
          await root.withNamespace('a').set('x', 2)
          await root.withNamespace('a').withNamespace('b').set('y', 3)
          await root.withNamespace('zz').set('w', 4)
          const expected = [
            ['plain', 1],
            [`a${SEP}x`, 2],
            [`a/b${SEP}y`, 3],
            [`zz${SEP}w`, 4],
          ].sort(([x], [y]) => utf8Compare(x, y))
          assert.deepEqual(await collect(root.entries()), expected)
        })
      })

      test('is lazy: breaking out early, return() and interleaved iterators leave the cache working', async () => {
        await inCache({}, async (cache) => {
          const keys = Array.from({ length: 100 }, (_, i) => `k${String(i).padStart(3, '0')}`)
          await cache.batch(keys.map((key, i) => ({ type: 'put', key, value: i })))
          let seen = 0
          for await (const [key, value] of cache.entries()) {
            assert.equal(key, keys[seen])
            assert.equal(value, seen)
            if (++seen === 3) break
          }
          assert.equal(seen, 3)
          const it = cache.entries()
          assert.deepEqual((await it.next()).value, ['k000', 0])
          assert.deepEqual(await it.return(undefined), { value: undefined, done: true })
          assert.deepEqual(await it.next(), { value: undefined, done: true })

          const first = cache.entries({ limit: 4 })
          const second = cache.entries()
          const pairs = []
          for (let i = 0; i < 4; i++) {
            pairs.push([(await first.next()).value[0], (await second.next()).value[0]])
          }
          assert.deepEqual(pairs, [
            ['k000', 'k000'],
            ['k001', 'k001'],
            ['k002', 'k002'],
            ['k003', 'k003'],
          ])
          assert.equal((await first.next()).done, true)
          await second.return(undefined)

          await cache.set('after', 'x')
          await cache.del('k050')
          assert.equal(await cache.get('after'), 'x')
          const all = await collect(cache.entries())
          assert.equal(all.length, 100)
          assert.deepEqual(all.at(-1), ['k099', 99])
        })
      })

      test('close() resolves while an entries() iterator is suspended mid-way', async () => {
        await inDir(async ({ open: openAt }) => {
          const cache = await openAt()
          await cache.batch(Array.from({ length: 50 }, (_, i) => ({ type: 'put', key: `k${i}`, value: i })))
          const it = cache.entries()
          await it.next()
          await cache.close()
          const again = await openAt()
          assert.equal((await collect(again.entries())).length, 50)
        })
      })

      test('yields all of 6,000 keys in order', async () => {
        const n = 6000
        const keys = Array.from({ length: n }, (_, i) => `item:${String(i).padStart(5, '0')}`)
        await inCache({}, async (root) => {
          const ns = root.withNamespace('big')
          await ns.batch(shuffled(keys, 11).map((key) => ({ type: 'put', key, value: { key, pad: 'x'.repeat(64) } })))
          let i = 0
          for await (const [key, value] of ns.entries()) {
            assert.equal(key, keys[i])
            assert.equal(value.key, keys[i])
            i++
          }
          assert.equal(i, n)
        })
      })
      test('yields values small and large, ASCII or not, exactly, with gets in between', async () => {
        // Sizes around the native page limits (pages of ~32 KB built in a 64 KB area; larger
        // ones travel separately), text that is ASCII or not, and a get() between entries,
        // which reuses the buffer a page may have been read from.
        const sizes = [10, 20_000, 40_000, 70_000, 200_000, 5, 33_000, 65_536, 1]
        const text = (i, n) => (i % 2 === 0 ? 'a' : 'é😀').repeat(Math.ceil(n / (i % 2 === 0 ? 1 : 3))).slice(0, n)
        const expected = sizes.map((n, i) => [`k${i}`, { i, body: text(i, n) }])
        await inCache({}, async (root) => {
          const ns = root.withNamespace('sizes')
          await ns.batch(expected.map(([key, value]) => ({ type: 'put', key, value })))
          await root.set('other', { small: true })
          const got = []
          for await (const entry of ns.entries()) {
            got.push(entry)
            assert.deepEqual(await root.get('other'), { small: true })
          }
          // Compared piecewise: a failing deepEqual would print megabytes.
          assert.deepEqual(
            got.map(([key]) => key),
            expected.map(([key]) => key),
          )
          for (let i = 0; i < expected.length; i++) {
            assert.equal(got[i][1].i, i)
            assert.ok(got[i][1].body === expected[i][1].body, `value of k${i} (${sizes[i]} chars) differs`)
          }
        })
      })
    })

    // ------------------------------------------------------------------ batch
    describe('batch', () => {
      test('applies mixed put/del operations, visible once it resolves', async () => {
        await inCache({}, async (cache) => {
          await cache.set('gone', 1)
          await cache.set('changed', 'old')
          await cache.batch([
            { type: 'put', key: 'new', value: { n: 1 } },
            { type: 'del', key: 'gone' },
            { type: 'put', key: 'changed', value: 'new' },
            { type: 'del', key: 'never-existed' },
          ])
          assert.deepEqual(await cache.get('new'), { n: 1 })
          assert.equal(await cache.has('gone'), false)
          assert.equal(await cache.get('changed'), 'new')
          assert.deepEqual(await collect(cache.entries()), [
            ['changed', 'new'],
            ['new', { n: 1 }],
          ])
        })
      })

      test('operations on one key apply in order: the last one wins', async () => {
        await inCache({}, async (cache) => {
          await cache.batch([
            { type: 'put', key: 'a', value: 1 },
            { type: 'del', key: 'a' },
            { type: 'del', key: 'b' },
            { type: 'put', key: 'b', value: 2 },
            { type: 'put', key: 'c', value: 1 },
            { type: 'put', key: 'c', value: 3 },
          ])
          assert.equal(await cache.has('a'), false)
          assert.equal(await cache.get('b'), 2)
          assert.equal(await cache.get('c'), 3)
        })
      })

      test('batch of a namespaced view writes into that namespace', async () => {
        await inCache({}, async (root) => {
          const ns = root.withNamespace('n')
          await root.set(`n${SEP}old`, 'x')
          await ns.batch([
            { type: 'put', key: 'k', value: 1 },
            { type: 'del', key: 'old' },
          ])
          assert.deepEqual(await collect(root.entries()), [[`n${SEP}k`, 1]])
        })
      })

      for (const [name, make] of BAD_VALUES) {
        test(`a batch holding ${name} rejects with a TypeError and writes none of its operations`, async () => {
          await inCache({}, async (cache) => {
            await cache.set('keep', 'old')
            await cache.set('doomed', 'still here')
            await assertRejects(
              () =>
                cache.batch([
                  { type: 'put', key: 'good1', value: 1 },
                  { type: 'del', key: 'doomed' },
                  { type: 'put', key: 'keep', value: 'new' },
                  { type: 'put', key: 'bad', value: make() },
                  { type: 'put', key: 'good2', value: 2 },
                ]),
              TypeError,
              badValueCode,
              'batch',
            )
            assert.equal(await cache.get('good1'), undefined)
            assert.equal(await cache.get('good2'), undefined)
            assert.equal(await cache.get('bad'), undefined)
            assert.equal(await cache.get('doomed'), 'still here')
            assert.equal(await cache.get('keep'), 'old')
            assert.deepEqual(await collect(cache.entries()), [
              ['doomed', 'still here'],
              ['keep', 'old'],
            ])
            await cache.set('after', 1)
            assert.equal(await cache.get('after'), 1)
          })
        })
      }

      test('an empty batch resolves and changes nothing', async () => {
        await inCache({}, async (cache) => {
          await cache.set('k', 1)
          assert.equal(await cache.batch([]), undefined)
          assert.deepEqual(await collect(cache.entries()), [['k', 1]])
        })
      })
    })

    // ------------------------------------------------------------------ bad values
    describe('values JSON cannot encode', () => {
      for (const [name, make] of BAD_VALUES) {
        test(`set of ${name} rejects with a TypeError and leaves the previous value`, async () => {
          await inCache({}, async (cache) => {
            await cache.set('k', 'previous')
            await assertRejects(() => cache.set('k', make()), TypeError, badValueCode, 'set')
            await assertRejects(() => cache.set('fresh', make()), TypeError, badValueCode, 'set')
            await assertRejects(() => cache.withNamespace('n').set('k', make()), TypeError, badValueCode, 'view set')
            assert.equal(await cache.get('k'), 'previous')
            assert.equal(await cache.has('fresh'), false)
            assert.deepEqual(await collect(cache.entries()), [['k', 'previous']])
          })
        })
      }
    })

    // ------------------------------------------------------------------ close
    describe('close()', () => {
      test('is idempotent: a second close resolves', async () => {
        await inCache({}, async (cache) => {
          await cache.close()
          await cache.close()
        })
      })

      test('views share it: closing a view closes the database; closing again from any view resolves', async () => {
        await inDir(async ({ open: openAt }) => {
          const root = await openAt()
          const view = root.withNamespace('v')
          await root.set('k', 1)
          await view.set('x', 2)
          await view.close()
          await root.close()
          await view.close()
          await root.withNamespace('w').close()
          const again = await openAt()
          assert.equal(await again.get('k'), 1)
          assert.equal(await again.withNamespace('v').get('x'), 2)
        })
      })
    })

    if (!improved) return

    // ================================================================== improved
    describe('improvements over the original (@promethean/lmdb-cache only)', () => {
      test('writes fired in one turn apply in call order, also a burst of megabytes handed over in parts', async () => {
        await inCache({}, async (cache) => {
          // 1,200 writes of ~8 KB (~9 MB) without awaiting: sets, dels and batches on 40 keys,
          // each key written many times; the last write of each key must win.
          const model = new Map()
          const pending = []
          const filler = 'x'.repeat(8000)
          for (let i = 0; i < 1200; i++) {
            const key = `burst${i % 40}`
            if (i % 7 === 3) {
              pending.push(cache.del(key))
              model.delete(key)
            } else if (i % 11 === 5) {
              const other = `burst${(i + 1) % 40}`
              pending.push(
                cache.batch([
                  { type: 'put', key, value: { i, filler } },
                  { type: 'del', key: other },
                ]),
              )
              model.set(key, { i, filler })
              model.delete(other)
            } else {
              pending.push(cache.set(key, { i, filler }))
              model.set(key, { i, filler })
            }
          }
          await Promise.all(pending)
          for (let k = 0; k < 40; k++) {
            const key = `burst${k}`
            assert.deepEqual(await cache.get(key), model.get(key), key)
          }
          assert.equal((await collect(cache.entries())).length, model.size)
        })
      })

      test('an entries() iterator yields nothing more after close(), not even entries of a page already read', async () => {
        await inCache({}, async (cache) => {
          await cache.batch(Array.from({ length: 300 }, (_, i) => ({ type: 'put', key: `k${String(i).padStart(3, '0')}`, value: i })))
          const it = cache.entries()
          assert.deepEqual((await it.next()).value, ['k000', 0])
          assert.deepEqual((await it.next()).value, ['k001', 1])
          await cache.close()
          await assertRejects(() => it.next(), Error, 'ERR_CACHE_CLOSED', 'next() after close')
          assert.deepEqual(await it.next(), { value: undefined, done: true }, 'the failed iterator is finished')
        })
      })

      test('entries() and count() cross more expired entries than one page may skip (16,384) and find the live ones', async () => {
        await inCache({}, async (cache) => {
          const ops = Array.from({ length: 40_000 }, (_, i) => ({ type: 'put', key: `e${String(i).padStart(5, '0')}`, value: i, ttlMs: 1 }))
          ops.push({ type: 'put', key: 'live1', value: 1 }, { type: 'put', key: 'a-live0', value: 0 })
          await cache.batch(ops)
          await new Promise((resolve) => setTimeout(resolve, 20))
          assert.deepEqual(await collect(cache.entries()), [
            ['a-live0', 0],
            ['live1', 1],
          ])
          assert.deepEqual(await collect(cache.entries({ reverse: true, limit: 1 })), [['live1', 1]])
          assert.equal(await cache.count(), 2)
        })
      })

      test('a batch with a hole (sparse array) rejects with ERR_INVALID_BATCH and writes none of it', async () => {
        await inCache({}, async (cache) => {
          // biome-ignore lint/suspicious/noSparseArray: the hole is what this case tests
          const sparse = [{ type: 'put', key: 'a', value: 1 }, , { type: 'put', key: 'b', value: 2 }]
          await assertRejects(() => cache.batch(sparse), TypeError, 'ERR_INVALID_BATCH', 'batch with a hole')
          await assertRejects(() => cache.batch(new Array(3)), TypeError, 'ERR_INVALID_BATCH', 'batch of new Array(3)')
          assert.equal(await cache.has('a'), false)
          assert.equal(await cache.has('b'), false)
        })
      })

      test('the empty key works for set/get/has/del/entries, in the root and in a namespace', async () => {
        await inCache({}, async (root) => {
          const ns = root.withNamespace('n')
          await root.set('', 'root empty')
          await root.set('a', 'root a')
          await ns.set('', 'ns empty')
          await ns.set('b', 'ns b')
          assert.equal(await root.get(''), 'root empty')
          assert.equal(await root.has(''), true)
          assert.equal(await ns.get(''), 'ns empty')
          assert.equal(await root.get(`n${SEP}`), 'ns empty')
          assert.deepEqual(await collect(ns.entries()), [
            ['', 'ns empty'],
            ['b', 'ns b'],
          ])
          assert.deepEqual(await collect(root.entries()), [
            ['', 'root empty'],
            ['a', 'root a'],
            [`n${SEP}`, 'ns empty'],
            [`n${SEP}b`, 'ns b'],
          ])
          await root.del('')
          await ns.batch([
            { type: 'del', key: '' },
            { type: 'put', key: '', value: 'again' },
          ])
          assert.equal(await root.get(''), undefined)
          assert.equal(await root.has(''), false)
          assert.equal(await ns.get(''), 'again')
          await ns.batch([{ type: 'del', key: '' }])
          assert.equal(await ns.has(''), false)
          assert.deepEqual(await collect(root.entries()), [
            ['a', 'root a'],
            [`n${SEP}b`, 'ns b'],
          ])
        })
      })

      test('keys longer than 511 UTF-8 bytes round-trip through set/get/has/del/batch and entries()', async () => {
        const keys = [
          'x'.repeat(511), // exactly at the LMDB limit
          'x'.repeat(512), // one byte over
          'x'.repeat(600),
          'y'.repeat(5000),
          '中'.repeat(200), // 600 bytes of 3-byte chars
          '中'.repeat(171), // 513 bytes
          '😀'.repeat(150), // 600 bytes of 4-byte chars
          `${'p'.repeat(700)}1`, // long keys sharing a long prefix must not collide
          `${'p'.repeat(700)}2`,
          `${'p'.repeat(5000)}1`,
        ]
        await inCache({}, async (root) => {
          const ns = root.withNamespace('long')
          for (const [i, key] of keys.entries()) {
            await root.set(key, i)
            await ns.set(key, -(i + 1))
          }
          for (const [i, key] of keys.entries()) {
            assert.equal(await root.get(key), i, `root get of key #${i}`)
            assert.equal(await root.has(key), true, `root has of key #${i}`)
            assert.equal(await ns.get(key), -(i + 1), `ns get of key #${i}`)
            assert.equal(await root.get(`long${SEP}${key}`), -(i + 1), `stored name of key #${i}`)
          }
          const listedNs = await collect(ns.entries())
          assert.deepEqual(new Set(listedNs.map(([k]) => k)), new Set(keys), 'entries() yields the original keys')
          assert.equal(listedNs.length, keys.length)
          for (const [key, value] of listedNs) assert.equal(value, -(keys.indexOf(key) + 1))

          for (const key of keys) await root.del(key)
          await ns.batch(keys.map((key) => ({ type: 'del', key })))
          for (const key of keys) {
            assert.equal(await root.get(key), undefined)
            assert.equal(await ns.has(key), false)
          }
          assert.deepEqual(await collect(root.entries()), [])

          await ns.batch(keys.map((key, i) => ({ type: 'put', key, value: i })))
          assert.equal(await ns.get(keys[3]), 3)
        })
      })

      // Documented rule (README, "File format"): keys are in byte order, except that keys
      // longer than 480 UTF-8 bytes that share their first 480 bytes come as one contiguous
      // group, placed in byte order, and in a stable hash order within the group.
      test('entries() yields keys longer than 480 bytes in exact byte order, and gt-cursor paging visits each once', async () => {
        const group = [`${'a'.repeat(600)}2`, `${'a'.repeat(600)}1`, 'a'.repeat(600), `${'a'.repeat(510)}b`]
        const keys = ['a', 'b', ...group, 'a'.repeat(480), 'ab', '中'.repeat(300), `${'a'.repeat(479)}b${'z'.repeat(100)}`]
        await inCache({}, async (cache) => {
          for (const key of shuffled(keys, 5)) await cache.set(key, key.length)
          const sorted = [...keys].sort(utf8Compare)
          assert.deepEqual(
            (await collect(cache.entries())).map(([k]) => k),
            sorted,
          )
          assert.deepEqual(
            (await collect(cache.entries({ reverse: true }))).map(([k]) => k),
            [...sorted].reverse(),
          )
          // A namespace over 480 bytes makes every key of it long and of one group.
          const ns = cache.withNamespace('n'.repeat(470))
          const nsKeys = Array.from({ length: 12 }, (_, i) => `item-${String(i).padStart(3, '0')}`)
          for (const key of shuffled(nsKeys, 7)) await ns.set(key, key)
          for (const limit of [1, 3, 5]) {
            const paged = []
            let last
            for (;;) {
              const page = await collect(ns.entries(last === undefined ? { limit } : { gt: last, limit }))
              if (page.length === 0) break
              paged.push(...page.map(([k]) => k))
              last = page[page.length - 1][0]
            }
            assert.deepEqual(paged, nsKeys, `gt paging, ${limit} per page`)
          }
          assert.equal(await ns.count({ gt: 'item-004', lte: 'item-009' }), 5)
        })
      })

      test('a namespace making the stored key longer than 511 bytes works', async () => {
        await inCache({}, async (root) => {
          const ns = root.withNamespace('n'.repeat(510))
          await ns.set('k', 1)
          await ns.set('j', 2)
          assert.equal(await ns.get('k'), 1)
          assert.equal(await root.get(`${'n'.repeat(510)}${SEP}k`), 1)
          assert.deepEqual(await collect(ns.entries()), [
            ['j', 2],
            ['k', 1],
          ])
          await ns.del('k')
          assert.equal(await ns.has('k'), false)
        })
      })

      test('a non-string key rejects with a TypeError whose code is ERR_INVALID_KEY and writes nothing', async () => {
        const badKeys = [
          ['a number', 1],
          ['undefined', undefined],
          ['null', null],
          ['an object', { k: 1 }],
          ['a Symbol', Symbol('k')],
        ]
        await inCache({}, async (cache) => {
          const view = cache.withNamespace('v')
          for (const [name, key] of badKeys) {
            for (const target of [cache, view]) {
              await assertRejects(() => target.get(key), TypeError, 'ERR_INVALID_KEY', `get(${name})`)
              await assertRejects(() => target.has(key), TypeError, 'ERR_INVALID_KEY', `has(${name})`)
              await assertRejects(() => target.set(key, 1), TypeError, 'ERR_INVALID_KEY', `set(${name})`)
              await assertRejects(() => target.del(key), TypeError, 'ERR_INVALID_KEY', `del(${name})`)
              await assertRejects(
                () =>
                  target.batch([
                    { type: 'put', key: 'good', value: 1 },
                    { type: 'put', key, value: 1 },
                  ]),
                TypeError,
                'ERR_INVALID_KEY',
                `batch put(${name})`,
              )
              await assertRejects(
                () =>
                  target.batch([
                    { type: 'put', key: 'good', value: 1 },
                    { type: 'del', key },
                  ]),
                TypeError,
                'ERR_INVALID_KEY',
                `batch del(${name})`,
              )
            }
          }
          assert.deepEqual(await collect(cache.entries()), [])
        })
      })

      test('every method after close() rejects with code ERR_CACHE_CLOSED; close() still resolves', async () => {
        await inCache({}, async (cache) => {
          const view = cache.withNamespace('v')
          await cache.set('k', 1)
          await cache.close()
          const closed = (call, what) => assertRejects(call, Error, 'ERR_CACHE_CLOSED', what)
          await closed(() => cache.get('k'), 'get')
          await closed(() => cache.has('k'), 'has')
          await closed(() => cache.set('k', 2), 'set')
          await closed(() => cache.del('k'), 'del')
          await closed(() => cache.batch([{ type: 'put', key: 'k', value: 3 }]), 'batch')
          await closed(() => cache.sweepExpired(), 'sweepExpired')
          const it = cache.entries()
          await closed(() => it.next(), 'entries().next()')
          await closed(() => view.get('k'), 'view created before close: get')
          await closed(() => view.set('k', 1), 'view created before close: set')
          await closed(() => cache.withNamespace('w').get('k'), 'withNamespace after close: get')
          await closed(() => cache.withNamespace('w').entries().next(), 'withNamespace after close: entries().next()')
          assert.equal(await cache.close(), undefined)
          assert.equal(await view.close(), undefined)
        })
      })

      test('closing a view closes the shared database for the root cache too', async () => {
        await inCache({}, async (cache) => {
          const view = cache.withNamespace('v')
          await cache.set('k', 1)
          await view.close()
          await assertRejects(() => cache.get('k'), Error, 'ERR_CACHE_CLOSED', 'root get after view close')
        })
      })

      test('two opens of one path both work, see each other\u2019s writes, and closing one leaves the other working', async () => {
        await inDir(async ({ open: openAt }) => {
          const one = await openAt()
          const two = await openAt()
          const nsTwo = await openAt({ namespace: 'n' })
          await one.set('a', 1)
          assert.equal(await two.get('a'), 1)
          await two.set('b', 2)
          assert.equal(await one.get('b'), 2)
          await nsTwo.set('c', 3)
          assert.equal(await one.get(`n${SEP}c`), 3)
          await two.batch([
            { type: 'del', key: 'a' },
            { type: 'put', key: 'd', value: 4 },
          ])
          assert.equal(await one.has('a'), false)
          assert.deepEqual(await collect(one.entries()), [
            ['b', 2],
            ['d', 4],
            [`n${SEP}c`, 3],
          ])

          await one.close()
          await assertRejects(() => one.get('b'), Error, 'ERR_CACHE_CLOSED', 'closed handle')
          assert.equal(await two.get('b'), 2)
          await two.set('e', 5)
          assert.equal(await two.get('e'), 5)
          assert.equal(await nsTwo.get('c'), 3)
          assert.equal(await two.sweepExpired(), 0)
          assert.equal((await collect(two.entries())).length, 4)

          const three = await openAt()
          assert.equal(await three.get('e'), 5)
          await three.close()
          assert.equal(await two.get('e'), 5)
        })
      })

      test('each handle on one path keeps its own defaultTtlMs', async () => {
        await inDir(async ({ open: openAt }) => {
          const short = await openAt({ defaultTtlMs: TTL_MS })
          const plain = await openAt()
          await short.set('s', 1)
          await plain.set('p', 2)
          await sleep(PAST_TTL_MS)
          assert.equal(await plain.get('s'), undefined)
          assert.equal(await short.get('p'), 2)
        })
      })
    })
  })
}
