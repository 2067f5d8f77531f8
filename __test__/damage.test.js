// Damaged records: one flipped byte in a value, in a record header or in a key is reported as
// ERR_CORRUPT_RECORD naming the key, by get, has, entries() and the CLI alike; no read returns
// bytes that failed their checksum, other keys stay readable, and a set repairs the key.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { openLmdbCache } from '../index.js'
import { collect } from './support/helpers.js'

const CLI = fileURLToPath(new URL('../bin/lmdb-cache.js', import.meta.url))
// 24 characters: stored as a MessagePack fixstr, one header byte (0xb8) before the text.
const MARKER = 'DAMAGE-MARKER-0123456789'

/**
 * A cache holding `victim` = MARKER and a few neighbours, closed; `damage(dataFile, markerAt)`
 * then changes data.mdb, and `check(cache, dir)` runs on the reopened cache.
 */
async function withDamagedCache(damage, check) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-damage-'))
  try {
    const cache = await openLmdbCache({ path: dir })
    // One commit, so the file holds one copy of the leaf page (no older copy left in free pages).
    await cache.batch([
      { type: 'put', key: 'alpha', value: { ok: 1 } },
      { type: 'put', key: 'victim', value: MARKER },
      { type: 'put', key: 'zulu', value: [1, 2, 3] },
    ])
    await cache.close()
    const dataFile = path.join(dir, 'data.mdb')
    const bytes = fs.readFileSync(dataFile)
    const markerAt = bytes.indexOf(MARKER)
    assert.ok(markerAt > 0, 'the value is stored as its text')
    assert.equal(bytes.indexOf(MARKER, markerAt + 1), -1, 'once')
    damage(bytes, markerAt)
    fs.writeFileSync(dataFile, bytes)
    const reopened = await openLmdbCache({ path: dir })
    try {
      await check(reopened, dir)
    } finally {
      await reopened.close()
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

const corruptNaming = (name) => (error) => {
  assert.equal(error.code, 'ERR_CORRUPT_RECORD', error.message)
  assert.match(error.message, new RegExp(`"${name}"`))
  return true
}

/** What every damage of `victim` must give: each read path reports it, the rest works. */
async function assertVictimReportedEverywhere(cache, dir) {
  await assert.rejects(cache.get('victim'), corruptNaming('victim'))
  await assert.rejects(cache.has('victim'), corruptNaming('victim'))
  await assert.rejects(collect(cache.entries()), corruptNaming('victim'))
  // Pages before the damaged record are served; the scan stops at it.
  assert.deepEqual(await collect(cache.entries({ lt: 'victim' })), [['alpha', { ok: 1 }]])
  assert.deepEqual(await cache.get('alpha'), { ok: 1 })
  assert.deepEqual(await cache.get('zulu'), [1, 2, 3])
  const dump = spawnSync(process.execPath, [CLI, 'dump', dir], { encoding: 'utf8' })
  assert.notEqual(dump.status, 0, 'dump fails on a damaged record')
  assert.match(dump.stderr, /ERR_CORRUPT_RECORD/)
  assert.match(dump.stderr, /"victim"/)
  assert.doesNotMatch(dump.stdout, new RegExp(MARKER.slice(0, 10)), 'dump never prints the damaged bytes')
  // A set replaces the damaged record (the README's repair advice).
  await cache.set('victim', 'repaired')
  assert.equal(await cache.get('victim'), 'repaired')
  assert.equal((await collect(cache.entries())).length, 3)
}

test('a flipped byte in a value is ERR_CORRUPT_RECORD naming its key, on every read path', async () => {
  await withDamagedCache((bytes, at) => {
    bytes[at + 5] ^= 0x01 // 'M' -> 'L': still valid MessagePack, so only the checksum sees it
  }, assertVictimReportedEverywhere)
})

test('a flipped byte in the checksum or the flags of a record header is caught the same way', async () => {
  // Record: [version|flags][CRC-32C x4][0xb8][MARKER...]
  await withDamagedCache((bytes, at) => {
    bytes[at - 1 - 4 + 2] ^= 0x40
  }, assertVictimReportedEverywhere)
  await withDamagedCache((bytes, at) => {
    bytes[at - 1 - 5] ^= 0x04 // the JSON-payload flag: the MessagePack would be read as JSON text
  }, assertVictimReportedEverywhere)
})

test('a damaged key fails its record checksum: entries() names it instead of yielding it', async () => {
  await withDamagedCache(
    (bytes) => {
      const keyAt = bytes.indexOf('victim\u0000')
      assert.ok(keyAt > 0)
      bytes[keyAt + 2] ^= 0x07 // 'victim' -> 'vidtim' (between its neighbours still)
    },
    async (cache) => {
      assert.equal(await cache.get('victim'), undefined, 'the key as written is gone')
      await assert.rejects(collect(cache.entries()), corruptNaming('vidtim'))
      await assert.rejects(cache.get('vidtim'), corruptNaming('vidtim'))
      assert.deepEqual(await cache.get('zulu'), [1, 2, 3])
      await cache.del('vidtim')
      assert.deepEqual(
        (await collect(cache.entries())).map(([k]) => k),
        ['alpha', 'zulu'],
      )
    },
  )
})

test('a damaged record under a long key (over 480 bytes) is caught by get and entries() alike', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-damage-'))
  const longKey = `${'L'.repeat(500)}-victim`
  try {
    const cache = await openLmdbCache({ path: dir })
    await cache.batch([
      { type: 'put', key: `${'L'.repeat(500)}-fine`, value: 1 },
      { type: 'put', key: longKey, value: MARKER },
    ])
    await cache.close()
    const dataFile = path.join(dir, 'data.mdb')
    const bytes = fs.readFileSync(dataFile)
    bytes[bytes.indexOf(MARKER) + 3] ^= 0x01
    fs.writeFileSync(dataFile, bytes)
    const reopened = await openLmdbCache({ path: dir })
    try {
      await assert.rejects(reopened.get(longKey), corruptNaming('L+-victim'))
      await assert.rejects(collect(reopened.entries()), corruptNaming('L+-victim'))
      assert.equal(await reopened.get(`${'L'.repeat(500)}-fine`), 1)
    } finally {
      await reopened.close()
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
