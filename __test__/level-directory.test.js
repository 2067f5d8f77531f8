// A level-cache (LevelDB) directory opened as it is: the open works, the cache starts without
// the LevelDB entries, the LevelDB files stay readable, and the process gets one warning per
// directory naming the migration. Directories that are not LevelDB get no warning.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, test } from 'node:test'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { openLevelBackedCache } from '../benchmark/backends/level-cache.js'
import { openLmdbCache } from '../index.js'
import { tempDir } from './support/cli-helpers.js'

const CODE = 'LMDB_CACHE_LEVELDB_DATA_IGNORED'
const dirs = []
const newDir = (prefix) => {
  const dir = tempDir(prefix)
  dirs.push(dir)
  return dir
}
after(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true })
})

/** Runs `fn` and returns the warnings with our code that the process emitted meanwhile. */
async function warningsDuring(fn) {
  const seen = []
  const listener = (warning) => {
    if (warning.code === CODE) seen.push(warning)
  }
  process.on('warning', listener)
  try {
    await fn()
    // process.emitWarning delivers on a later tick.
    await nextTurn()
    await nextTurn()
  } finally {
    process.off('warning', listener)
  }
  return seen
}

test('opening a level-cache directory warns once per directory and leaves the LevelDB data readable', async () => {
  const dir = newDir('level-dir')
  const level = await openLevelBackedCache({ path: dir })
  await level.set('kept', { in: 'leveldb' })
  await level.close()

  let first
  let second
  const warnings = await warningsDuring(async () => {
    first = await openLmdbCache({ path: dir })
    second = await openLmdbCache({ path: dir })
  })
  assert.equal(warnings.length, 1)
  assert.equal(warnings[0].name, 'LmdbCacheWarning')
  assert.match(warnings[0].message, /lmdb-cache migrate --from/)
  assert.ok(warnings[0].message.includes(path.resolve(dir)))

  // The cache works and starts without the LevelDB entries.
  assert.equal(await first.get('kept'), undefined)
  await first.set('new', 1)
  assert.equal(await second.get('new'), 1)
  await first.close()
  await second.close()

  // LevelDB's files were not touched: level-cache still reads its entry.
  const again = await openLevelBackedCache({ path: dir })
  assert.deepEqual(await again.get('kept'), { in: 'leveldb' })
  await again.close()
})

test('directories that are not LevelDB get no warning', async () => {
  const fresh = newDir('not-level')
  const notManifest = newDir('current-not-leveldb')
  fs.writeFileSync(path.join(notManifest, 'CURRENT'), 'something else\n')
  const warnings = await warningsDuring(async () => {
    for (const dir of [fresh, notManifest]) {
      const cache = await openLmdbCache({ path: dir })
      await cache.set('k', 'v')
      assert.equal(await cache.get('k'), 'v')
      await cache.close()
    }
  })
  assert.deepEqual(warnings, [])
})
