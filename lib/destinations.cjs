'use strict'
// Where operator tools may write: never over a cache's files. `lmdb-cache dump --out` once
// wrote its text over the cache's own data.mdb; every output path of the tools (dump --out,
// compactCacheTo) is checked here before anything is opened for writing.

const fs = require('node:fs')
const path = require('node:path')
const { codedError } = require('./errors.cjs')

const CACHE_FILES = ['data.mdb', 'lock.mdb']

/** realpath of `p`, or of its nearest existing ancestor joined with the rest. */
function realPathOf(p) {
  const rest = []
  let current = path.resolve(p)
  for (;;) {
    try {
      return path.join(fs.realpathSync(current), ...rest)
    } catch {
      const parent = path.dirname(current)
      if (parent === current) return path.join(current, ...rest)
      rest.unshift(path.basename(current))
      current = parent
    }
  }
}

/** Whether the resolved path `child` is `parent` or lies inside it. */
const isInside = (child, parent) => child === parent || child.startsWith(parent.endsWith(path.sep) ? parent : parent + path.sep)

/** Whether `dir` holds an LMDB environment (data.mdb or lock.mdb). */
function isCacheDirectory(dir) {
  return CACHE_FILES.some((name) => fs.existsSync(path.join(dir, name)))
}

/**
 * Refuses (ERR_DESTINATION_IN_CACHE) an output file that is a cache's data.mdb or lock.mdb, or
 * lies in a cache directory, or (with `inside`) anywhere inside the directory `cacheDir` being
 * operated on. Symbolic links are followed, so a link to data.mdb is refused too. With
 * `allowSubdirectories`, a file in a subdirectory of `cacheDir` that is not itself a cache
 * directory is allowed (the compaction's own work directory).
 */
function refuseDestinationInCache(destination, cacheDir, { allowSubdirectories = false } = {}) {
  const target = realPathOf(destination)
  const parent = path.dirname(target)
  const cache = realPathOf(cacheDir)
  const say = (why) => codedError(Error, 'ERR_DESTINATION_IN_CACHE', `refusing to write ${destination}: ${why}; write it outside the cache directory`)
  if (CACHE_FILES.includes(path.basename(target)) && isCacheDirectory(parent)) {
    throw say(`it is the ${path.basename(target)} of the cache in ${parent}`)
  }
  if (isCacheDirectory(parent)) throw say(`${parent} is a cache directory`)
  if (isInside(target, cache) && !(allowSubdirectories && parent !== cache)) {
    throw say(`it is inside the cache directory ${cache}`)
  }
}

module.exports = { refuseDestinationInCache, isCacheDirectory, realPathOf, isInside }
