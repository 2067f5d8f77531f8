'use strict'
// Owns the directories the command-line tool works on: an existing cache to read (or say what
// the directory is instead), a directory to write a cache into, and opening a cache there for
// the length of one command.

const fs = require('node:fs')
const path = require('node:path')
const { CommandError } = require('./errors.cjs')
const { PROGRAM } = require('./help.cjs')

/** An existing lmdb-cache directory, or a CommandError saying what it is instead. */
function existingCacheDir(dir) {
  const resolved = path.resolve(dir)
  let stat
  try {
    stat = fs.statSync(resolved)
  } catch {
    throw new CommandError(`no such directory: ${dir}`)
  }
  if (!stat.isDirectory()) throw new CommandError(`not a directory: ${dir}`)
  if (!fs.existsSync(path.join(resolved, 'data.mdb'))) {
    const hint = fs.existsSync(path.join(resolved, 'CURRENT'))
      ? ` (it looks like a level-cache directory: use '${PROGRAM} migrate --from ${dir} --to <dir>')`
      : ''
    throw new CommandError(`not an lmdb-cache directory (no data.mdb): ${dir}${hint}`)
  }
  return resolved
}

/** A directory to write to: an lmdb-cache directory, an empty directory, or a new one. */
function targetCacheDir(dir) {
  const resolved = path.resolve(dir)
  let names
  try {
    names = fs.readdirSync(resolved)
  } catch (error) {
    if (error.code === 'ENOENT') return resolved
    if (error.code === 'ENOTDIR') throw new CommandError(`not a directory: ${dir}`)
    throw new CommandError(`cannot read ${dir}: ${error.message}`)
  }
  if (names.length > 0 && !names.includes('data.mdb')) {
    throw new CommandError(`not an lmdb-cache directory (no data.mdb) and not empty: ${dir}`)
  }
  return resolved
}

/**
 * The package's API, loaded on first use: a command that needs no cache (--help, verify's
 * parent) works without the native binary, and a missing binary is an ordinary command error.
 */
function lmdbCache() {
  return require('../../index.cjs')
}

/**
 * Runs fn(cache) on the cache in `dir`, closing it after. With `inspect`, reads leave expired
 * entries in place (inspectLmdbCache), so a tool reporting on a cache does not change it.
 */
async function withCache(dir, fn, { inspect = false } = {}) {
  const { openLmdbCache, inspectLmdbCache } = lmdbCache()
  const cache = await (inspect ? inspectLmdbCache : openLmdbCache)({ path: dir })
  try {
    return await fn(cache)
  } finally {
    await cache.close()
  }
}

module.exports = { existingCacheDir, targetCacheDir, lmdbCache, withCache }
