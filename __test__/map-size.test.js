// The map grows by itself, stops at maxMapSize with ERR_CACHE_FULL without damage, and a
// process adopts growth done by another process.
import assert from 'node:assert/strict'
import { fork } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { openLmdbCache } from '../index.js'

const MiB = 1 << 20
const fixture = fileURLToPath(new URL('./fixtures/grow-writer.mjs', import.meta.url))

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-map-'))
}

test('the map grows far past its initial size and every value stays readable', async () => {
  const dir = tempDir()
  try {
    const cache = await openLmdbCache({ path: dir, mapSize: MiB })
    const big = 'v'.repeat(50_000)
    for (let i = 0; i < 600; i += 20) {
      await cache.batch(Array.from({ length: 20 }, (_, j) => ({ type: 'put', key: `k${i + j}`, value: { i: i + j, big } })))
    }
    await cache.set('huge', 'h'.repeat(8 * MiB))
    assert.ok(fs.statSync(path.join(dir, 'data.mdb')).size > 30 * MiB)
    for (let i = 0; i < 600; i += 37) assert.deepEqual(await cache.get(`k${i}`), { i, big })
    assert.equal((await cache.get('huge')).length, 8 * MiB)
    await cache.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('writing past maxMapSize rejects with ERR_CACHE_FULL, keeps earlier data, and deletes make room again', async () => {
  const dir = tempDir()
  try {
    const cache = await openLmdbCache({ path: dir, mapSize: MiB, maxMapSize: 4 * MiB })
    const value = 'f'.repeat(100_000)
    let written = 0
    let failure
    for (; written < 200; written++) {
      try {
        await cache.set(`k${written}`, value)
      } catch (error) {
        failure = error
        break
      }
    }
    assert.ok(failure, 'a 4 MiB map must fill up')
    assert.equal(failure.code, 'ERR_CACHE_FULL')
    assert.ok(written > 10, `only ${written} values fit`)
    for (let i = 0; i < written; i++) assert.equal(await cache.get(`k${i}`), value)
    assert.equal(await cache.get(`k${written}`), undefined)

    // A batch that does not fit is refused whole.
    const batch = Array.from({ length: 5 }, (_, i) => ({ type: 'put', key: `b${i}`, value }))
    await assert.rejects(cache.batch(batch), { code: 'ERR_CACHE_FULL' })
    for (let i = 0; i < 5; i++) assert.equal(await cache.has(`b${i}`), false)

    for (let i = 0; i < written; i++) await cache.del(`k${i}`)
    await cache.set('after', value)
    assert.equal(await cache.get('after'), value)
    await cache.close()

    // The file is intact: it reopens and holds exactly what was acknowledged.
    const reopened = await openLmdbCache({ path: dir, maxMapSize: 4 * MiB })
    assert.equal(await reopened.get('after'), value)
    assert.equal(await reopened.get('k0'), undefined)
    await reopened.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('a process adopts a map grown by another process while it holds the cache open', { timeout: 60_000 }, async () => {
  const dir = tempDir()
  try {
    const cache = await openLmdbCache({ path: dir, mapSize: MiB })
    await cache.set('parent', 1)
    const child = fork(fixture, [dir, 'c', '400', '40000'], { stdio: 'inherit' })
    const exit = new Promise((resolve) => child.on('exit', resolve))
    const report = new Promise((resolve) => child.on('message', resolve))
    // Keep reading and writing while the child grows the map.
    let rounds = 0
    while (child.exitCode === null && rounds < 100_000) {
      assert.equal(await cache.get('parent'), rounds === 0 ? 1 : rounds)
      await cache.set('parent', ++rounds)
      await new Promise((resolve) => setImmediate(resolve))
    }
    assert.equal(await exit, 0)
    const { readBack, parentValue } = await report
    assert.equal(readBack, 400, 'the writer reads back all it wrote')
    assert.equal(typeof parentValue, 'number', "the writer reads the other process's key")
    assert.ok(fs.statSync(path.join(dir, 'data.mdb')).size > 10 * MiB)
    for (let j = 0; j < 400; j += 13) assert.equal((await cache.get(`c${j}`)).j, j)
    await cache.set('parent-after', 'x'.repeat(2 * MiB))
    assert.equal((await cache.get('parent-after')).length, 2 * MiB)
    await cache.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('cacheStats counts free pages, which deletes create and a compacting copy drops', async () => {
  const { cacheStats, compactCacheTo } = await import('../index.js')
  const dir = tempDir()
  try {
    const cache = await openLmdbCache({ path: dir })
    await cache.batch(Array.from({ length: 3000 }, (_, i) => ({ type: 'put', key: `k${i}`, value: 'x'.repeat(200) })))
    const before = await cacheStats(cache)
    assert.equal(before.entries, 3000)
    await cache.batch(Array.from({ length: 3000 }, (_, i) => ({ type: 'del', key: `k${i}` })))
    await cache.set('one', 1) // a later commit lets LMDB account the freed pages
    const after = await cacheStats(cache)
    assert.equal(after.entries, 1)
    assert.ok(after.freePages > before.freePages + 100, `free pages ${before.freePages} -> ${after.freePages}`)
    assert.equal(after.usedSize % after.pageSize, 0)
    // Outside the cache directory: a copy beside data.mdb is refused (ERR_DESTINATION_IN_CACHE).
    const copy = `${dir}-compacted.mdb`
    await compactCacheTo(cache, copy)
    assert.ok(fs.statSync(copy).size < after.usedSize - 100 * after.pageSize)
    await cache.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
    fs.rmSync(`${dir}-compacted.mdb`, { force: true })
  }
})

test("compactCacheTo writes only a new file outside cache directories: an existing one, the cache's own data.mdb included, is refused and left as it was", async () => {
  const { compactCacheTo } = await import('../index.js')
  const dir = tempDir()
  try {
    const cache = await openLmdbCache({ path: dir })
    await cache.set('k', 'v')
    const other = `${dir}-important.txt`
    fs.writeFileSync(other, 'keep me')
    await assert.rejects(compactCacheTo(cache, other), { code: 'ERR_DESTINATION_EXISTS' })
    assert.equal(fs.readFileSync(other, 'utf8'), 'keep me')
    fs.rmSync(other)
    const beside = path.join(dir, 'important.txt')
    fs.writeFileSync(beside, 'keep me')
    await assert.rejects(compactCacheTo(cache, beside), { code: 'ERR_DESTINATION_IN_CACHE' })
    assert.equal(fs.readFileSync(beside, 'utf8'), 'keep me')
    const own = path.join(dir, 'data.mdb')
    const size = fs.statSync(own).size
    await assert.rejects(compactCacheTo(cache, own), { code: 'ERR_DESTINATION_IN_CACHE' })
    assert.equal(fs.statSync(own).size, size)
    assert.equal(await cache.get('k'), 'v')
    await cache.set('k2', 'v2')
    assert.equal(await cache.get('k2'), 'v2')
    await cache.close()
    const reopened = await openLmdbCache({ path: dir })
    assert.equal(await reopened.get('k'), 'v')
    await reopened.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
