'use strict'
// Owns the source side of migrateFromLevel (lib/migrate.cjs): a @promethean/level-cache
// directory read with the `level` package (an optional peer dependency) and level-cache's
// on-disk conventions: utf8 keys, `namespace + U+241F + key` for a namespaced key, values
// stored as JSON envelopes `{ v: value, x: expiryEpochMs }` (x absent: no expiry; `{}` is a
// stored undefined). The source is never modified: `level` opens a snapshot of its files
// (hard links, or copies) inside the destination, never the source itself.

const fs = require('node:fs')
const path = require('node:path')
const { lockHolders, processAlive } = require('./locks.cjs')
const { codedError } = require('./errors.cjs')
const { NAMESPACE_SEPARATOR } = require('./namespace.cjs')

const SNAPSHOT_PREFIX = '.level-snapshot-'

/** Imports `level`, the optional peer dependency, or fails with ERR_LEVEL_MISSING. */
async function importLevel() {
  let mod
  try {
    mod = await import('level')
  } catch (cause) {
    const missing = cause && (cause.code === 'ERR_MODULE_NOT_FOUND' || cause.code === 'MODULE_NOT_FOUND')
    throw codedError(
      Error,
      'ERR_LEVEL_MISSING',
      missing
        ? 'migrating from level-cache needs the `level` package (an optional peer dependency of @promethean/lmdb-cache): npm install level'
        : `the \`level\` package could not be loaded: ${String(cause?.message ?? cause).split('\n')[0]}`,
      cause,
    )
  }
  const Level = mod.Level || mod.default?.Level
  if (typeof Level !== 'function') {
    throw codedError(Error, 'ERR_LEVEL_MISSING', 'the `level` package found does not export Level (level >= 8 is needed)')
  }
  return Level
}

// LevelDB keys are bytes; level-cache wrote UTF-8. A key that is not valid UTF-8 cannot be
// named by a JS string without changing it (and two such keys could become one).
const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/** The key as a string, or null when its bytes are not valid UTF-8. */
function keyText(keyBytes) {
  try {
    return strictUtf8.decode(keyBytes)
  } catch {
    return null
  }
}

function checkSource(from) {
  let stat
  try {
    stat = fs.statSync(from)
  } catch (cause) {
    throw codedError(Error, 'ERR_INVALID_SOURCE', `the level-cache directory ${from} does not exist`, cause)
  }
  if (!stat.isDirectory()) throw codedError(Error, 'ERR_INVALID_SOURCE', `${from} is not a directory`)
  if (!fs.existsSync(path.join(from, 'CURRENT'))) {
    throw codedError(Error, 'ERR_INVALID_SOURCE', `${from} is not a LevelDB (level-cache) directory: it has no CURRENT file`)
  }
  checkSourceIdle(from)
}

/** Refuses a source another process (or this one) has open: LevelDB locks LOCK while open. */
function checkSourceIdle(from) {
  const { pids } = lockHolders(path.join(from, 'LOCK'))
  if (pids.length > 0) {
    throw codedError(Error, 'ERR_SOURCE_IN_USE', `the level-cache directory ${from} is in use (process ${pids.join(', ')} has it open): stop it first`)
  }
}

/** Removes snapshots left in the destination by migrations that were killed. */
function removeStaleSnapshots(to) {
  for (const name of fs.readdirSync(to)) {
    if (!name.startsWith(SNAPSHOT_PREFIX)) continue
    const pid = Number(name.slice(SNAPSHOT_PREFIX.length))
    if (Number.isInteger(pid) && pid !== process.pid && processAlive(pid)) continue // a live run's
    fs.rmSync(path.join(to, name), { recursive: true, force: true })
  }
}

/** Links (or copies) the source's files into a fresh snapshot directory; returns its path. */
function snapshotSource(from, to) {
  const dir = path.join(to, `${SNAPSHOT_PREFIX}${process.pid}`)
  fs.rmSync(dir, { recursive: true, force: true })
  fs.mkdirSync(dir)
  let linked = true
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const name = entry.name
    // LOCK is LevelDB's lock file, LOG and LOG.old its text log: the snapshot gets its own.
    if (!entry.isFile() || name === 'LOCK' || name === 'LOG' || name === 'LOG.old') continue
    const src = path.join(from, name)
    const dest = path.join(dir, name)
    if (linked) {
      try {
        fs.linkSync(src, dest)
        continue
      } catch (error) {
        if (!['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP'].includes(error.code)) throw error
        linked = false
      }
    }
    fs.copyFileSync(src, dest, fs.constants.COPYFILE_FICLONE)
  }
  return dir
}

/** Byte ranges of the namespaces' keys (the whole database when there are none). */
function rangesFor(namespaces) {
  if (namespaces.length === 0) return [{}]
  return namespaces.map((ns) => {
    const prefix = Buffer.from(ns + NAMESPACE_SEPARATOR, 'utf8')
    // 0xFF never occurs in UTF-8, so this bounds exactly the keys starting with the prefix.
    return { gte: prefix, lt: Buffer.concat([prefix, Buffer.from([0xff])]) }
  })
}

/**
 * What level-cache's get() would return for a stored value: { kind: 'live', value, expiresAt }
 * or 'expired' / 'undefined' / 'invalid'.
 */
function decodeEnvelope(text, now) {
  let envelope
  try {
    envelope = JSON.parse(text)
  } catch {
    return { kind: 'invalid' }
  }
  if (envelope === null || typeof envelope !== 'object' || Array.isArray(envelope)) return { kind: 'invalid' }
  // level-cache: expired when `typeof x === 'number' && x <= Date.now()`; any other x: no expiry.
  const expiresAt = typeof envelope.x === 'number' ? envelope.x : null
  if (expiresAt !== null && expiresAt <= now) return { kind: 'expired' }
  if (envelope.v === undefined) return { kind: 'undefined' }
  return { kind: 'live', value: envelope.v, expiresAt }
}

async function countKeys(db, ranges) {
  let total = 0
  for (const range of ranges) {
    const it = db.keys(range)
    try {
      for (let keys = await it.nextv(4096); keys.length > 0; keys = await it.nextv(4096)) total += keys.length
    } finally {
      await it.close()
    }
  }
  return total
}

/** Yields the source's entries [keyBuffer, valueText] in chunks of `size` (the last may be smaller). */
async function* chunks(db, ranges, size) {
  let chunk = []
  for (const range of ranges) {
    // nextv() returns what the iterator has buffered (up to highWaterMarkBytes), maybe fewer.
    const it = db.iterator({ ...range, highWaterMarkBytes: 1024 * 1024 })
    try {
      for (let got = await it.nextv(size); got.length > 0; got = await it.nextv(size - chunk.length)) {
        for (const entry of got) chunk.push(entry)
        if (chunk.length >= size) {
          yield chunk
          chunk = []
        }
      }
    } finally {
      await it.close()
    }
  }
  if (chunk.length > 0) yield chunk
}

module.exports = {
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
}
