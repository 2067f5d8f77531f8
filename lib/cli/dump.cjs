'use strict'
// Owns `lmdb-cache dump` and `load`: the live entries of a cache as JSON Lines, one
// {"key","value","expiresAt"} object a line (key: the full stored key, namespace included),
// written to a stream or to a file that appears whole or not at all; and a dump read back
// into a cache, checked whole before anything is written.

const fs = require('node:fs')
const path = require('node:path')
const readline = require('node:readline')
const { NAMESPACE_SEPARATOR } = require('../namespace.cjs')
const { refuseDestinationInCache } = require('../destinations.cjs')
const { CommandError } = require('./errors.cjs')
const { lmdbCache, targetCacheDir, withCache } = require('./dirs.cjs')

// Entries per atomic batch of `load`.
const LOAD_BATCH = 1000

/** Writes to a stream, waiting for it to drain when its buffer is full. */
function writeTo(stream, text) {
  if (stream.write(text)) return undefined
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      stream.off('error', onError)
      resolve()
    }
    const onError = (error) => {
      stream.off('drain', onDrain)
      reject(error)
    }
    stream.once('drain', onDrain)
    stream.once('error', onError)
  })
}

/** Writes the live entries of the cache in `dir` (of `namespaces`, or all) to `out`; the count. */
async function dumpEntries(dir, namespaces, out) {
  // Loaded here, not at the top: the tool's --help works without the native binary.
  const { getEntry } = lmdbCache()
  let count = 0
  await withCache(
    dir,
    async (root) => {
      const scopes = namespaces.length === 0 || namespaces.includes('') ? [''] : [...new Set(namespaces)]
      for (const ns of scopes) {
        const view = ns === '' ? root : root.withNamespace(ns)
        const prefix = ns === '' ? '' : ns + NAMESPACE_SEPARATOR
        for await (const [key] of view.entries()) {
          const fullKey = prefix + key
          // Value and expiry from one read (the entry may have changed since the page).
          const entry = await getEntry(root, fullKey)
          if (entry === undefined) continue
          await writeTo(out, `${JSON.stringify({ key: fullKey, value: entry.value, expiresAt: entry.expiresAt })}\n`)
          count++
        }
      }
    },
    { inspect: true },
  )
  return count
}

/**
 * Dumps the cache in `dir` into `outFile`: never a file of a cache directory (even with
 * `force`), an existing file only with `force`. Written beside the file, synced and renamed at
 * the end: no half dump under the name. Resolves the count of entries.
 */
async function dumpToFile(dir, namespaces, outFile, force) {
  try {
    refuseDestinationInCache(outFile, dir)
  } catch (error) {
    throw new CommandError(error.message)
  }
  if (!force && fs.existsSync(outFile)) throw new CommandError(`${outFile} exists; pass --force to replace it`)
  let tmp = `${path.resolve(outFile)}.${process.pid}.tmp`
  let out
  try {
    out = fs.createWriteStream(tmp, { flags: 'wx' })
    await new Promise((resolve, reject) => out.once('open', resolve).once('error', reject))
  } catch (error) {
    throw new CommandError(`cannot write ${outFile}: ${error.message}`)
  }
  try {
    const count = await dumpEntries(dir, namespaces, out)
    await new Promise((resolve, reject) => out.end((error) => (error ? reject(error) : resolve())))
    const fd = fs.openSync(tmp, 'r')
    fs.fsyncSync(fd)
    fs.closeSync(fd)
    publish(tmp, path.resolve(outFile), force, outFile)
    tmp = null
    return count
  } finally {
    if (tmp !== null) {
      out.destroy()
      fs.rmSync(tmp, { force: true })
    }
  }
}

/**
 * Gives the finished temporary file `tmp` the name `target`: without `force` never over a
 * file that appeared meanwhile (a hard link fails if the name exists), with `force` replacing.
 */
function publish(tmp, target, force, label) {
  if (!force) {
    try {
      fs.linkSync(tmp, target)
      fs.rmSync(tmp)
      return
    } catch (error) {
      if (error.code === 'EEXIST') throw new CommandError(`${label} exists; pass --force to replace it`)
      // A filesystem without hard links: check, then rename.
      if (fs.existsSync(target)) throw new CommandError(`${label} exists; pass --force to replace it`)
    }
  }
  fs.renameSync(tmp, target)
}

/** Reads a JSON Lines dump; calls onEntry(entry) for each entry (awaiting it). */
async function readDump(file, onEntry) {
  const input = fs.createReadStream(file, { encoding: 'utf8' })
  const lines = readline.createInterface({ input, crlfDelay: Infinity })
  let lineNumber = 0
  try {
    for await (const line of lines) {
      lineNumber++
      if (line.trim() === '') continue
      let entry
      try {
        entry = JSON.parse(line)
      } catch (error) {
        throw new CommandError(`${file}:${lineNumber}: not JSON (${error.message})`)
      }
      const where = `${file}:${lineNumber}`
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
        throw new CommandError(`${where}: expected an object {"key","value","expiresAt"}`)
      }
      if (typeof entry.key !== 'string') throw new CommandError(`${where}: "key" must be a string`)
      if (!Object.hasOwn(entry, 'value')) throw new CommandError(`${where}: "value" is missing`)
      const x = entry.expiresAt
      if (x !== undefined && x !== null && (typeof x !== 'number' || !Number.isFinite(x))) {
        throw new CommandError(`${where}: "expiresAt" must be epoch milliseconds or null`)
      }
      await onEntry({ key: entry.key, value: entry.value, expiresAt: x ?? null })
    }
  } finally {
    lines.close()
    input.destroy()
  }
}

/**
 * Loads the dump `file` into the cache in `dirArg` (created if missing): resolves
 * `{ loaded, expired }`. The whole file is checked first, so a bad line writes
 * nothing; a store failure midway (a full disk) says how many entries were written.
 */
async function loadDump(dirArg, file) {
  try {
    if (!fs.statSync(file).isFile()) throw new CommandError(`not a file: ${file}`)
  } catch (error) {
    if (error instanceof CommandError) throw error
    throw new CommandError(`cannot read ${file}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`)
  }
  const dir = targetCacheDir(dirArg)
  let lines = 0
  await readDump(file, () => {
    lines++
  })
  const { putEntries } = lmdbCache()
  let loaded = 0
  let expired = 0
  await withCache(dir, async (cache) => {
    let batch = []
    const flush = async () => {
      await putEntries(cache, batch)
      loaded += batch.length
      batch = []
    }
    try {
      await readDump(file, async (entry) => {
        if (entry.expiresAt !== null && entry.expiresAt <= Date.now()) {
          expired++
          return
        }
        batch.push(entry)
        if (batch.length >= LOAD_BATCH) await flush()
      })
      if (batch.length > 0) await flush()
    } catch (error) {
      // The file was valid (checked first), so this is the store failing: say what is in it
      // now. Each batch is atomic.
      error.message = `${error.message}; ${loaded.toLocaleString('en-US')} of ${lines.toLocaleString('en-US')} entries were written before the failure`
      throw error
    }
  })
  return { loaded, expired }
}

module.exports = { dumpEntries, dumpToFile, loadDump }
