// A full map or a full disk can always be emptied: sweeps and delete batches succeed (in
// bounded transactions when one would not fit), the map's delete reserve is never taken by
// puts, and the map never exceeds maxMapSize by more than that reserve.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { cacheStats, openLmdbCache } from '../index.js'

const MiB = 1 << 20
const MAX = 32 * MiB
// README: the reserve is maxMapSize / 16, at least 8 MiB.
const RESERVE = 8 * MiB
const VALUE = 'v'.repeat(1500)

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-full-map-'))
}

// Puts batches of 100 (every other entry with a short ttl) until a put fails; returns how
// many were written and the failure.
async function fill(cache, { ttlMs = 300 } = {}) {
  let written = 0
  for (;;) {
    const batch = Array.from({ length: 100 }, (_, j) => {
      const i = written + j
      return i % 2 === 0 ? { type: 'put', key: `k${i}`, value: VALUE, ttlMs } : { type: 'put', key: `k${i}`, value: VALUE }
    })
    try {
      await cache.batch(batch)
    } catch (error) {
      return { written, error }
    }
    written += batch.length
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

test('on a full 32 MiB map with half the entries expired, sweepExpired() deletes them all and puts work again', { timeout: 120_000 }, async () => {
  const dir = tempDir()
  try {
    const cache = await openLmdbCache({ path: dir, maxMapSize: MAX })
    const { written, error } = await fill(cache)
    assert.equal(error.code, 'ERR_CACHE_FULL')
    assert.ok(written > 5_000, `only ${written} entries fit`)
    await sleep(400)
    const swept = await cache.sweepExpired()
    assert.equal(swept, written / 2)
    assert.equal(await cache.get('k1'), VALUE)
    assert.equal(await cache.get('k0'), undefined)
    const stats = await cacheStats(cache)
    assert.equal(stats.entries, written / 2)
    assert.ok(stats.mapSize <= MAX + RESERVE, `mapSize ${stats.mapSize}`)
    // The freed room is there for puts again.
    await cache.batch(Array.from({ length: 100 }, (_, i) => ({ type: 'put', key: `after${i}`, value: VALUE })))
    assert.equal(await cache.get('after99'), VALUE)
    await cache.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('on a full 32 MiB map a batch of 3,000 deletes succeeds; puts after it still stop at maxMapSize', { timeout: 120_000 }, async () => {
  const dir = tempDir()
  try {
    const cache = await openLmdbCache({ path: dir, maxMapSize: MAX })
    const { written, error } = await fill(cache, { ttlMs: 3_600_000 })
    assert.equal(error.code, 'ERR_CACHE_FULL')
    // Spread over the whole key space, so that one transaction would touch every page.
    const step = Math.floor(written / 3000)
    const keys = Array.from({ length: 3000 }, (_, i) => `k${i * step}`)
    await cache.batch(keys.map((key) => ({ type: 'del', key })))
    for (const key of keys.filter((_, i) => i % 97 === 0)) assert.equal(await cache.has(key), false)
    assert.equal(await cache.get(`k${step + 1}`), VALUE)
    const afterDeletes = await cacheStats(cache)
    assert.equal(afterDeletes.entries, written - 3000)
    assert.ok(afterDeletes.mapSize <= MAX + RESERVE, `mapSize ${afterDeletes.mapSize}`)

    // Puts refill what the deletes freed and then fail with ERR_CACHE_FULL: they do not take
    // the reserve the deletes grew the map into.
    let more = 0
    let failure
    for (; more < 100_000; more += 50) {
      try {
        await cache.batch(Array.from({ length: 50 }, (_, i) => ({ type: 'put', key: `p${more + i}`, value: VALUE })))
      } catch (e) {
        failure = e
        break
      }
    }
    assert.equal(failure?.code, 'ERR_CACHE_FULL')
    const afterPuts = await cacheStats(cache)
    assert.ok(afterPuts.mapSize <= MAX + RESERVE, `mapSize ${afterPuts.mapSize}`)
    assert.ok(
      afterPuts.usedSize <= Math.max(MAX, afterDeletes.usedSize),
      `puts grew the used size from ${afterDeletes.usedSize} to ${afterPuts.usedSize}, past maxMapSize ${MAX}`,
    )
    const held = afterPuts.usedSize - afterPuts.freePages * afterPuts.pageSize
    assert.ok(held <= MAX, `the data outgrew maxMapSize: ${held} bytes in pages held`)
    assert.ok(more <= 3000, `${more} puts fit after deleting 3,000`)
    // And the cache can still be emptied again.
    await cache.batch(Array.from({ length: more }, (_, i) => ({ type: 'del', key: `p${i}` })))
    assert.equal(await cache.has('p0'), false)
    await cache.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('a batch that puts and deletes is never split: on a full map it fails whole', { timeout: 120_000 }, async () => {
  const dir = tempDir()
  try {
    const cache = await openLmdbCache({ path: dir, maxMapSize: 8 * MiB })
    const { written, error } = await fill(cache, { ttlMs: 3_600_000 })
    assert.equal(error.code, 'ERR_CACHE_FULL')
    const ops = Array.from({ length: written / 2 }, (_, i) => ({ type: 'del', key: `k${i * 2}` }))
    ops.push({ type: 'put', key: 'big', value: 'b'.repeat(40 * MiB) })
    await assert.rejects(cache.batch(ops), { code: 'ERR_CACHE_FULL' })
    assert.equal(await cache.get('k0'), VALUE, 'nothing of the failed batch was applied')
    assert.equal((await cacheStats(cache)).entries, written)
    await cache.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('on a full disk, sweepExpired() and a batch of 500 deletes succeed after puts failed with ERR_DISK_FULL', { timeout: 180_000 }, async (t) => {
  const mount = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-full-disk-'))
  let mounted = false
  let cache
  try {
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', mount], { stdio: 'ignore' }).status !== 0) {
      t.skip('cannot mount a tmpfs here (needs root and mount permission): full-disk behaviour not tested')
      return
    }
    mounted = true
    cache = await openLmdbCache({ path: mount })
    const { written, error } = await fill(cache)
    assert.ok(['ERR_DISK_FULL', 'ERR_IO'].includes(error.code), `${error.code}: ${error.message}`)
    assert.ok(written > 5_000, `only ${written} entries fit`)
    // Entries without expiry, spread over the whole key space.
    const keys = Array.from({ length: 500 }, (_, i) => `k${1 + i * 2 * Math.floor(written / 1000)}`)
    await cache.batch(keys.map((key) => ({ type: 'del', key })))
    await sleep(400)
    assert.equal(await cache.sweepExpired(), written / 2)
    assert.equal(await cache.has(keys[0]), false)
    assert.equal(await cache.get(`k${written - 1}`), VALUE)
    assert.equal((await cacheStats(cache)).entries, written / 2 - 500)
  } finally {
    await cache?.close()
    if (mounted) spawnSync('umount', [mount], { stdio: 'ignore' })
    fs.rmSync(mount, { recursive: true, force: true })
  }
})

test('on a disk filled to its last byte by two processes and another program, single deletes succeed', { timeout: 180_000 }, async (t) => {
  const mount = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-full-disk-'))
  let mounted = false
  let cache
  try {
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mount], { stdio: 'ignore' }).status !== 0) {
      t.skip('cannot mount a tmpfs here (needs root and mount permission): full-disk behaviour not tested')
      return
    }
    mounted = true
    const dir = path.join(mount, 'cache')
    cache = await openLmdbCache({ path: dir })
    // Another process fills the same directory at the same time, batches then single sets.
    const index = new URL('../index.js', import.meta.url).href
    const peer = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { openLmdbCache } from ${JSON.stringify(index)}
         const cache = await openLmdbCache({ path: ${JSON.stringify(dir)} })
         let n = 0
         try { for (;;) { await cache.batch(Array.from({ length: 20 }, (_, j) => ({ type: 'put', key: 'peer' + (n + j), value: 'p'.repeat(1500) }))); n += 20 } } catch {}
         try { for (;;) await cache.set('peer-s' + n++, 'p') } catch (e) { console.log(e.code) }
         await cache.close()`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    let peerSaid = ''
    peer.stdout.on('data', (d) => {
      peerSaid += d
    })
    const peerExit = new Promise((resolve) => peer.on('exit', resolve))
    const { written, error } = await fill(cache, { ttlMs: 3_600_000 })
    assert.ok(['ERR_DISK_FULL', 'ERR_IO'].includes(error.code), `${error.code}: ${error.message}`)
    assert.equal(await peerExit, 0)
    assert.match(peerSaid, /ERR_DISK_FULL|ERR_IO/)
    for (let i = 0; ; i++) {
      try {
        await cache.set(`s${i}`, 's')
      } catch {
        break
      }
    }
    // Another program takes every byte that is left.
    const filler = fs.openSync(path.join(mount, 'filler'), 'w')
    const block = Buffer.alloc(4096)
    assert.throws(() => {
      for (;;) fs.writeSync(filler, block)
    }, /ENOSPC/)
    fs.closeSync(filler)
    for (const key of ['k0', `k${Math.floor(written / 2)}`, 'peer0', `k${written - 1}`]) {
      await cache.del(key)
      assert.equal(await cache.has(key), false, key)
    }
    assert.equal(await cache.get('k1'), VALUE)
    assert.equal((await cacheStats(cache)).entries > written, true)
  } finally {
    await cache?.close()
    if (mounted) spawnSync('umount', [mount], { stdio: 'ignore' })
    fs.rmSync(mount, { recursive: true, force: true })
  }
})
