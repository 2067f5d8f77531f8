'use strict'
// compactCache: rewrites a cache's data.mdb without its free pages (`lmdb-cache compact`), and
// removeDeadCompactions: removes what a killed compaction left behind.
//
// The copy goes into a work directory of its own inside the cache directory, `.compact-<pid>/`
// (same filesystem, so the final rename is atomic), where it is opened and checked before it
// replaces data.mdb. A compaction that is killed leaves that directory (as large as the data)
// behind; the next open of the cache, `lmdb-cache stats` and the next compaction remove it
// once its process is gone. The work directory holds an `owner` file naming the process, its
// host and its pid namespace, so that a compaction run from another container sharing the
// directory (whose pid means nothing here) is never taken for a dead one.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { lockHolders, processAlive } = require('./locks.cjs')
const { codedError } = require('./errors.cjs')

const WORK_PREFIX = '.compact-'
const OWNER_FILE = 'owner'

function pidNamespace() {
  try {
    return fs.readlinkSync('/proc/self/ns/pid')
  } catch {
    return null
  }
}

function ownerRecord() {
  return { pid: process.pid, host: os.hostname(), pidNamespace: pidNamespace() }
}

/** Whether the compaction that made `.compact-<pid>` in `dir` is known to be gone. */
function compactionGone(dir, name, pid) {
  if (pid === process.pid) return false
  let owner = null
  try {
    owner = JSON.parse(fs.readFileSync(path.join(dir, name, OWNER_FILE), 'utf8'))
  } catch {
    // No owner file (written by an older version, or the instant after mkdir): the pid alone.
  }
  if (owner !== null) {
    const here = ownerRecord()
    // Another host or pid namespace: its pid cannot be checked from here; leave it.
    if (owner.host !== here.host || owner.pidNamespace !== here.pidNamespace) return false
  }
  return !processAlive(pid)
}

/**
 * Removes the work directories of compactions whose process is gone (one readdir of `dir`);
 * returns their names. Best effort: a directory that cannot be read or removed is left.
 */
function removeDeadCompactions(dir) {
  let names
  try {
    names = fs.readdirSync(dir)
  } catch {
    return []
  }
  const removed = []
  for (const name of names) {
    if (!name.startsWith(WORK_PREFIX)) continue
    const match = /^\.compact-(\d+)$/.exec(name)
    if (match === null) continue
    if (!compactionGone(dir, name, Number(match[1]))) continue
    try {
      fs.rmSync(path.join(dir, name), { recursive: true, force: true })
      removed.push(name)
    } catch {
      // left for the next attempt
    }
  }
  return removed
}

function otherHolders(dir) {
  const { supported, pids } = lockHolders(path.join(dir, 'lock.mdb'))
  return { supported, pids: pids.filter((pid) => pid !== process.pid) }
}

function refuseIfInUse(dir, label, force) {
  const { supported, pids } = otherHolders(dir)
  if (!supported && !force) {
    throw codedError(
      Error,
      'ERR_COMPACT_REFUSED',
      `cannot tell whether another process has ${label} open on this system (no /proc/locks); stop them all and pass --force`,
    )
  }
  if (pids.length > 0) {
    throw codedError(Error, 'ERR_COMPACT_REFUSED', `${label} is open in another process (pid ${pids.join(', ')}): close it there first`)
  }
}

function fsyncPath(p, { directory = false } = {}) {
  let fd
  try {
    fd = fs.openSync(p, 'r')
  } catch (error) {
    if (directory) return // some systems (Windows) cannot open a directory to fsync it
    throw error
  }
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

async function withCache(api, dir, fn) {
  const cache = await api.openLmdbCache({ path: dir })
  try {
    return await fn(cache)
  } finally {
    await cache.close()
  }
}

/**
 * Compacts the cache directory `dir` (an existing lmdb-cache directory) in place. Refuses
 * (ERR_COMPACT_REFUSED) while another process has it open, or if it was written to during the
 * compaction. `label` names the directory in messages; `force` compacts where other processes
 * cannot be detected. Resolves to { entries, fileSizeBefore, fileSizeAfter }.
 */
async function compactCache(dir, { label = dir, force = false } = {}) {
  // Required here, not at the top: lib/open.cjs requires this module for removeDeadCompactions.
  const api = { ...require('./open.cjs'), ...require('./tools.cjs') }
  refuseIfInUse(dir, label, force)
  removeDeadCompactions(dir)
  const dataFile = path.join(dir, 'data.mdb')
  // The rename replaces the directory entry: a data.mdb that is a symlink would be replaced by
  // a regular file beside it, and the real file left behind.
  if (fs.lstatSync(dataFile).isSymbolicLink()) {
    throw codedError(Error, 'ERR_COMPACT_REFUSED', `${label}/data.mdb is a symbolic link; compact the directory it points into instead`)
  }
  const work = path.join(dir, `${WORK_PREFIX}${process.pid}`)
  fs.rmSync(work, { recursive: true, force: true })
  fs.mkdirSync(work)
  try {
    fs.writeFileSync(path.join(work, OWNER_FILE), JSON.stringify(ownerRecord()))
    const copy = path.join(work, 'data.mdb')
    // Any commit after the copy's snapshot would be lost by the rename, also one by a process
    // that opened, wrote and closed between the checks for other holders: the id of the last
    // committed transaction must be the same before the copy, after it, and just before the
    // rename.
    let before
    const unchanged = (stats, when) => {
      if (stats.lastTxnId !== before.lastTxnId) {
        throw codedError(Error, 'ERR_COMPACT_REFUSED', `${label} was written to ${when}; data.mdb left as it was (run compact again)`)
      }
    }
    await withCache(api, dir, async (cache) => {
      before = await api.cacheStats(cache)
      await api.compactCacheTo(cache, copy)
      unchanged(await api.cacheStats(cache), 'during the copy')
    })
    const original = fs.statSync(dataFile)
    fs.chmodSync(copy, original.mode & 0o7777)
    // As root, the copy would otherwise belong to root, and the service owning the cache could
    // no longer open it.
    if (typeof process.getuid === 'function' && process.getuid() === 0) fs.chownSync(copy, original.uid, original.gid)
    fsyncPath(copy)
    const after = await withCache(api, work, (cache) => api.cacheStats(cache))
    if (after.entries !== before.entries) {
      throw codedError(Error, 'ERR_COMPACT_REFUSED', `the compacted copy has ${after.entries} entries instead of ${before.entries}; data.mdb left as it was`)
    }
    unchanged(await withCache(api, dir, (cache) => api.cacheStats(cache)), 'while the copy was checked')
    // Our handle is closed: any holder now is another process that opened it meanwhile.
    refuseIfInUse(dir, label, force)
    fs.renameSync(copy, dataFile)
    fsyncPath(dir, { directory: true })
    return { entries: before.entries, fileSizeBefore: before.fileSize, fileSizeAfter: fs.statSync(dataFile).size }
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}

module.exports = { compactCache, removeDeadCompactions }
