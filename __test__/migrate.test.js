// migrateFromLevel: copies a real level-cache directory (LevelDB written with level-cache's
// exact conventions through benchmark/backends/level-cache.js) into an lmdb-cache directory.
// 50k entries with nested namespaces, unicode, long and empty keys, expired and unexpired
// TTLs; every live entry must arrive with the same value and the same absolute expiry, the
// source must stay byte-for-byte unchanged, and a migration killed mid-way (SIGKILL) must
// complete when run again.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { Level } from 'level'
import { openLevelBackedCache } from '../benchmark/backends/level-cache.js'
import { cacheStats, getEntry, migrateFromLevel, openLmdbCache, putEntries } from '../index.js'
import { CACHE_DIR_FILES, SEP, cli, fingerprint, tempDir } from './support/cli-helpers.js'

const COUNT = 50_000
const NAMESPACES = ['', 'users', 'users/sessions', 'ñs😀']
const HOUR = 3_600_000

/** The i-th entry of the data set: namespace, key, value, ttlMs. */
function entryFor(i) {
  const ns = NAMESPACES[i % NAMESPACES.length]
  const keyForms = [
    () => `k${i}`,
    () => `ключ-${i}`,
    () => `鍵${i}`,
    () => `😀${i}`, // outside the BMP: level-cache's own prefix scan misses these
    () => `e\u0301${i}`,
    () => `a${SEP}b${i}`, // the separator inside a key
    () => `${'long-'.repeat(i % 1000 === 6 ? 120 : 1)}${i}`, // some past LMDB's key size
    () => `spaces and "quotes" ${i}`,
  ]
  const key = keyForms[i % keyForms.length]()
  const values = [
    () => ({ id: i, name: `user ${i}`, tags: ['a', 'ü'], nested: { deep: [1, { x: null }] } }),
    () => [i, 'two', 3.5, false],
    () => `value ${i} ✓ 😀`,
    () => i * 1.25,
    () => null,
    () => i % 2 === 0,
  ]
  const value = values[i % values.length]()
  // No expiry; an hour; already expired; two hours and a fraction of a millisecond.
  const ttls = [undefined, HOUR, -1000, 2 * HOUR + 0.5, undefined]
  const ttlMs = ttls[i % ttls.length]
  return { ns, key, value, ttlMs }
}

/** Writes the data set with level-cache's conventions; returns the source's raw contents. */
async function buildLevelCache(dir) {
  const root = await openLevelBackedCache({ path: dir })
  const views = new Map(NAMESPACES.map((ns) => [ns, ns === '' ? root : root.withNamespace(ns)]))
  const BATCH = 1000
  for (let start = 0; start < COUNT; start += BATCH) {
    const byNs = new Map()
    for (let i = start; i < Math.min(start + BATCH, COUNT); i++) {
      const { ns, key, value, ttlMs } = entryFor(i)
      if (!byNs.has(ns)) byNs.set(ns, [])
      byNs.get(ns).push({ type: 'put', key, value, ttlMs })
    }
    for (const [ns, ops] of byNs) await views.get(ns).batch(ops)
  }
  // Keys level-cache handles specially: the empty key, a lone surrogate (stored as U+FFFD),
  // stored undefined values (absent for get), an emoji-first key in a namespace.
  await root.set('', { empty: true })
  await root.set('lone\uD800surrogate', 'replaced')
  await root.set('undefined-1', undefined)
  await views.get('users').set('undefined-2', undefined, { ttlMs: HOUR })
  await views.get('users').set('🎉first', 'party')
  await root.close()
  // Values no level-cache writes: not JSON, and JSON that is not an envelope.
  const raw = new Level(dir, { valueEncoding: 'utf8' })
  await raw.open()
  await raw.put('foreign-not-json', 'not json {')
  await raw.put('foreign-string', '"just a string"')
  await raw.close()
  return readSource(dir)
}

/** Every stored key of the LevelDB directory with its envelope (null: not a JSON object). */
async function readSource(dir) {
  const db = new Level(dir, { valueEncoding: 'utf8' })
  await db.open()
  const out = new Map()
  for await (const [key, text] of db.iterator()) {
    let envelope = null
    try {
      envelope = JSON.parse(text)
    } catch {}
    out.set(key, envelope !== null && typeof envelope === 'object' && !Array.isArray(envelope) ? envelope : null)
  }
  await db.close()
  return out
}

/** The entries level-cache's get() returns at `now`: key -> { value, expiresAt }. */
function liveEntries(source, now, keep = () => true) {
  const live = new Map()
  for (const [key, envelope] of source) {
    if (envelope === null || envelope.v === undefined || !keep(key)) continue
    const x = typeof envelope.x === 'number' ? envelope.x : null
    if (x !== null && x <= now) continue
    live.set(key, { value: envelope.v, expiresAt: x === null ? null : Math.ceil(x) })
  }
  return live
}

/** Asserts that the lmdb-cache directory holds exactly `expected` (key -> {value, expiresAt}). */
async function assertHolds(dir, expected) {
  const cache = await openLmdbCache({ path: dir })
  try {
    const problems = []
    for (const [key, want] of expected) {
      const got = await getEntry(cache, key)
      if (got === undefined) problems.push({ key, problem: 'missing' })
      else if (JSON.stringify(got.value) !== JSON.stringify(want.value)) problems.push({ key, problem: 'value', got: got.value, want: want.value })
      else if (got.expiresAt !== want.expiresAt) problems.push({ key, problem: 'expiry', got: got.expiresAt, want: want.expiresAt })
      if (problems.length >= 10) break
    }
    assert.deepEqual(problems, [], 'entries of the source missing or different in the copy')
    let live = 0
    for await (const _ of cache.entries()) live++ // eslint-disable-line no-unused-vars
    assert.equal(live, expected.size, 'live entries in the copy')
  } finally {
    await cache.close()
  }
}

let work
let sourceDir
let source // key -> envelope, as written

before(async () => {
  work = tempDir('lmdb-cache-migrate-')
  sourceDir = path.join(work, 'level-cache')
  source = await buildLevelCache(sourceDir)
})

after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

test('migrates 50k entries: every live entry with the same value and expiry; the source unchanged', { timeout: 30_000 }, async () => {
  const dest = path.join(work, 'all')
  const before = fingerprint(sourceDir)
  const progress = []
  const summary = await migrateFromLevel({ from: sourceDir, to: dest, verify: true, onProgress: (p) => progress.push(p) })
  const now = Date.now()
  const expected = liveEntries(source, now)

  // What the data set holds, checked against the source itself.
  assert.equal(source.size, COUNT + 7)
  assert.ok(expected.has('') && expected.has(`users${SEP}🎉first`) && expected.has('lone\uFFFDsurrogate'))
  assert.ok(
    [...expected.keys()].some((k) => Buffer.byteLength(k) > 511),
    'keys longer than LMDB key size',
  )
  assert.ok(
    [...expected.values()].some((e) => e.expiresAt !== null),
    'entries with an expiry',
  )

  assert.equal(summary.total, source.size)
  assert.equal(summary.copied, expected.size)
  assert.equal(summary.skippedExpired, COUNT / 5)
  assert.equal(summary.skippedUndefined, 2)
  assert.equal(summary.skippedInvalid, 2)
  assert.deepEqual([...summary.invalidKeys].sort(), ['foreign-not-json', 'foreign-string'])
  assert.equal(summary.verify.ok, true, JSON.stringify(summary.verify.differences))
  assert.equal(summary.verify.checked, expected.size)
  assert.equal(summary.verify.extra, 0)

  // Progress: per batch of 1,000, monotonic, ending complete.
  const copies = progress.filter((p) => p.phase === 'copy')
  assert.ok(copies.length >= COUNT / 1000, `${copies.length} progress reports`)
  for (let i = 1; i < copies.length; i++) assert.ok(copies[i].done >= copies[i - 1].done)
  assert.deepEqual([copies.at(-1).done, copies.at(-1).total], [source.size, source.size])
  assert.ok(progress.some((p) => p.phase === 'verify'))

  await assertHolds(dest, expected)
  assert.deepEqual(fingerprint(sourceDir), before, 'the source directory changed')
  assert.deepEqual(fs.readdirSync(dest).sort(), CACHE_DIR_FILES, 'nothing left behind')

  // Through the Cache API with namespaces, as the application will read it.
  const cache = await openLmdbCache({ path: dest, namespace: 'users' })
  try {
    const e = entryFor(6) // in users/sessions, expiring in an hour, a key past LMDB's key size
    assert.equal(e.ns, 'users/sessions')
    assert.ok(Buffer.byteLength(e.key) > 511)
    assert.deepEqual(await cache.withNamespace('sessions').get(e.key), JSON.parse(JSON.stringify(e.value)))
    assert.equal(await cache.get('🎉first'), 'party')
    assert.equal(await cache.get('undefined-2'), undefined)
    assert.equal(await cache.has('undefined-2'), false)
  } finally {
    await cache.close()
  }

  // Idempotent: a second run over the result changes nothing and still verifies.
  const again = await migrateFromLevel({ from: sourceDir, to: dest })
  assert.equal(again.copied, expected.size)
  const s = await (async () => {
    const c = await openLmdbCache({ path: dest })
    try {
      return await cacheStats(c)
    } finally {
      await c.close()
    }
  })()
  assert.equal(s.entries, expected.size)
})

test('--namespace copies only the keys of the namespaces named (nested ones are distinct)', { timeout: 30_000 }, async () => {
  const one = path.join(work, 'users-only')
  const summary = await migrateFromLevel({ from: sourceDir, to: one, namespace: 'users' })
  const expected = liveEntries(source, Date.now(), (k) => k.startsWith(`users${SEP}`))
  assert.equal(summary.copied, expected.size)
  assert.ok(expected.size > 1000)
  await assertHolds(one, expected)

  const two = path.join(work, 'two-namespaces')
  const both = await migrateFromLevel({ from: sourceDir, to: two, namespace: ['users/sessions', 'ñs😀'], verify: true })
  const expected2 = liveEntries(source, Date.now(), (k) => k.startsWith(`users/sessions${SEP}`) || k.startsWith(`ñs😀${SEP}`))
  assert.equal(both.copied, expected2.size)
  assert.equal(both.verify.ok, true)
  await assertHolds(two, expected2)
})

test('a copied entry expires when it would have in level-cache', { timeout: 10_000 }, async () => {
  const dir = tempDir('lmdb-cache-migrate-ttl-')
  try {
    const from = path.join(dir, 'src')
    const lc = await openLevelBackedCache({ path: from })
    await lc.set('soon', 'v', { ttlMs: 400 })
    await lc.set('later', 'v', { ttlMs: HOUR })
    await lc.close()
    const src = await readSource(from)
    const x = src.get('soon').x
    await migrateFromLevel({ from, to: path.join(dir, 'dst') })
    const cache = await openLmdbCache({ path: path.join(dir, 'dst') })
    try {
      assert.deepEqual(await getEntry(cache, 'soon'), { value: 'v', expiresAt: x })
      assert.equal(await cache.get('soon'), 'v')
      while (Date.now() < x) await new Promise((resolve) => setTimeout(resolve, x - Date.now() + 1))
      assert.equal(await cache.get('soon'), undefined)
      assert.equal(await cache.get('later'), 'v')
    } finally {
      await cache.close()
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('--verify agrees with the copy of expiries past 2^64 ms and of an infinite one ({"x":1e400})', { timeout: 20_000 }, async () => {
  const dir = tempDir('lmdb-cache-migrate-far-')
  try {
    const from = path.join(dir, 'src')
    // Written raw, as level-cache's envelopes: 1e400 is Infinity to JSON.parse, 1e300 a finite
    // expiry far past 2^64 ms.
    const db = new Level(from, { valueEncoding: 'utf8' })
    await db.put('infinite', '{"v":1,"x":1e400}')
    await db.put('far', '{"v":2,"x":1e300}')
    await db.put('near', `{"v":3,"x":${Date.now() + HOUR}.5}`)
    await db.close()
    const summary = await migrateFromLevel({ from, to: path.join(dir, 'dst'), verify: true })
    assert.equal(summary.copied, 3)
    assert.deepEqual(summary.verify.differences, [])
    assert.equal(summary.verify.ok, true)
    const cache = await openLmdbCache({ path: path.join(dir, 'dst') })
    try {
      // Never expires in level-cache (Infinity <= now is false): no expiry here.
      assert.deepEqual(await getEntry(cache, 'infinite'), { value: 1, expiresAt: null })
      assert.deepEqual(await getEntry(cache, 'far'), { value: 2, expiresAt: 2 ** 64 })
      assert.equal(await cache.get('near'), 3)
    } finally {
      await cache.close()
    }
    // The CLI says the same.
    const verified = await cli(['migrate', '--from', from, '--to', path.join(dir, 'dst-cli'), '--verify'])
    assert.equal(verified.code, 0, verified.stdout + verified.stderr)
    assert.match(verified.stdout, /^verify: OK, 3 entries/m)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('refuses a source in use, a missing or non-LevelDB source, a foreign destination, bad options', async () => {
  const dir = tempDir('lmdb-cache-migrate-err-')
  try {
    const from = path.join(dir, 'src')
    const lc = await openLevelBackedCache({ path: from })
    await lc.set('k', 1)
    const check = async (opts, code, pattern) => {
      await assert.rejects(migrateFromLevel(opts), (error) => {
        assert.equal(error.code, code, error.message)
        if (pattern) assert.match(error.message, pattern)
        return true
      })
    }
    // LevelDB holds the LOCK of an open database (here in this very process).
    await check({ from, to: path.join(dir, 'dst') }, 'ERR_SOURCE_IN_USE', new RegExp(`process ${process.pid}`))
    assert.equal(fs.existsSync(path.join(dir, 'dst')), false, 'nothing created for a refused migration')
    await lc.close()

    await check({ from: path.join(dir, 'missing'), to: path.join(dir, 'dst') }, 'ERR_INVALID_SOURCE', /does not exist/)
    fs.mkdirSync(path.join(dir, 'empty'))
    await check({ from: path.join(dir, 'empty'), to: path.join(dir, 'dst') }, 'ERR_INVALID_SOURCE', /not a LevelDB/)
    fs.mkdirSync(path.join(dir, 'foreign'))
    fs.writeFileSync(path.join(dir, 'foreign', 'notes.txt'), 'x')
    await check({ from, to: path.join(dir, 'foreign') }, 'ERR_INVALID_DESTINATION', /neither empty nor an lmdb-cache/)
    await check({ from, to: from }, 'ERR_INVALID_DESTINATION', /separate/)
    await check({ from, to: path.join(from, 'inside') }, 'ERR_INVALID_DESTINATION', /separate/)
    await check({ from }, 'ERR_INVALID_OPTIONS')
    await check({ from, to: path.join(dir, 'dst'), namespace: 3 }, 'ERR_INVALID_OPTIONS')
    await check({ from, to: path.join(dir, 'dst'), batchSize: 0 }, 'ERR_INVALID_OPTIONS')
    const ok = await migrateFromLevel({ from, to: path.join(dir, 'dst') })
    assert.equal(ok.copied, 1)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('a migration killed mid-way (SIGKILL) completes when run again', { timeout: 40_000 }, async () => {
  const dest = path.join(work, 'killed')
  const before = fingerprint(sourceDir)
  const fixture = fileURLToPath(new URL('./fixtures/migrate-child.mjs', import.meta.url))
  const child = spawn(process.execPath, [fixture, sourceDir, dest], { stdio: ['ignore', 'pipe', 'inherit'] })
  let killedAt = null
  let buffered = ''
  child.stdout.setEncoding('utf8').on('data', (data) => {
    buffered += data
    const lines = buffered.split('\n')
    buffered = lines.pop()
    for (const line of lines) {
      const p = JSON.parse(line)
      if (killedAt === null && p.phase === 'copy' && p.done >= 10_000) {
        killedAt = p.done
        child.kill('SIGKILL')
      }
    }
  })
  const exit = await new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })))
  assert.deepEqual(exit, { code: null, signal: 'SIGKILL' }, 'the child was killed mid-way')
  assert.ok(killedAt !== null && killedAt < COUNT)

  // Partial: some batches committed, not all; the snapshot is left behind.
  const partial = await openLmdbCache({ path: dest })
  const { entries } = await cacheStats(partial)
  await partial.close()
  const expected = liveEntries(source, Date.now())
  assert.ok(entries > 0 && entries < expected.size, `${entries} entries copied before the kill`)
  assert.ok(
    fs.readdirSync(dest).some((n) => n.startsWith('.level-snapshot-')),
    'a killed run leaves its snapshot',
  )

  // Run again, through the CLI: complete, verified, and the stale snapshot removed.
  const rerun = await cli(['migrate', '--from', sourceDir, '--to', dest, '--verify'])
  assert.equal(rerun.code, 0, rerun.stderr)
  assert.match(rerun.stdout, /verify: OK/)
  assert.deepEqual(fs.readdirSync(dest).sort(), CACHE_DIR_FILES)
  await assertHolds(dest, expected)
  assert.deepEqual(fingerprint(sourceDir), before, 'the source directory changed')
})

test('putEntries / getEntry: absolute expiries, namespace views, atomic, errors', async () => {
  const dir = tempDir('lmdb-cache-entries-')
  try {
    const root = await openLmdbCache({ path: dir })
    const ns = root.withNamespace('n')
    const far = Date.now() + HOUR
    await putEntries(ns, [
      { key: 'a', value: { x: 1 }, expiresAt: far + 0.4 },
      { key: 'b', value: null },
      { key: 'gone', value: 1, expiresAt: Date.now() - 1 },
    ])
    assert.deepEqual(await getEntry(ns, 'a'), { value: { x: 1 }, expiresAt: Math.ceil(far + 0.4) })
    assert.deepEqual(await getEntry(root, `n${SEP}b`), { value: null, expiresAt: null })
    assert.equal(await getEntry(ns, 'gone'), undefined)
    assert.equal(await getEntry(ns, 'missing'), undefined)
    assert.equal(await ns.get('a').then((v) => v.x), 1)

    const code = (c) => (error) => error.code === c
    await assert.rejects(
      putEntries(root, [
        { key: 'ok', value: 1 },
        { key: 'bad', value: 1, expiresAt: 'soon' },
      ]),
      code('ERR_INVALID_TTL'),
    )
    await assert.rejects(
      putEntries(root, [
        { key: 'ok', value: 1 },
        { key: 'big', value: 1n },
      ]),
      code('ERR_INVALID_VALUE'),
    )
    assert.equal(await root.has('ok'), false, 'nothing of a refused batch is written')
    await assert.rejects(putEntries(root, 5), code('ERR_INVALID_BATCH'))
    await assert.rejects(putEntries(root, [{ key: 5, value: 1 }]), code('ERR_INVALID_KEY'))
    await assert.rejects(getEntry(root, 5), code('ERR_INVALID_KEY'))
    await assert.rejects(getEntry({ get() {} }, 'k'), code('ERR_INVALID_ARGUMENT'))
    await root.close()
    await assert.rejects(getEntry(root, 'a'), code('ERR_CACHE_CLOSED'))
    await assert.rejects(putEntries(root, []), code('ERR_CACHE_CLOSED'))
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('keys that are not valid UTF-8 are skipped and reported, not renamed; huge expiries verify; a symlinked source inside the destination is refused', async () => {
  const from = path.join(work, 'odd-src')
  const raw = new Level(from, { keyEncoding: 'buffer', valueEncoding: 'utf8' })
  const envelope = (v, x) => JSON.stringify(x === undefined ? { v } : { v, x })
  await raw.batch([
    { type: 'put', key: Buffer.from('good'), value: envelope(1) },
    { type: 'put', key: Buffer.from([0x62, 0x61, 0x64, 0xfe]), value: envelope('fe') },
    { type: 'put', key: Buffer.from([0x62, 0x61, 0x64, 0xff]), value: envelope('ff') },
    { type: 'put', key: Buffer.from('far'), value: envelope('far', Date.now() + 1e20) },
    { type: 'put', key: Buffer.from('max'), value: envelope('max', Number.MAX_VALUE) },
  ])
  await raw.close()
  const to = path.join(work, 'odd-dst')
  const summary = await migrateFromLevel({ from, to, verify: true })
  assert.equal(summary.copied, 3)
  assert.equal(summary.skippedInvalidKeys, 2)
  assert.equal(summary.invalidKeys.length, 2)
  assert.ok(summary.verify.ok, JSON.stringify(summary.verify))
  const cache = await openLmdbCache({ path: to })
  try {
    assert.deepEqual((await cache.entries().next()).value, ['far', 'far'])
    assert.equal(await cache.get('bad\uFFFD'), undefined)
    assert.equal(await cache.get('max'), 'max')
  } finally {
    await cache.close()
  }

  // The source reached through a symlink, the destination inside it: still refused.
  const link = path.join(work, 'odd-src-link')
  fs.symlinkSync(from, link)
  const before = fingerprint(from)
  await assert.rejects(migrateFromLevel({ from: link, to: path.join(from, 'lmdb') }), { code: 'ERR_INVALID_DESTINATION' })
  assert.equal(fs.existsSync(path.join(from, 'lmdb')), false)
  assert.deepEqual(fingerprint(from), before)
})
