'use strict'
// Owns opening a cache: validating the open options, the file modes of the files an open
// creates, the warning for a level-cache (LevelDB) directory opened as it is, and
// openLmdbCache / inspectLmdbCache themselves.

const fs = require('node:fs')
const path = require('node:path')
const { binding } = require('./native.cjs')
const { codedError, describe } = require('./errors.cjs')
const { expiryFor } = require('./write-queue.cjs')
const { HandleState, makeView } = require('./cache.cjs')
const { removeDeadCompactions } = require('./compact.cjs')

const DURABILITY_CODES = { nosync: 0, durable: 1, strict: 2 }
const DEFAULT_MAP_SIZE = 64 * 1024 * 1024
const DEFAULT_MAX_MAP_SIZE = 256 * 1024 * 1024 * 1024
const DEFAULT_MAX_READERS = 1022
// LMDB's reader table takes 64 bytes a slot in lock.mdb, written out at the first open:
// 2 ** 32 - 1 slots once wrote ~256 GiB of zeros. 2 ** 16 slots (4 MiB) is far above what the
// open handles of any one machine use (one slot per reading thread per process).
const MAX_READERS = 2 ** 16
const MAX_INITIAL_MAP_SIZE = 2 ** 46

function optionalNumber(opts, name, fallback) {
  const value = opts[name]
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !(value >= 0)) {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', `${name} must be a non-negative number, got ${describe(value)}`)
  }
  return value
}

/**
 * A bound option: a whole number >= 1, Infinity (removes the directory's stored bound), or
 * undefined (keeps it). Returned as the binding takes it: -1 for undefined.
 */
function boundOption(opts, name) {
  const value = opts[name]
  if (value === undefined) return -1
  if (typeof value !== 'number' || !(value === Number.POSITIVE_INFINITY || (Number.isSafeInteger(value) && value >= 1))) {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', `${name} must be a whole number >= 1, or Infinity to remove the bound, got ${describe(value)}`)
  }
  return value
}

/** Opens synchronously (every step is); openLmdbCache wraps it in a promise, as level-cache's. */
function openCacheSync(opts, keepExpired) {
  if (opts === null || typeof opts !== 'object') {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', 'openLmdbCache() takes an options object with a path')
  }
  if (typeof opts.path !== 'string' || opts.path === '') {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', `options.path must be a non-empty string, got ${describe(opts.path)}`)
  }
  if (opts.path.includes('\0')) {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', 'options.path must not contain a NUL character')
  }
  const namespace = opts.namespace === undefined ? '' : opts.namespace
  if (typeof namespace !== 'string') {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', `options.namespace must be a string, got ${describe(namespace)}`)
  }
  if (opts.defaultTtlMs !== undefined) expiryFor(opts.defaultTtlMs, 0)
  const durability = opts.durability === undefined ? 'durable' : opts.durability
  if (!Object.hasOwn(DURABILITY_CODES, durability)) {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', `options.durability must be "durable", "strict" or "nosync", got ${describe(durability)}`)
  }
  const mapSize = optionalNumber(opts, 'mapSize', DEFAULT_MAP_SIZE)
  // The map is reserved in the address space at open; no 64-bit platform Node runs on gives a
  // process more than 128 TiB of it, so a larger initial map is a mistake, not a resource error.
  if (mapSize > MAX_INITIAL_MAP_SIZE) {
    throw codedError(
      TypeError,
      'ERR_INVALID_OPTIONS',
      `mapSize must be at most 64 TiB (the map is reserved in the address space at open), got ${describe(mapSize)}`,
    )
  }
  const maxMapSize = optionalNumber(opts, 'maxMapSize', Math.max(DEFAULT_MAX_MAP_SIZE, mapSize))
  const maxReaders = optionalNumber(opts, 'maxReaders', DEFAULT_MAX_READERS)
  // Checked before anything is written: lock.mdb is sized by it at the first open.
  if (!Number.isInteger(maxReaders) || maxReaders > MAX_READERS) {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', `maxReaders must be a whole number up to ${MAX_READERS}, got ${describe(maxReaders)}`)
  }
  const fileMode = opts.fileMode
  if (fileMode !== undefined && (!Number.isInteger(fileMode) || fileMode < 0 || fileMode > 0o777)) {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', `fileMode must be a whole number from 0 to 0o777, got ${describe(fileMode)}`)
  }
  const maxEntries = boundOption(opts, 'maxEntries')
  const maxBytes = boundOption(opts, 'maxBytes')
  const dir = path.resolve(opts.path)
  const created = CACHE_FILES.filter((name) => !fs.existsSync(path.join(dir, name)))
  const id = binding.open(dir, mapSize, maxMapSize, maxReaders, DURABILITY_CODES[durability], keepExpired, maxEntries, maxBytes)
  if (created.length > 0) applyFileMode(dir, created, fileMode)
  warnIfLevelDbDirectory(dir)
  removeDeadCompactions(dir)
  return makeView(new HandleState(id, opts.defaultTtlMs, dir), namespace)
}

async function openCache(opts, keepExpired) {
  return openCacheSync(opts, keepExpired)
}

function openLmdbCache(opts) {
  return openCache(opts, false)
}

/**
 * openLmdbCache for tools that report on a cache: reads through this handle (and its views)
 * never delete the expired entries they meet, so that looking changes nothing.
 */
function inspectLmdbCache(opts) {
  return openCache(opts, true)
}

// flush-state: where the OS names its boot (see src/flush_state.rs); absent elsewhere.
const CACHE_FILES = ['data.mdb', 'lock.mdb', 'flush-state']

/**
 * LMDB creates its files 0600 whatever the umask, so that a second service user could not
 * share the directory; LevelDB's files get 0666 less the umask. Sets the files this open
 * created (named in `created`) to `fileMode`, or that default; never touches existing files.
 */
function applyFileMode(dir, created, fileMode) {
  const mode = fileMode === undefined ? 0o666 & ~processUmask() : fileMode
  for (const name of created) {
    try {
      fs.chmodSync(path.join(dir, name), mode)
    } catch {
      // A filesystem without modes (Windows, some mounts): nothing to apply.
    }
  }
}

function processUmask() {
  // process.umask() without an argument sets the mask to read it (and is refused in workers
  // on old Node versions); /proc/self/status has it without changing anything.
  try {
    const status = fs.readFileSync('/proc/self/status', 'latin1')
    const match = /^Umask:\s*([0-7]+)$/m.exec(status)
    if (match !== null) return parseInt(match[1], 8)
  } catch {
    // not Linux
  }
  try {
    return process.umask()
  } catch {
    return 0o022
  }
}

// A level-cache directory (LevelDB: a CURRENT file naming a MANIFEST) opened as it is gives a
// cache without its entries: LMDB cannot read LevelDB's files. The open still succeeds, since
// refusing would stop a service that only switched the import from starting; instead the
// process is told once per directory what was left behind and how to bring it over.
const LEVELDB_WARNING_CODE = 'LMDB_CACHE_LEVELDB_DATA_IGNORED'
const warnedLevelDirectories = new Set()

function warnIfLevelDbDirectory(dir) {
  if (warnedLevelDirectories.has(dir)) return
  let current
  try {
    current = fs.readFileSync(path.join(dir, 'CURRENT'), 'latin1')
  } catch {
    return
  }
  if (!current.startsWith('MANIFEST-')) return
  warnedLevelDirectories.add(dir)
  process.emitWarning(
    `${dir} holds a level-cache (LevelDB) database, which lmdb-cache does not read: this cache starts without ` +
      `those entries. To keep them, copy them once into a new directory: npx lmdb-cache migrate --from ${dir} ` +
      '--to <new directory> (README: "Migrating from level-cache").',
    { type: 'LmdbCacheWarning', code: LEVELDB_WARNING_CODE },
  )
}

module.exports = { openLmdbCache, inspectLmdbCache, openCacheSync }
