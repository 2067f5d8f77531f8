#!/usr/bin/env node
// lmdb-cache: the command-line tool of @promethean/lmdb-cache (migrate, stats, sweep, dump,
// load, compact, verify). Node built-ins only; arguments are parsed with node:util parseArgs.
import fs from 'node:fs'
import path from 'node:path'
import readline from 'node:readline'
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const { compactCache } = require('../lib/compact.cjs')
const { refuseDestinationInCache } = require('../lib/destinations.cjs')

const SEPARATOR = '\u241F'
const PROGRAM = 'lmdb-cache'

// ---------------------------------------------------------------------------------------
// Errors: a user error prints one line and exits non-zero; no stack trace unless
// LMDB_CACHE_DEBUG is set.

class UsageError extends Error {}
class CommandError extends Error {
  constructor(message, exitCode = 1) {
    super(message)
    this.exitCode = exitCode
  }
}

const HELP = {
  main: `Usage: ${PROGRAM} <command> [options]

Commands:
  migrate --from <level-cache dir> --to <dir>   copy a level-cache (LevelDB) directory into this cache
  stats <dir>                                   entries, namespaces, sizes, readers
  sweep <dir>                                   delete expired entries
  dump <dir>                                    write the entries as JSON Lines
  load <dir> <file>                             read entries from a JSON Lines dump
  compact <dir>                                 reclaim free space in data.mdb
  verify <dir>                                  read every record; report damage (exit 1)

Run '${PROGRAM} <command> --help' for a command's options. --version prints the version.`,

  migrate: `Usage: ${PROGRAM} migrate --from <level-cache dir> --to <dir> [--namespace <ns>]... [--verify] [--json]

Copies every live entry of a @promethean/level-cache directory (LevelDB) into the lmdb-cache
directory <dir> (created if missing), keeping keys (namespaces included), values and absolute
expiries; entries already expired are skipped. The source is never modified, and must not be
open in another process. Safe to run again after an interruption: a re-run copies everything
again. Needs the 'level' package (npm install level).

Options:
  --from <dir>       the level-cache directory to read
  --to <dir>         the lmdb-cache directory to write
  --namespace <ns>   copy only the keys of this namespace (repeatable; nested: a/b)
  --verify           afterwards, re-read both sides and report any difference (exit 1 if any)
  --json             print the summary as JSON
  -h, --help         show this help`,

  stats: `Usage: ${PROGRAM} stats <dir> [--json]

Prints the number of entries (live and expired), live entries per namespace (the part of a
key before the first U+241F), the map size and its maximum, the size of data.mdb, the bytes in
use, and LMDB reader slots (the most ever in use at once, and the limit); for a bounded
directory (maxEntries, maxBytes) its bounds, the entries and bytes counted against them, and
the evictions, hits and misses of all processes (each process adds its counts to the
directory's with its writes). It changes no
entry: expired entries are counted, not deleted (that is what '${PROGRAM} sweep' does).
Like any open, it removes what killed compactions left behind.

Options:
  --json       print the figures as JSON
  -h, --help   show this help`,

  sweep: `Usage: ${PROGRAM} sweep <dir> [--json]

Deletes every expired entry and prints how many were deleted.

Options:
  --json       print { "swept": n } as JSON
  -h, --help   show this help`,

  dump: `Usage: ${PROGRAM} dump <dir> [--namespace <ns>]... [--out <file> [--force]]

Writes the live entries as JSON Lines, one {"key","value","expiresAt"} object a line: key is
the full stored key (namespace + U+241F + key), expiresAt epoch milliseconds or null.

Options:
  --namespace <ns>   only the entries of this namespace (repeatable; nested: a/b)
  --out <file>       write to this file instead of standard output; never a file in a cache
                     directory (data.mdb, lock.mdb or beside them) nor inside <dir>
  --force            replace <file> if it exists (refused otherwise)
  -h, --help         show this help`,

  load: `Usage: ${PROGRAM} load <dir> <file>

Writes the entries of a JSON Lines dump (see '${PROGRAM} dump') into <dir> (created if
missing) with their keys, values and absolute expiries; entries already expired are skipped.
The whole file is checked before anything is written: a malformed line writes nothing. If the
cache fails midway (a full disk), the entries written so far stay, and the error says how many.

Options:
  -h, --help   show this help`,

  compact: `Usage: ${PROGRAM} compact <dir> [--force]

LMDB files never shrink by themselves. This writes a compacted copy of data.mdb (free pages
left out), checks it, and renames it over data.mdb. It refuses while another process has the
directory open (checked in /proc/locks, so on Linux only).

Options:
  --force      where other processes cannot be detected (not Linux), compact anyway
  -h, --help   show this help`,
}

HELP.verify = `Usage: ${PROGRAM} verify <dir> [--json]

Reads every page and record of the cache in <dir> without writing anything (LMDB opened
read-only), in a child process: damage that would crash a process reading the cache (a
truncated file, garbage over pages) is reported instead. Prints OK with the counts and exits 0,
or 'damaged: ...' naming what is wrong (the meta pages, the signal the walk died of and the
last key it got past, or the keys of records that cannot be decoded) and exits 1.

Options:
  --json       print the result as JSON
  -h, --help   show this help`

// ---------------------------------------------------------------------------------------
// Formatting

const int = (n) => Math.round(n).toLocaleString('en-US')

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`
}

function duration(ms) {
  if (!Number.isFinite(ms)) return '?'
  const s = Math.round(ms / 1000)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}

// ---------------------------------------------------------------------------------------
// Arguments and directories

function parse(command, args, options, positionalNames) {
  let parsed
  try {
    parsed = parseArgs({
      args,
      options: { help: { type: 'boolean', short: 'h' }, ...options },
      allowPositionals: true,
      strict: true,
    })
  } catch (error) {
    // parseArgs messages go on with advice about '--'; the first sentence says it.
    throw new UsageError(String(error.message).split(/\.\s/)[0].replace(/\.$/, ''))
  }
  if (parsed.values.help) {
    process.stdout.write(`${HELP[command]}\n`)
    return null
  }
  const { positionals } = parsed
  if (positionals.length < positionalNames.length) {
    throw new UsageError(`missing <${positionalNames[positionals.length]}> argument`)
  }
  if (positionals.length > positionalNames.length) {
    throw new UsageError(`unexpected argument '${positionals[positionalNames.length]}'`)
  }
  for (const [name, value] of Object.entries(parsed.values)) {
    if (value === '' || (Array.isArray(value) && value.includes('') && name !== 'namespace')) {
      throw new UsageError(`--${name} needs a value`)
    }
  }
  return { values: parsed.values, positionals }
}

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

let api = null
async function lmdbCache() {
  // require, not import('../index.js') (which only re-exports index.cjs): when index.cjs
  // throws (no native binary), Node 20 reports a dynamic import's failure a second time as
  // an uncaught exception, stack and all, after it was caught.
  if (api === null) api = require('../index.cjs')
  return api
}

// inspectLmdbCache: reads through it leave expired entries in place, so that a tool reporting
// on a cache (stats, dump) does not change it.
async function openCache(dir, { inspect = false } = {}) {
  const { openLmdbCache, inspectLmdbCache } = await lmdbCache()
  return (inspect ? inspectLmdbCache : openLmdbCache)({ path: dir })
}

async function withCache(dir, fn, options) {
  const cache = await openCache(dir, options)
  try {
    return await fn(cache)
  } finally {
    await cache.close()
  }
}

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

// ---------------------------------------------------------------------------------------
// migrate

class Progress {
  constructor(stream) {
    this.stream = stream
    this.tty = Boolean(stream.isTTY)
    this.lastDraw = 0
    this.lastLine = 0
    this.phase = null
    this.phaseStart = Date.now()
    this.drawn = false
  }

  update(p) {
    const now = Date.now()
    if (p.phase !== this.phase) {
      this.finishLine()
      this.phase = p.phase
      this.phaseStart = now
    }
    const complete = p.done >= p.total
    const elapsed = Math.max(now - this.phaseStart, 1)
    const rate = (p.done / elapsed) * 1000
    const eta = rate > 0 ? ((p.total - p.done) / rate) * 1000 : Infinity
    const percent = p.total === 0 ? 100 : Math.floor((p.done / p.total) * 100)
    // Entries read from the source, copied or skipped: the summary's "read" line.
    const verb = p.phase === 'verify' ? 'verified' : 'read'
    if (this.tty) {
      if (!complete && now - this.lastDraw < 100) return
      this.lastDraw = now
      const width = 24
      const filled = p.total === 0 ? width : Math.round((p.done / p.total) * width)
      const bar = '#'.repeat(filled) + '-'.repeat(width - filled)
      const text = `${p.phase} [${bar}] ${String(percent).padStart(3)}%  ${int(p.done)}/${int(p.total)}  ${int(rate)}/s  ETA ${complete ? '0s' : duration(eta)}`
      this.stream.write(`\r${text}\x1b[K`)
      this.drawn = true
    } else {
      // Plain lines: at most one a second, and the last one.
      if (!complete && (p.done === 0 || now - this.lastLine < 1000)) return
      if (complete && this.lastLine === -1) return
      this.lastLine = complete ? -1 : now
      this.stream.write(`${p.phase}: ${verb} ${int(p.done)}/${int(p.total)} entries (${percent}%), ${int(rate)}/s, ETA ${complete ? '0s' : duration(eta)}\n`)
    }
  }

  finishLine() {
    if (this.tty && this.drawn) this.stream.write('\n')
    this.drawn = false
    if (!this.tty) this.lastLine = 0
  }
}

async function cmdMigrate(args) {
  const parsed = parse(
    'migrate',
    args,
    {
      from: { type: 'string' },
      to: { type: 'string' },
      namespace: { type: 'string', multiple: true },
      verify: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    [],
  )
  if (parsed === null) return 0
  const { values } = parsed
  if (values.from === undefined) throw new UsageError('missing --from <level-cache dir>')
  if (values.to === undefined) throw new UsageError('missing --to <dir>')
  const { migrateFromLevel } = await lmdbCache()
  const progress = values.json ? null : new Progress(process.stderr)
  const controller = new AbortController()
  const onSignal = () => controller.abort()
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  let summary
  try {
    summary = await migrateFromLevel({
      from: values.from,
      to: values.to,
      namespace: values.namespace,
      verify: Boolean(values.verify),
      signal: controller.signal,
      onProgress: progress === null ? undefined : (p) => progress.update(p),
    })
  } catch (error) {
    progress?.finishLine()
    if (error.code === 'ABORT_ERR') throw new CommandError(error.message, 130)
    throw error
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
  progress?.finishLine()
  const verify = summary.verify
  if (values.json) {
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`)
  } else {
    const lines = [
      `migrated ${summary.from} -> ${summary.to}${summary.namespaces ? ` (namespaces: ${summary.namespaces.join(', ')})` : ''} in ${(summary.durationMs / 1000).toFixed(1)}s`,
      `  read                ${int(summary.total)}`,
      `  copied              ${int(summary.copied)}`,
      `  skipped, expired    ${int(summary.skippedExpired)}`,
      `  skipped, undefined  ${int(summary.skippedUndefined)}  (stored undefined: absent in level-cache too)`,
    ]
    if (summary.skippedInvalid > 0 || summary.skippedInvalidKeys > 0) {
      const examples = `(e.g. ${summary.invalidKeys
        .slice(0, 3)
        .map((k) => JSON.stringify(k))
        .join(', ')})`
      if (summary.skippedInvalid > 0) lines.push(`  skipped, not level-cache values  ${int(summary.skippedInvalid)}  ${examples}`)
      if (summary.skippedInvalidKeys > 0) lines.push(`  skipped, keys not valid UTF-8    ${int(summary.skippedInvalidKeys)}  ${examples}`)
    }
    if (verify) {
      if (verify.ok) {
        lines.push(`verify: OK, ${int(verify.checked)} entries have the same value and expiry on both sides`)
      } else {
        lines.push(
          `verify: FAILED, ${int(verify.missing)} missing, ${int(verify.differentValue)} with another value, ${int(verify.differentExpiry)} with another expiry`,
        )
        for (const d of verify.differences) {
          lines.push(`  ${JSON.stringify(d.key)}: ${d.problem} (source ${JSON.stringify(d.expected)}, copy ${JSON.stringify(d.actual)})`)
        }
      }
      if (verify.extra > 0) lines.push(`verify: the destination also has ${int(verify.extra)} entries the source lacks`)
    }
    process.stdout.write(`${lines.join('\n')}\n`)
  }
  return verify && !verify.ok ? 1 : 0
}

// ---------------------------------------------------------------------------------------
// stats, sweep

// The row of `stats` for keys outside any namespace (no U+241F in them).
const NO_NAMESPACE = '(no namespace)'

async function cmdStats(args) {
  const parsed = parse('stats', args, { json: { type: 'boolean' } }, ['dir'])
  if (parsed === null) return 0
  const dir = existingCacheDir(parsed.positionals[0])
  const { cacheStats } = await lmdbCache()
  // Read-only: expired entries are counted, not deleted (an inspecting handle queues no lazy
  // deletes). Opening the cache removes what killed compactions left behind.
  const { stats, namespaces } = await withCache(
    dir,
    async (cache) => {
      const figures = await cacheStats(cache)
      const counts = new Map()
      for await (const [key] of cache.entries()) {
        const at = key.indexOf(SEPARATOR)
        const ns = at === -1 ? '' : key.slice(0, at)
        counts.set(ns, (counts.get(ns) ?? 0) + 1)
      }
      const sorted = [...counts].sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : Buffer.compare(Buffer.from(a), Buffer.from(b))))
      return { stats: figures, namespaces: new Map(sorted) }
    },
    { inspect: true },
  )
  if (parsed.values.json) {
    process.stdout.write(`${JSON.stringify({ directory: dir, ...stats, namespaces: Object.fromEntries(namespaces) }, null, 2)}\n`)
    return 0
  }
  const lines = [
    `directory    ${dir}`,
    `entries      ${int(stats.entries)} (${int(stats.liveEntries)} live, ${int(stats.expiredEntries)} expired)`,
    `namespaces   ${int([...namespaces.keys()].filter((ns) => ns !== '').length)} (live entries in each${namespaces.has('') ? `; ${NO_NAMESPACE}: keys without one` : ''})`,
  ]
  const label = (ns) => (ns === '' ? NO_NAMESPACE : ns)
  const width = Math.max(8, ...[...namespaces.keys()].map((ns) => label(ns).length))
  for (const [ns, count] of namespaces) lines.push(`  ${label(ns).padEnd(width)}  ${int(count)}`)
  lines.push(
    `map size     ${bytes(stats.mapSize)} (grows up to ${bytes(stats.maxMapSize)})`,
    `file size    ${bytes(stats.fileSize)} (data.mdb)`,
    `used size    ${bytes(stats.usedSize)} (up to the last page in use; '${PROGRAM} compact' drops free pages)`,
    `free pages   ${int(stats.freePages)} (${bytes(stats.pageSize)} each, ${bytes(stats.freePages * stats.pageSize)} reusable)`,
    `readers      ${int(stats.readersInUse)} of ${int(stats.maxReaders)} slots (most ever in use at once)`,
    ...boundLines(stats),
  )
  process.stdout.write(`${lines.join('\n')}\n`)
  return 0
}

/** The `stats` lines of a bounded directory (docs/eviction.md): its bounds and counted totals. */
function boundLines(stats) {
  if (stats.maxEntries === null && stats.maxBytes === null) {
    return stats.countedEntries === null ? [] : [`bounds       none (removed; ${int(stats.countedEntries)} entries of ${bytes(stats.countedBytes)} counted)`]
  }
  const of = (counted, max, show, unit) => `${show(counted)}${unit}${max === null ? '' : ` of at most ${show(max)}`}`
  const counted =
    stats.countedEntries === null
      ? ['counted      not yet (the next write counts them)']
      : [`counted      ${of(stats.countedEntries, stats.maxEntries, int, ' entries')}, ${of(stats.countedBytes, stats.maxBytes, bytes, '')} (keys + records)`]
  const d = stats.directoryCounters
  const activity =
    d === null
      ? []
      : [
          `evictions    ${int(d.evictions)} entries evicted to keep within the bounds (all processes, since the bound was set)`,
          `reads        ${int(d.hits)} hits, ${int(d.misses)} misses${d.hits + d.misses > 0 ? ` (${((100 * d.hits) / (d.hits + d.misses)).toFixed(1)} % hits)` : ''} by gets and has() of all processes, each counted up to its last write`,
        ]
  return [
    `bounds       ${stats.maxEntries === null ? 'no entry bound' : `maxEntries ${int(stats.maxEntries)}`}, ${stats.maxBytes === null ? 'no byte bound' : `maxBytes ${bytes(stats.maxBytes)}`} (least recently used entries are evicted past them)`,
    ...counted,
    ...activity,
  ]
}

async function cmdSweep(args) {
  const parsed = parse('sweep', args, { json: { type: 'boolean' } }, ['dir'])
  if (parsed === null) return 0
  const dir = existingCacheDir(parsed.positionals[0])
  const swept = await withCache(dir, (cache) => cache.sweepExpired())
  process.stdout.write(parsed.values.json ? `${JSON.stringify({ swept })}\n` : `swept ${int(swept)} expired entries\n`)
  return 0
}

// ---------------------------------------------------------------------------------------
// dump, load

async function cmdDump(args) {
  const parsed = parse('dump', args, { namespace: { type: 'string', multiple: true }, out: { type: 'string' }, force: { type: 'boolean' } }, ['dir'])
  if (parsed === null) return 0
  const dir = existingCacheDir(parsed.positionals[0])
  const namespaces = parsed.values.namespace ?? []
  const outFile = parsed.values.out
  const force = Boolean(parsed.values.force)
  if (force && outFile === undefined) throw new UsageError('--force needs --out <file>')
  if (outFile !== undefined) {
    // Before anything is opened for writing: never over a cache's files, even with --force.
    try {
      refuseDestinationInCache(outFile, dir)
    } catch (error) {
      throw new CommandError(error.message)
    }
    if (!force && fs.existsSync(outFile)) throw new CommandError(`${outFile} exists; pass --force to replace it`)
  }
  const { getEntry } = await lmdbCache()
  let out = process.stdout
  let tmp = null
  if (outFile !== undefined) {
    // Written beside the file and renamed at the end: no half dump under the name.
    tmp = `${path.resolve(outFile)}.${process.pid}.tmp`
    try {
      out = fs.createWriteStream(tmp, { flags: 'wx' })
      await new Promise((resolve, reject) => out.once('open', resolve).once('error', reject))
    } catch (error) {
      throw new CommandError(`cannot write ${outFile}: ${error.message}`)
    }
  }
  let count = 0
  try {
    await withCache(
      dir,
      async (root) => {
        const scopes = namespaces.length === 0 || namespaces.includes('') ? [''] : [...new Set(namespaces)]
        for (const ns of scopes) {
          const view = ns === '' ? root : root.withNamespace(ns)
          const prefix = ns === '' ? '' : ns + SEPARATOR
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
    if (tmp !== null) {
      await new Promise((resolve, reject) => out.end((error) => (error ? reject(error) : resolve())))
      const fd = fs.openSync(tmp, 'r')
      fs.fsyncSync(fd)
      fs.closeSync(fd)
      publish(tmp, path.resolve(outFile), force, outFile)
      tmp = null
      process.stdout.write(`dumped ${int(count)} entries to ${outFile}\n`)
    }
  } finally {
    if (tmp !== null) {
      out.destroy()
      fs.rmSync(tmp, { force: true })
    }
  }
  return 0
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

/** Reads a JSON Lines dump; calls onEntry(entry, lineNumber) for each entry (awaiting it). */
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

async function cmdLoad(args) {
  const parsed = parse('load', args, {}, ['dir', 'file'])
  if (parsed === null) return 0
  const [dirArg, file] = parsed.positionals
  try {
    if (!fs.statSync(file).isFile()) throw new CommandError(`not a file: ${file}`)
  } catch (error) {
    if (error instanceof CommandError) throw error
    throw new CommandError(`cannot read ${file}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`)
  }
  const dir = targetCacheDir(dirArg)
  // First pass: check the whole file, so a bad line writes nothing.
  let lines = 0
  await readDump(file, () => {
    lines++
  })
  const { putEntries } = await lmdbCache()
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
        if (batch.length >= 1000) await flush()
      })
      if (batch.length > 0) await flush()
    } catch (error) {
      // The file was valid (checked first), so this is the store failing (a full disk): say
      // what is in it now. Each batch of 1,000 is atomic.
      error.message = `${error.message}; ${int(loaded)} of ${int(lines)} entries were written before the failure`
      throw error
    }
  })
  process.stdout.write(`loaded ${int(loaded)} entries into ${dirArg}${expired > 0 ? ` (${int(expired)} already expired, skipped)` : ''}\n`)
  return 0
}

// ---------------------------------------------------------------------------------------
// compact (the algorithm: lib/compact.cjs)

async function cmdCompact(args) {
  const parsed = parse('compact', args, { force: { type: 'boolean' } }, ['dir'])
  if (parsed === null) return 0
  const dirArg = parsed.positionals[0]
  const dir = existingCacheDir(dirArg)
  const result = await compactCache(dir, { label: dirArg, force: Boolean(parsed.values.force) })
  process.stdout.write(`compacted ${dirArg}: data.mdb ${bytes(result.fileSizeBefore)} -> ${bytes(result.fileSizeAfter)} (${int(result.entries)} entries)\n`)
  return 0
}

// ---------------------------------------------------------------------------------------
// verify

const VERIFY_CHILD = fileURLToPath(new URL('../lib/verify-child.cjs', import.meta.url))

/** Runs the walk in a child process; resolves { code, signal, result, lastProgress, errors }. */
function runVerifyChild(dir) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [VERIFY_CHILD, dir], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code, signal) => {
      let lastProgress = null
      const errors = []
      for (const line of stderr.split('\n')) {
        const m = /^progress\t(\d+)\t(.*)$/.exec(line)
        if (m) lastProgress = { records: Number(m[1]), key: JSON.parse(m[2]) }
        else if (line.trim() !== '') errors.push(line)
      }
      let result = null
      try {
        result = JSON.parse(stdout.trim().split('\n').pop())
      } catch {}
      resolve({ code, signal, result, lastProgress, errors })
    })
  })
}

async function cmdVerify(args) {
  const parsed = parse('verify', args, { json: { type: 'boolean' } }, ['dir'])
  if (parsed === null) return 0
  const dir = existingCacheDir(parsed.positionals[0])
  const { code, signal, result, lastProgress, errors } = await runVerifyChild(dir)
  let outcome
  if (result?.ok) {
    const { entries, expiryRows, undecodable, undecodableCount, totalsChecked } = result.report
    // A bounded directory's running totals are checked against the walk's full count.
    const totals = totalsChecked ? '; running totals match a full count' : ''
    outcome =
      undecodableCount === 0
        ? {
            ok: true,
            entries,
            expiryRows,
            totalsChecked,
            text: `OK: ${int(entries)} entries, ${int(expiryRows)} expiry index rows, every record readable${totals}`,
          }
        : {
            ok: false,
            entries,
            undecodable: undecodable.map(([key, detail]) => ({ key, detail })),
            text: [
              `damaged: ${int(undecodableCount)} of ${int(entries)} records cannot be decoded${undecodableCount > undecodable.length ? ` (the first ${undecodable.length} listed)` : ''}:`,
              ...undecodable.map(([key, detail]) => `  ${JSON.stringify(key)}: ${detail}`),
            ].join('\n'),
          }
  } else if (result && ['ERR_PERMISSION_DENIED', 'ERR_NOT_A_DIRECTORY', 'ERR_NATIVE_BINARY_MISSING'].includes(result.code)) {
    throw Object.assign(new CommandError(result.message), { code: result.code })
  } else if (result) {
    // LMDB's own findings (MDB_CORRUPTED, MDB_PAGE_NOTFOUND: ERR_IO) are damage too.
    outcome = { ok: false, code: result.code, text: `damaged: ${result.message} [${result.code}]` }
  } else {
    const how = signal ? `crashed with ${signal}` : `exited with code ${code}`
    const where = lastProgress
      ? `after key ${JSON.stringify(lastProgress.key)} (record ${int(lastProgress.records)} in key order; the damage lies after it)`
      : 'before its first 256 records'
    const detail = errors.length > 0 && !signal ? ` (${errors[errors.length - 1]})` : ''
    outcome = { ok: false, signal: signal ?? null, lastKey: lastProgress?.key ?? null, text: `damaged: the walk ${how} ${where}${detail}` }
  }
  if (parsed.values.json) {
    const { text, ...rest } = outcome
    process.stdout.write(`${JSON.stringify({ directory: dir, ...rest, message: text })}\n`)
  } else {
    process.stdout.write(`${outcome.text}\n`)
  }
  if (!outcome.ok && !parsed.values.json) {
    process.stdout.write(`See the README's "Damaged files": restore a backup, or '${PROGRAM} dump' what is readable.\n`)
  }
  return outcome.ok ? 0 : 1
}

// ---------------------------------------------------------------------------------------

const COMMANDS = { migrate: cmdMigrate, stats: cmdStats, sweep: cmdSweep, dump: cmdDump, load: cmdLoad, compact: cmdCompact, verify: cmdVerify }

async function main(argv) {
  const [command, ...rest] = argv
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    const topic = command === 'help' ? rest[0] : undefined
    if (topic !== undefined && !Object.hasOwn(HELP, topic)) throw new UsageError(`unknown command '${topic}'`)
    // Without a command, the help is the error message.
    const stream = command === undefined ? process.stderr : process.stdout
    stream.write(`${topic === undefined ? HELP.main : HELP[topic]}\n`)
    return command === undefined ? 2 : 0
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${require('../package.json').version}\n`)
    return 0
  }
  if (!Object.hasOwn(COMMANDS, command)) throw new UsageError(`unknown command '${command}'`)
  return COMMANDS[command](rest)
}

const [command] = process.argv.slice(2)
const label = Object.hasOwn(COMMANDS, command ?? '') ? `${PROGRAM} ${command}` : PROGRAM

process.stdout.on('error', (error) => {
  // A closed pipe (`lmdb-cache dump dir | head`) ends the command quietly; any other failure
  // to write the output (a full disk) is one line on stderr.
  if (error.code === 'EPIPE') process.exit(0)
  process.stderr.write(`${label}: cannot write to standard output: ${error.message}\n`)
  process.exit(1)
})

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (error) {
  if (process.env.LMDB_CACHE_DEBUG) console.error(error)
  if (error instanceof UsageError) {
    process.stderr.write(`${label}: ${error.message} (see '${label} --help')\n`)
    process.exitCode = 2
  } else {
    // The native binary's error says on its next lines what to install and what was tried.
    const text = String(error?.message ?? error)
    const message = error?.code === 'ERR_NATIVE_BINARY_MISSING' ? text : text.split('\n')[0]
    const code = typeof error?.code === 'string' && error.code.startsWith('ERR_') ? ` [${error.code}]` : ''
    process.stderr.write(`${label}: ${message}${code}\n`)
    process.exitCode = error instanceof CommandError ? error.exitCode : 1
  }
}
