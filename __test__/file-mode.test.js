// The fileMode option: LMDB creates data.mdb and lock.mdb 0600 whatever the umask, so a second
// service user could not share the directory. The files an open creates get 0666 less the
// umask (as LevelDB's files do), or `fileMode` exactly; existing files keep their mode.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { openLmdbCache } from '../index.js'

const skip = process.platform === 'win32' && 'no POSIX file modes on Windows'
let work
let umask
before(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-mode-'))
  umask = process.umask(0o022)
})
after(() => {
  process.umask(umask)
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

const modeOf = (dir, name) => fs.statSync(path.join(dir, name)).mode & 0o777

async function openAndClose(dir, opts = {}) {
  const cache = await openLmdbCache({ path: dir, ...opts })
  await cache.set('k', 1)
  await cache.close()
}

test('by default the files get 0666 less the umask: 0644 under umask 022', { skip }, async () => {
  const dir = path.join(work, 'default')
  await openAndClose(dir)
  assert.equal(modeOf(dir, 'data.mdb').toString(8), '644')
  assert.equal(modeOf(dir, 'lock.mdb').toString(8), '644')
})

test('under umask 077 the default is 0600', { skip }, async () => {
  const dir = path.join(work, 'umask-077')
  process.umask(0o077)
  try {
    await openAndClose(dir)
  } finally {
    process.umask(0o022)
  }
  assert.equal(modeOf(dir, 'data.mdb').toString(8), '600')
  assert.equal(modeOf(dir, 'lock.mdb').toString(8), '600')
})

test('fileMode 0o660 gives 0660 files (applied as given, not masked by the umask)', { skip }, async () => {
  const dir = path.join(work, 'group')
  await openAndClose(dir, { fileMode: 0o660 })
  assert.equal(modeOf(dir, 'data.mdb').toString(8), '660')
  assert.equal(modeOf(dir, 'lock.mdb').toString(8), '660')
})

test('the mode of existing files is never changed', { skip }, async () => {
  const dir = path.join(work, 'existing')
  await openAndClose(dir, { fileMode: 0o640 })
  fs.chmodSync(path.join(dir, 'data.mdb'), 0o600)
  await openAndClose(dir, { fileMode: 0o666 })
  await openAndClose(dir)
  assert.equal(modeOf(dir, 'data.mdb').toString(8), '600')
  assert.equal(modeOf(dir, 'lock.mdb').toString(8), '640')
  // A lock.mdb deleted while nobody has the directory open is made again with the mode asked.
  fs.rmSync(path.join(dir, 'lock.mdb'))
  await openAndClose(dir, { fileMode: 0o664 })
  assert.equal(modeOf(dir, 'lock.mdb').toString(8), '664')
  assert.equal(modeOf(dir, 'data.mdb').toString(8), '600')
})
