'use strict'
// Owns entries paging: the async iterator of entries() (pages of pairs read synchronously
// from native code, growing from FIRST_PAGE_ENTRIES), the gt/gte/lt/lte key bounds of a
// scan, and count(), counted natively in chunks between which the event loop runs.

const { binding, scratch, ctl, L } = require('./native.cjs')
const { codedError, describe, checkOpen } = require('./errors.cjs')
const { fullKeyBytes } = require('./reads.cjs')

const FIRST_PAGE_ENTRIES = 64
const MAX_PAGE_ENTRIES = 4096
// Small enough that a page usually fits the scratch buffer's 64 KiB value area (a page may
// run over by one entry) and its JSON text stays out of V8's large-object space.
const MAX_PAGE_BYTES = 32 * 1024
// Entries counted per native call; between calls the event loop runs, so counting a large
// namespace does not hold it for long (~10 ms per chunk).
const COUNT_CHUNK = 100_000

function normaliseLimit(opts) {
  const limit = opts === undefined || opts === null ? undefined : opts.limit
  if (limit === undefined || limit === null || limit === Infinity || limit < 0) return Infinity
  if (typeof limit !== 'number' || Number.isNaN(limit)) {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', `entries() limit must be a number, got ${describe(limit)}`)
  }
  return Math.floor(limit)
}

/** The full-key bound of a range option, as [bytes, inclusive], or null. */
function rangeBound(view, opts, exclusiveName, inclusiveName, method) {
  const exclusive = opts[exclusiveName]
  const inclusive = opts[inclusiveName]
  if (exclusive !== undefined && inclusive !== undefined) {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', `${method} takes ${exclusiveName} or ${inclusiveName}, not both`)
  }
  const key = exclusive !== undefined ? exclusive : inclusive
  if (key === undefined) return null
  if (typeof key !== 'string') {
    throw codedError(
      TypeError,
      'ERR_INVALID_OPTIONS',
      `${method} ${exclusive !== undefined ? exclusiveName : inclusiveName} must be a string key, got ${describe(key)}`,
    )
  }
  return [fullKeyBytes(view, key), exclusive === undefined]
}

/** gt/gte and lt/lte as the native scans take them: full-key bytes (or null) and inclusivity. */
function keyBounds(view, opts, method) {
  const lower = rangeBound(view, opts, 'gt', 'gte', method)
  const upper = rangeBound(view, opts, 'lt', 'lte', method)
  return {
    lower: lower === null ? null : lower[0],
    lowerInclusive: lower === null ? false : lower[1],
    upper: upper === null ? null : upper[0],
    upperInclusive: upper === null ? false : upper[1],
  }
}

/**
 * The async iterator `entries()` returns. Pages are read synchronously from native code, so
 * each `next()` settles at once from the current page; this spares the per-entry suspension
 * of an async generator, which costs more than decoding the entry. Options are checked, and
 * a closed cache reported, by the first `next()`, as a generator would.
 */
class EntriesIterator {
  /** `keysOnly`: yield keys alone (keys()), read without copying or decoding values. */
  constructor(view, opts, keysOnly = false) {
    this.view = view
    this.opts = opts
    this.keysOnly = keysOnly
    this.scan = null // set up by the first next()
    this.page = []
    this.index = 0
    this.finished = false
  }

  next() {
    try {
      if (this.finished) return Promise.resolve({ value: undefined, done: true })
      // Checked on every call, not only per page: entries already read are not served after close().
      checkOpen(this.view.handle)
      if (this.scan === null) this.scan = this.start()
      const scan = this.scan
      while (this.index >= this.page.length) {
        if (scan.lastPage || scan.yielded >= scan.limit) return this.return()
        this.page = this.readPage(scan)
        this.index = 0
        scan.pageSize = Math.min(scan.pageSize * 4, MAX_PAGE_ENTRIES)
      }
      scan.yielded++
      return Promise.resolve({ value: this.page[this.index++], done: false })
    } catch (error) {
      this.finish()
      return Promise.reject(error)
    }
  }

  return(value) {
    this.finish()
    return Promise.resolve({ value, done: true })
  }

  throw(error) {
    this.finish()
    return Promise.reject(error)
  }

  [Symbol.asyncIterator]() {
    return this
  }

  finish() {
    this.finished = true
    this.page = []
  }

  start() {
    const options = this.opts === undefined || this.opts === null ? {} : this.opts
    return {
      limit: normaliseLimit(options),
      bounds: keyBounds(this.view, options, this.keysOnly ? 'keys()' : 'entries()'),
      reverse: options.reverse === true,
      after: null,
      lastPage: false,
      yielded: 0,
      pageSize: FIRST_PAGE_ENTRIES,
    }
  }

  readPage(scan) {
    const { view } = this
    const page = binding.entriesPage(
      view.handle.id,
      view.prefixBytes,
      scan.bounds.lower,
      scan.bounds.lowerInclusive,
      scan.bounds.upper,
      scan.bounds.upperInclusive,
      scan.reverse,
      scan.after,
      Date.now(),
      Math.min(scan.pageSize, scan.limit - scan.yielded),
      MAX_PAGE_BYTES,
      this.keysOnly,
    )
    // null: the page was written into the scratch buffer's value area.
    const { decodePage } = view.handle.decoders
    if (page === null || page === undefined) return decodePage(scratch, L.VALUE_OFFSET, L.VALUE_OFFSET + ctl[L.CTL_VALUE_LEN], scan)
    return decodePage(page, 0, page.length, scan)
  }
}

/**
 * The number of live entries of the view within the optional gt/gte/lt/lte bounds, counted
 * natively without reading the values out: a B-tree walk, one record header per entry.
 */
async function countEntries(view, opts) {
  const { handle } = view
  if (opts !== undefined && opts !== null && typeof opts !== 'object') {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', `count() options must be an object, got ${describe(opts)}`)
  }
  const options = opts ?? {}
  const bounds = keyBounds(view, options, 'count()')
  let total = 0
  let after = null
  for (;;) {
    checkOpen(handle)
    const chunk = binding.countPage(
      handle.id,
      view.prefixBytes,
      bounds.lower,
      bounds.lowerInclusive,
      bounds.upper,
      bounds.upperInclusive,
      after,
      Date.now(),
      COUNT_CHUNK,
    )
    total += chunk.readUInt32LE(L.PAGE_COUNT_AT)
    if ((chunk[0] & L.PAGE_FLAG_DONE) !== 0) return total
    after = chunk.subarray(L.COUNT_HEADER_LEN)
    await new Promise((resolve) => setImmediate(resolve))
  }
}

module.exports = { EntriesIterator, countEntries, keyBounds }
