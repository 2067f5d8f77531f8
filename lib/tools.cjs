'use strict'
// Owns the tools' API (what the CLI and scripts use beyond level-cache's Cache): figures of
// a cache (cacheStats), a compacted copy of its data file, reading and writing entries with
// their absolute expiry (getEntry, putEntries), and migrateFromLevel (lib/migrate.cjs).

const path = require('node:path')
const { binding, L } = require('./native.cjs')
const { codedError, describe, checkKey, promised } = require('./errors.cjs')
const { encodeValue, submit } = require('./write-queue.cjs')
const { LOOKUP_FOUND, LOOKUP_FOUND_LARGE, lookup, foundValue, foundExpiry } = require('./reads.cjs')
const { openViewOf } = require('./cache.cjs')
const { refuseDestinationInCache } = require('./destinations.cjs')

/**
 * Figures of the cache's directory: entries (live and expired), map and file sizes, reader
 * slots, bounds and counted totals. Counts cover the whole database, whatever the view's
 * namespace; hits, misses and evictions are this process's (docs/eviction.md).
 */
async function cacheStats(cache) {
  const s = binding.stats(openViewOf(cache).handle.id)
  return {
    entries: s.entries,
    liveEntries: s.liveEntries,
    expiredEntries: s.expiredEntries,
    mapSize: s.mapSize,
    maxMapSize: s.maxMapSize,
    usedSize: s.usedSize,
    freePages: s.freePages,
    pageSize: s.pageSize,
    fileSize: s.fileSize,
    readersInUse: s.readersInUse,
    maxReaders: s.maxReaders,
    lastTxnId: s.lastTxnId,
    maxEntries: s.maxEntries ?? null,
    maxBytes: s.maxBytes ?? null,
    countedEntries: s.countedEntries ?? null,
    countedBytes: s.countedBytes ?? null,
    hits: s.hits,
    misses: s.misses,
    evictions: s.evictions,
    // Summed over every process of a bounded directory, each as of its last write.
    directoryCounters: s.directoryCounters ? { hits: s.directoryCounters[0], misses: s.directoryCounters[1], evictions: s.directoryCounters[2] } : null,
  }
}

/** Writes a compacted copy of the cache's data file (free pages dropped) to `destFile`. */
async function compactCacheTo(cache, destFile) {
  const { handle } = openViewOf(cache)
  if (typeof destFile !== 'string' || destFile === '') {
    throw codedError(TypeError, 'ERR_INVALID_ARGUMENT', 'compactCacheTo() needs a destination file path')
  }
  // Never a cache's files, nor beside the cache's own (its subdirectories hold compactions).
  refuseDestinationInCache(destFile, handle.dir, { allowSubdirectories: true })
  binding.compactCopy(handle.id, path.resolve(destFile))
}

/**
 * The entry `key` of the cache's view with its absolute expiry (epoch ms, or null), or
 * undefined when it is absent, expired or a stored undefined. One read transaction.
 */
async function getEntry(cache, key) {
  const view = openViewOf(cache)
  checkKey(key)
  const status = lookup(view, key, true)
  if (status !== LOOKUP_FOUND && status !== LOOKUP_FOUND_LARGE) return undefined
  // Read the expiry before anything else can reuse the scratch buffer.
  const expiresAt = foundExpiry()
  return { value: foundValue(view.handle, status), expiresAt }
}

/**
 * Writes `entries` ({ key, value, expiresAt? }) into the cache's view as one atomic batch,
 * each with its absolute expiry (epoch ms; undefined or null: none) rather than a ttl, so a
 * copy keeps exactly the expiry it had. An expiry is stored as whole milliseconds, rounded
 * up, which expires at the same Date.now() as the fractional value.
 */
function putEntries(cache, entries) {
  return promised(putEntriesNow, cache, entries)
}

function putEntriesNow(cache, entries) {
  const view = openViewOf(cache)
  if (entries === null || typeof entries !== 'object' || typeof entries[Symbol.iterator] !== 'function') {
    throw codedError(TypeError, 'ERR_INVALID_BATCH', `putEntries() takes an iterable of entries, got ${describe(entries)}`)
  }
  const encoded = []
  for (const entry of entries) {
    if (entry === null || typeof entry !== 'object') {
      throw codedError(TypeError, 'ERR_INVALID_BATCH', `entries must be objects, got ${describe(entry)}`)
    }
    checkKey(entry.key)
    const expiresAt = entry.expiresAt
    if (expiresAt !== undefined && expiresAt !== null && (typeof expiresAt !== 'number' || Number.isNaN(expiresAt))) {
      throw codedError(TypeError, 'ERR_INVALID_TTL', `expiresAt must be epoch milliseconds or null, got ${describe(expiresAt)}`)
    }
    encoded.push({ kind: L.OP_PUT, key: entry.key, value: encodeValue(entry.value), expiry: expiresAt === null ? undefined : expiresAt })
  }
  if (encoded.length === 0) return Promise.resolve()
  return submit(L.REQUEST_BATCH, view, encoded, 0)
}

/** Copies a level-cache (LevelDB) directory into an lmdb-cache directory: see lib/migrate.cjs. */
function migrateFromLevel(opts) {
  return require('./migrate.cjs').migrateFromLevel(opts)
}

module.exports = { cacheStats, compactCacheTo, getEntry, putEntries, migrateFromLevel }
