'use strict'
// Owns how the command-line tool prints: numbers, byte sizes and durations, the progress of a
// migration (a bar on a terminal, a line a second elsewhere), and the text of the migrate and
// stats reports.

const { PROGRAM } = require('./help.cjs')

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

/** The lines of migrate's summary (`summary`: what migrateFromLevel resolved). */
function migrateSummaryText(summary) {
  const verify = summary.verify
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
  return lines.join('\n')
}

// The row of `stats` for keys outside any namespace (no U+241F in them).
const NO_NAMESPACE = '(no namespace)'

/** The text of `stats` for the directory `dir` (`figures`: what cacheFigures resolved). */
function statsText(dir, { stats, namespaces }) {
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
  return lines.join('\n')
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

module.exports = { int, bytes, duration, Progress, migrateSummaryText, statsText }
