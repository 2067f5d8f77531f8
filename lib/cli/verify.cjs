'use strict'
// Owns `lmdb-cache verify`: runs the walk of every page and record (lib/verify-child.cjs over
// src/verify.rs) in a child process, so that a fault on a damaged page kills only the child,
// and turns what the child said, or the signal it died of, into one outcome.

const path = require('node:path')
const { spawn } = require('node:child_process')
const { CommandError } = require('./errors.cjs')

const VERIFY_CHILD = path.join(__dirname, '..', 'verify-child.cjs')
// Errors of the child that are about the directory or the install, not damage.
const NOT_DAMAGE = ['ERR_PERMISSION_DENIED', 'ERR_NOT_A_DIRECTORY', 'ERR_NATIVE_BINARY_MISSING']

const int = (n) => Math.round(n).toLocaleString('en-US')

/** Runs the walks in a child process; resolves { code, signal, result, lastProgress, damagedPages, errors }. */
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
      const damagedPages = []
      const errors = []
      for (const line of stderr.split('\n')) {
        const m = /^progress\t(\d+)\t(.*)$/.exec(line)
        const p = /^page\t(\d+)\t(.*)$/.exec(line)
        if (m) lastProgress = { records: Number(m[1]), key: JSON.parse(m[2]) }
        else if (p) damagedPages.push({ page: Number(p[1]), detail: JSON.parse(p[2]) })
        else if (line.trim() !== '') errors.push(line)
      }
      let result = null
      try {
        result = JSON.parse(stdout.trim().split('\n').pop())
      } catch {}
      resolve({ code, signal, result, lastProgress, damagedPages, errors })
    })
  })
}

/**
 * Verifies the cache in `dir`: resolves `{ ok, text, ...details }` (text: what to print), or
 * throws a CommandError when the directory cannot be read at all.
 */
async function verifyCache(dir) {
  const { code, signal, result, lastProgress, damagedPages, errors } = await runVerifyChild(dir)
  const outcome = recordOutcome(code, signal, result, lastProgress, errors)
  if (damagedPages.length === 0) return outcome
  const total = result?.pages?.damagedCount ?? damagedPages.length
  const pageLines = [
    `damaged: ${int(total)} damaged page${total === 1 ? '' : 's'}${total > damagedPages.length ? ` (the first ${damagedPages.length} listed)` : ''}:`,
    ...damagedPages.map(({ page, detail }) => `  damaged at page ${page}: ${detail}`),
  ]
  // An open-time finding (a truncated file, damaged meta pages) says it best: it goes first.
  const openRefused = result !== null && !result.ok
  const text = outcome.ok ? pageLines.join('\n') : openRefused ? `${outcome.text}\n${pageLines.join('\n')}` : `${pageLines.join('\n')}\n${outcome.text}`
  return { ...outcome, ok: false, damagedPages, text }
}

/** The outcome of the record walk (through LMDB): OK, undecodable records, or its death. */
function recordOutcome(code, signal, result, lastProgress, errors) {
  if (result?.ok) {
    const { entries, expiryRows, undecodable, undecodableCount, totalsChecked } = result.report
    if (undecodableCount === 0) {
      // A bounded directory's running totals are checked against the walk's full count.
      const totals = totalsChecked ? '; running totals match a full count' : ''
      return {
        ok: true,
        entries,
        expiryRows,
        totalsChecked,
        text: `OK: ${int(entries)} entries, ${int(expiryRows)} expiry index rows, every record readable${totals}`,
      }
    }
    return {
      ok: false,
      entries,
      undecodable: undecodable.map(([key, detail]) => ({ key, detail })),
      text: [
        `damaged: ${int(undecodableCount)} of ${int(entries)} records cannot be decoded${undecodableCount > undecodable.length ? ` (the first ${undecodable.length} listed)` : ''}:`,
        ...undecodable.map(([key, detail]) => `  ${JSON.stringify(key)}: ${detail}`),
      ].join('\n'),
    }
  }
  if (result && NOT_DAMAGE.includes(result.code)) {
    throw Object.assign(new CommandError(result.message), { code: result.code })
  }
  if (result) {
    // LMDB's own findings (MDB_CORRUPTED, MDB_PAGE_NOTFOUND: ERR_IO) are damage too.
    return { ok: false, code: result.code, text: `damaged: ${result.message} [${result.code}]` }
  }
  const how = signal ? `crashed with ${signal}` : `exited with code ${code}`
  const where = lastProgress
    ? `after key ${JSON.stringify(lastProgress.key)} (record ${int(lastProgress.records)} in key order; the damage lies after it)`
    : 'before its first 256 records'
  const detail = errors.length > 0 && !signal ? ` (${errors[errors.length - 1]})` : ''
  return { ok: false, signal: signal ?? null, lastKey: lastProgress?.key ?? null, text: `damaged: the walk ${how} ${where}${detail}` }
}

module.exports = { verifyCache }
