'use strict'
// migrateFromLevel: copies a @promethean/level-cache directory (LevelDB, read with the `level`
// package, an optional peer dependency) into an lmdb-cache directory.
//
// level-cache's on-disk conventions: utf8 keys, `namespace + U+241F + key` for a namespaced
// key (nested namespaces `a/b`), values stored with valueEncoding 'json' as envelopes
// `{ v: value, x: expiryEpochMs }` (x absent: no expiry; `{}` is a stored undefined).
//
// - The source is never modified. LevelDB writes to its directory whenever it opens it (a new
//   log and manifest, the old log turned into a table file), so the source's files are
//   hard-linked (copied where links are impossible) into a snapshot directory inside the
//   destination, and the snapshot is what `level` opens. LevelDB never changes a file in
//   place: it writes new files and renames or deletes old ones, which in the snapshot only
//   touches the snapshot's own directory entries. The source must not be in use: on Linux its
//   LOCK file is checked in /proc/locks (LevelDB holds an fcntl lock on it while open).
// - Keys are copied under their full stored names (namespaces included), each value with its
//   absolute expiry (putEntries writes the epoch-ms expiry itself, not a ttl recomputed from
//   Date.now(), so it is exact); entries already expired are skipped.
// - Batches of `batchSize` (1,000) entries, each one atomic transaction, the next batch read
//   while the previous one commits.
// - Idempotent: a re-run copies everything again (puts overwrite), so after an interruption
//   it completes the copy. A stale snapshot left by a killed run is removed by the next run.

const fs = require('node:fs')
const path = require('node:path')
const { codedError } = require('./errors.cjs')
const { isInside, realPathOf } = require('./destinations.cjs')
const {
  SNAPSHOT_PREFIX,
  importLevel,
  keyText,
  checkSource,
  checkSourceIdle,
  removeStaleSnapshots,
  snapshotSource,
  rangesFor,
  decodeEnvelope,
  countKeys,
  chunks,
} = require('./level-source.cjs')

const DEFAULT_BATCH_SIZE = 1000
const MAX_REPORTED = 20

function checkOptions(opts) {
  if (opts === null || typeof opts !== 'object') {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', 'migrateFromLevel() takes an options object { from, to }')
  }
  for (const name of ['from', 'to']) {
    if (typeof opts[name] !== 'string' || opts[name] === '') {
      throw codedError(TypeError, 'ERR_INVALID_OPTIONS', `options.${name} must be a directory path`)
    }
  }
  let namespaces = opts.namespace === undefined || opts.namespace === null ? [] : opts.namespace
  if (typeof namespaces === 'string') namespaces = [namespaces]
  if (!Array.isArray(namespaces) || namespaces.some((ns) => typeof ns !== 'string')) {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', 'options.namespace must be a string or an array of strings')
  }
  // '' is the root namespace, that is the whole database.
  namespaces = namespaces.includes('') ? [] : [...new Set(namespaces)]
  if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function') {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', 'options.onProgress must be a function')
  }
  const batchSize = opts.batchSize === undefined ? DEFAULT_BATCH_SIZE : opts.batchSize
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', 'options.batchSize must be a positive integer')
  }
  return { from: path.resolve(opts.from), to: path.resolve(opts.to), namespaces, batchSize }
}

function checkDestination(to, from) {
  const [realTo, realFrom] = [realPathOf(to), realPathOf(from)]
  if (isInside(realTo, realFrom) || isInside(realFrom, realTo)) {
    throw codedError(Error, 'ERR_INVALID_DESTINATION', 'the destination and the source must be separate directories')
  }
  let names
  try {
    names = fs.readdirSync(to)
  } catch (cause) {
    if (cause.code === 'ENOENT') return // created by the open
    if (cause.code === 'ENOTDIR') throw codedError(Error, 'ERR_INVALID_DESTINATION', `${to} is not a directory`, cause)
    throw codedError(Error, 'ERR_INVALID_DESTINATION', `${to} cannot be read: ${cause.message}`, cause)
  }
  const foreign = names.filter((n) => n !== 'data.mdb' && n !== 'lock.mdb' && !n.startsWith(SNAPSHOT_PREFIX))
  if (!names.includes('data.mdb') && foreign.length > 0) {
    throw codedError(
      Error,
      'ERR_INVALID_DESTINATION',
      `${to} is neither empty nor an lmdb-cache directory (it holds ${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', ...' : ''})`,
    )
  }
}

/**
 * The expiry putEntries stores for `expiresAt`, as getEntry reads it back (the rule of
 * src/record.rs expiry_from_js): whole milliseconds rounded up, at most 2^64; an infinite
 * expiry (JSON's 1e400 parses as Infinity) is no expiry, as it never comes in level-cache.
 */
function storedExpiry(expiresAt) {
  if (expiresAt === null || expiresAt === Infinity) return null
  return Math.min(Math.max(Math.ceil(expiresAt), 0), 2 ** 64)
}

function checkAborted(signal) {
  if (signal?.aborted) {
    throw codedError(Error, 'ABORT_ERR', 'the migration was interrupted; run it again to complete it')
  }
}

/**
 * Copies the level-cache directory `from` into the lmdb-cache directory `to` (created if
 * missing). Resolves to a summary:
 * { from, to, namespaces, total, copied, skippedExpired, skippedUndefined, skippedInvalid,
 *   invalidKeys, durationMs, verify? }.
 */
async function migrateFromLevel(opts) {
  const { from, to, namespaces, batchSize } = checkOptions(opts)
  const onProgress = opts.onProgress
  const signal = opts.signal
  const started = Date.now()
  checkSource(from)
  checkDestination(to, from)
  const Level = await importLevel()
  checkAborted(signal)

  const { openLmdbCache } = require('./open.cjs')
  const { putEntries, getEntry } = require('./tools.cjs')
  const cache = await openLmdbCache({ path: to })
  let snapshot = null
  let db = null
  try {
    removeStaleSnapshots(to)
    snapshot = snapshotSource(from, to)
    // A process that opened the source meanwhile may have changed it under the snapshot.
    checkSourceIdle(from)
    db = new Level(snapshot, { createIfMissing: false, keyEncoding: 'buffer', valueEncoding: 'utf8' })
    try {
      await db.open()
    } catch (cause) {
      const detail = cause.cause ? cause.cause.message : cause.message
      throw codedError(Error, 'ERR_INVALID_SOURCE', `${from} cannot be read as a LevelDB database: ${detail}`, cause)
    }
    const ranges = rangesFor(namespaces)
    const total = await countKeys(db, ranges)
    const summary = {
      from,
      to,
      namespaces: namespaces.length === 0 ? null : namespaces,
      total,
      copied: 0,
      skippedExpired: 0,
      skippedUndefined: 0,
      skippedInvalid: 0,
      skippedInvalidKeys: 0,
      invalidKeys: [],
      durationMs: 0,
    }
    let done = 0
    const report = (phase, doneNow, totalNow) => {
      if (onProgress !== undefined) {
        onProgress({
          phase,
          done: doneNow,
          total: totalNow,
          copied: summary.copied,
          skippedExpired: summary.skippedExpired,
          elapsedMs: Date.now() - started,
        })
      }
    }
    report('copy', 0, total)

    // The next batch is read and decoded while the previous one commits.
    let writing = null
    let writingCopies = 0
    let writingRead = 0
    const settle = async () => {
      await writing
      summary.copied += writingCopies
      done += writingRead
      report('copy', done, total)
    }
    for await (const chunk of chunks(db, ranges, batchSize)) {
      checkAborted(signal)
      const now = Date.now()
      const batch = []
      for (const [keyBytes, text] of chunk) {
        const key = keyText(keyBytes)
        if (key === null) {
          summary.skippedInvalidKeys++
          if (summary.invalidKeys.length < MAX_REPORTED) summary.invalidKeys.push(keyBytes.toString('utf8'))
          continue
        }
        const entry = decodeEnvelope(text, now)
        if (entry.kind === 'live') batch.push({ key, value: entry.value, expiresAt: entry.expiresAt })
        else if (entry.kind === 'expired') summary.skippedExpired++
        else if (entry.kind === 'undefined') summary.skippedUndefined++
        else {
          summary.skippedInvalid++
          if (summary.invalidKeys.length < MAX_REPORTED) summary.invalidKeys.push(key)
        }
      }
      if (writing !== null) await settle()
      writing = putEntries(cache, batch)
      writing.catch(() => {}) // awaited after the next read; not an unhandled rejection meanwhile
      writingCopies = batch.length
      writingRead = chunk.length
    }
    if (writing !== null) await settle()

    if (opts.verify) {
      checkAborted(signal)
      summary.verify = await verifyCopy({ db, cache, ranges, namespaces, total, getEntry, report, signal })
    }
    summary.durationMs = Date.now() - started
    return summary
  } finally {
    if (db !== null) await db.close().catch(() => {})
    if (snapshot !== null) fs.rmSync(snapshot, { recursive: true, force: true })
    await cache.close().catch(() => {})
  }
}

/**
 * Re-reads both sides: every entry live in the source must be in the destination with the
 * same value (as JSON) and the same expiry (whole ms, rounded up). Entries of the destination
 * in the same scope that the source lacks are counted as `extra`.
 */
async function verifyCopy({ db, cache, ranges, namespaces, total, getEntry, report, signal }) {
  const result = { checked: 0, missing: 0, differentValue: 0, differentExpiry: 0, extra: 0, differences: [], ok: true }
  const note = (key, problem, expected, actual) => {
    if (result.differences.length < MAX_REPORTED) result.differences.push({ key, problem, expected, actual })
  }
  let done = 0
  let found = 0
  for await (const chunk of chunks(db, ranges, 1000)) {
    checkAborted(signal)
    for (const [keyBytes, text] of chunk) {
      const now = Date.now()
      const entry = decodeEnvelope(text, now)
      if (entry.kind !== 'live') continue
      const key = keyText(keyBytes)
      if (key === null) continue // not copied, reported in the summary
      const copy = await getEntry(cache, key)
      const expectedExpiry = storedExpiry(entry.expiresAt)
      if (copy === undefined) {
        if (expectedExpiry !== null && expectedExpiry <= Date.now()) continue // expired meanwhile
        result.missing++
        note(key, 'missing', entry.value, undefined)
        continue
      }
      found++
      result.checked++
      if (JSON.stringify(copy.value) !== JSON.stringify(entry.value)) {
        result.differentValue++
        note(key, 'value', entry.value, copy.value)
      } else if (copy.expiresAt !== expectedExpiry) {
        result.differentExpiry++
        note(key, 'expiresAt', expectedExpiry, copy.expiresAt)
      }
    }
    done += chunk.length
    report('verify', done, total)
  }
  // Live entries of the destination in scope, to find those the source does not have.
  let live = 0
  const views = namespaces.length === 0 ? [cache] : namespaces.map((ns) => cache.withNamespace(ns))
  for (const view of views) {
    for await (const _ of view.entries()) live++ // eslint-disable-line no-unused-vars
  }
  result.extra = Math.max(0, live - found)
  result.ok = result.missing === 0 && result.differentValue === 0 && result.differentExpiry === 0
  return result
}

module.exports = { migrateFromLevel }
