'use strict'
// The public API of @promethean/lmdb-cache: level-cache's Cache, over the native core.
//
// Reads are synchronous native calls (one LMDB read transaction each) that return resolved
// promises. To keep a read cheaper than the LMDB lookup itself, the hot path passes nothing
// through N-API arguments: the key bytes, the handle id and the results travel through one
// scratch buffer shared with native code once per thread (see src/binding.rs).
// Writes are encoded into one binary request and queued to the store's writer thread, which
// commits everything queued meanwhile in one transaction; the promise settles after commit.

const path = require('node:path')
const binding = require('./binding.cjs')

const NAMESPACE_SEPARATOR = '\u241F'
const WRITE_BATCH = 0
const WRITE_SWEEP = 1
const OP_PUT = 1
const OP_DEL = 2
const OP_FLAG_EXPIRY = 1
const OP_FLAG_UNDEFINED = 2
const DURABILITY_CODES = { nosync: 0, durable: 1, strict: 2 }
const DEFAULT_MAP_SIZE = 64 * 1024 * 1024
const DEFAULT_MAX_MAP_SIZE = 256 * 1024 * 1024 * 1024
const DEFAULT_MAX_READERS = 1022
const FIRST_PAGE_ENTRIES = 64
const MAX_PAGE_ENTRIES = 4096
const MAX_PAGE_BYTES = 1024 * 1024

// ---------------------------------------------------------------------------------------
// Native state of this thread

const pending = new Map() // ticket -> { resolve, reject, handle }
let nextTicket = 1

function onWritesDone(tickets, values, failures) {
  let failed = null
  if (failures.length > 0) {
    failed = new Map()
    for (let i = 0; i < failures.length; i += 2) failed.set(failures[i], failures[i + 1])
  }
  for (let i = 0; i < tickets.length; i++) {
    const waiter = pending.get(tickets[i])
    if (waiter === undefined) continue
    pending.delete(tickets[i])
    const error = failed === null ? undefined : failed.get(tickets[i])
    if (error === undefined) waiter.resolve(waiter.kind === WRITE_SWEEP ? values[i] : undefined)
    else waiter.reject(error)
    waiter.handle.writeSettled()
  }
  if (pending.size === 0) hot.releaseLoop()
}

const { scratch, layout: L, hot } = binding.init(onWritesDone)
const ctl = new Float64Array(scratch.buffer, scratch.byteOffset, L.CTL_SLOTS)
const KEY_OFFSET = L.KEY_OFFSET
const KEY_CAPACITY = L.KEY_CAPACITY
const VALUE_OFFSET = L.VALUE_OFFSET
const CTL_HANDLE = L.CTL_HANDLE
const CTL_KEY_LEN = L.CTL_KEY_LEN
const CTL_WANT_VALUE = L.CTL_WANT_VALUE
const CTL_EXPIRY = L.CTL_EXPIRY
const CTL_HAS_EXPIRY = L.CTL_HAS_EXPIRY
const CTL_NOW = L.CTL_NOW
const CTL_VALUE_LEN = L.CTL_VALUE_LEN
const LOOKUP_MISSING = L.LOOKUP_MISSING
const LOOKUP_FOUND = L.LOOKUP_FOUND
const LOOKUP_FOUND_LARGE = L.LOOKUP_FOUND_LARGE
const LOOKUP_FAILED = L.LOOKUP_FAILED

// Buffer.prototype.utf8Write/utf8Slice skip the argument normalisation of write/toString.
const utf8Write =
  typeof scratch.utf8Write === 'function'
    ? (buf, str, offset) => buf.utf8Write(str, offset)
    : (buf, str, offset) => buf.write(str, offset, 'utf8')
const utf8Slice =
  typeof scratch.utf8Slice === 'function'
    ? (buf, start, end) => buf.utf8Slice(start, end)
    : (buf, start, end) => buf.toString('utf8', start, end)

// ---------------------------------------------------------------------------------------
// Errors: stable string codes

function codedError(Kind, code, message, cause) {
  const error = new Kind(message, cause === undefined ? undefined : { cause })
  error.code = code
  return error
}

function closedError() {
  return codedError(Error, 'ERR_CACHE_CLOSED', 'the cache is closed')
}

function checkKey(key) {
  if (typeof key !== 'string') {
    throw codedError(TypeError, 'ERR_INVALID_KEY', `cache keys must be strings, got ${describe(key)}`)
  }
}

function describe(value) {
  if (value === null) return 'null'
  if (typeof value === 'symbol') return 'a symbol'
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`
}

/** JSON text of a value, or undefined for values JSON leaves out (undefined, functions). */
function encodeValue(value) {
  try {
    return JSON.stringify(value)
  } catch (cause) {
    throw codedError(TypeError, 'ERR_INVALID_VALUE', `the value cannot be stored as JSON: ${cause.message}`, cause)
  }
}

function expiryFor(ttlMs, now) {
  if (ttlMs === undefined || ttlMs === null) return undefined
  if (typeof ttlMs !== 'number' || Number.isNaN(ttlMs)) {
    throw codedError(TypeError, 'ERR_INVALID_TTL', `ttlMs must be a number of milliseconds, got ${describe(ttlMs)}`)
  }
  return now + ttlMs
}

// ---------------------------------------------------------------------------------------
// Writes: every write is one binary request (layout: src/writer.rs, parse_batch); the
// requests made during one turn of the event loop reach native code in one call
// (parse_flush), so a burst of writes costs one N-API call and lands in one commit.

const REQUEST_HEADER_BYTES = 21
let flushBuffer = Buffer.allocUnsafeSlow(256 * 1024)
let flushLength = 4
let flushTickets = []
let flushScheduled = false

function reserveFlush(bytes) {
  const needed = flushLength + bytes
  if (flushBuffer.length < needed) {
    const bigger = Buffer.allocUnsafeSlow(Math.max(needed, flushBuffer.length * 2))
    flushBuffer.copy(bigger, 0, 0, flushLength)
    flushBuffer = bigger
  }
  return flushBuffer
}

function flushWrites() {
  flushScheduled = false
  if (flushTickets.length === 0) return
  const tickets = flushTickets
  flushBuffer.writeUInt32LE(tickets.length, 0)
  const bytes = flushBuffer.subarray(0, flushLength)
  flushTickets = []
  flushLength = 4
  try {
    binding.enqueueRequests(bytes)
  } catch (error) {
    // Only an internal fault gets here; fail the requests rather than leave them pending.
    const failures = []
    for (const ticket of tickets) failures.push(ticket, error)
    onWritesDone(Uint32Array.from(tickets), new Float64Array(tickets.length), failures)
  }
  if (flushBuffer.length > 1024 * 1024) flushBuffer = Buffer.allocUnsafeSlow(256 * 1024)
}

/** Upper bound of an op's encoded size. */
function opBound(prefix, key, json) {
  return 18 + prefix.length + key.length * 3 + (json === undefined ? 0 : 4 + json.length * 3)
}

function opsBound(view, ops) {
  let bound = 4
  for (const op of ops) bound += opBound(op.prefix === undefined ? view.prefixBytes : op.prefix, op.key, op.json)
  return bound
}

/** Encodes ops ({kind, key, json, expiry}) for the view into buf at off; returns the end. */
function writeOps(buf, off, view, ops) {
  off = buf.writeUInt32LE(ops.length, off)
  for (const op of ops) {
    const prefix = op.prefix === undefined ? view.prefixBytes : op.prefix
    let flags = 0
    if (op.expiry !== undefined) flags |= OP_FLAG_EXPIRY
    if (op.kind === OP_PUT && op.json === undefined) flags |= OP_FLAG_UNDEFINED
    buf[off++] = op.kind
    buf[off++] = flags
    if (op.expiry !== undefined) off = buf.writeDoubleLE(op.expiry, off)
    const keyLenAt = off
    off += 4
    if (prefix.length > 0) buf.set(prefix, off)
    const keyLen = prefix.length + utf8Write(buf, op.key, off + prefix.length)
    buf.writeUInt32LE(keyLen, keyLenAt)
    off += keyLen
    if (op.kind === OP_PUT && op.json !== undefined) {
      const jsonLen = utf8Write(buf, op.json, off + 4)
      buf.writeUInt32LE(jsonLen, off)
      off += 4 + jsonLen
    }
  }
  return off
}

// ---------------------------------------------------------------------------------------
// Handles: one per openLmdbCache() call, shared by its namespace views

class HandleState {
  constructor(id, defaultTtlMs) {
    this.id = id
    this.defaultTtlMs = defaultTtlMs
    this.closed = false
    this.closing = null
    this.inflight = 0
    this.onIdle = null
  }

  /** Queues one request; `ops` for a batch (null for a sweep). Settles after its commit. */
  submit(kind, view, ops, now) {
    const ticket = nextTicket
    nextTicket = nextTicket >= 0x7fffffff ? 1 : nextTicket + 1
    const buf = reserveFlush(REQUEST_HEADER_BYTES + (ops === null ? 0 : opsBound(view, ops)))
    const start = flushLength
    buf.writeUInt32LE(this.id, start)
    buf.writeUInt32LE(ticket, start + 4)
    buf[start + 8] = kind
    buf.writeDoubleLE(now, start + 9)
    const payloadStart = start + REQUEST_HEADER_BYTES
    const end = ops === null ? payloadStart : writeOps(buf, payloadStart, view, ops)
    buf.writeUInt32LE(end - payloadStart, start + 17)
    flushLength = end
    flushTickets.push(ticket)
    if (!flushScheduled) {
      flushScheduled = true
      queueMicrotask(flushWrites)
    }
    if (pending.size === 0) hot.holdLoop()
    this.inflight++
    return new Promise((resolve, reject) => pending.set(ticket, { resolve, reject, handle: this, kind }))
  }

  writeSettled() {
    this.inflight--
    if (this.inflight === 0 && this.onIdle !== null) this.onIdle()
  }

  close() {
    if (this.closing === null) {
      this.closed = true
      this.closing = (async () => {
        if (this.inflight > 0) await new Promise((resolve) => (this.onIdle = resolve))
        binding.close(this.id)
      })()
    }
    return this.closing
  }
}

// ---------------------------------------------------------------------------------------
// Reads

/** Writes the view's full key into the scratch buffer; -1 when it may not fit. */
function writeScratchKey(view, key) {
  const prefix = view.prefixBytes
  if (key.length * 3 > KEY_CAPACITY - prefix.length) return -1
  if (prefix.length > 0) scratch.set(prefix, KEY_OFFSET)
  return prefix.length + utf8Write(scratch, key, KEY_OFFSET + prefix.length)
}

function fullKeyBytes(view, key) {
  return Buffer.concat([view.prefixBytes, Buffer.from(key, 'utf8')])
}

/** Looks the key up; returns a LOOKUP_* code, MISSING for an expired entry (queued for lazy deletion). */
function lookup(view, key, wantValue) {
  const handle = view.handle
  let longKey = null
  let status
  const len = writeScratchKey(view, key)
  if (len >= 0) {
    ctl[CTL_HANDLE] = handle.id
    ctl[CTL_KEY_LEN] = len
    ctl[CTL_WANT_VALUE] = wantValue ? 1 : 0
    status = hot.lookup()
  } else {
    longKey = fullKeyBytes(view, key)
    status = binding.lookupKey(handle.id, longKey, wantValue)
  }
  if (status === LOOKUP_FAILED) binding.throwLastError()
  if (status !== LOOKUP_MISSING && ctl[CTL_HAS_EXPIRY] === 1) {
    const now = Date.now()
    if (ctl[CTL_EXPIRY] <= now) {
      if (longKey === null) {
        ctl[CTL_NOW] = now
        hot.expire()
      } else {
        binding.expireKey(handle.id, longKey, now)
      }
      return LOOKUP_MISSING
    }
  }
  return status
}

function readValue(view, key) {
  const status = lookup(view, key, true)
  if (status === LOOKUP_FOUND) {
    return JSON.parse(utf8Slice(scratch, VALUE_OFFSET, VALUE_OFFSET + ctl[CTL_VALUE_LEN]))
  }
  if (status === LOOKUP_FOUND_LARGE) return JSON.parse(utf8Slice(binding.takeLargeValue(), 0))
  return undefined // missing, expired, or a stored undefined
}

function* decodePage(page, prefixLength, state) {
  const count = page.readUInt32LE(1)
  let off = 5
  for (let i = 0; i < count; i++) {
    const keyLen = page.readUInt32LE(off)
    off += 4
    const fullKey = utf8Slice(page, off, off + keyLen)
    off += keyLen
    const kind = page[off]
    const valueLen = page.readUInt32LE(off + 1)
    off += 5
    // A stored undefined is absent for get/has, so entries() skips it too, as level-cache does.
    if (kind === 0) yield [fullKey.slice(prefixLength), JSON.parse(utf8Slice(page, off, off + valueLen))]
    off += valueLen
  }
  const cursorLen = page.readUInt32LE(off)
  state.after = cursorLen > 0 ? page.subarray(off + 4, off + 4 + cursorLen) : null
  state.done = page[0] === 1
}

function normaliseLimit(opts) {
  const limit = opts === undefined || opts === null ? undefined : opts.limit
  if (limit === undefined || limit === null || limit === Infinity || limit < 0) return Infinity
  if (typeof limit !== 'number' || Number.isNaN(limit)) {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', `entries() limit must be a number, got ${describe(limit)}`)
  }
  return Math.floor(limit)
}

/** The full-key bound of a range option, as [bytes, inclusive], or null. */
function rangeBound(view, opts, exclusiveName, inclusiveName) {
  const exclusive = opts[exclusiveName]
  const inclusive = opts[inclusiveName]
  if (exclusive !== undefined && inclusive !== undefined) {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', `entries() takes ${exclusiveName} or ${inclusiveName}, not both`)
  }
  const key = exclusive !== undefined ? exclusive : inclusive
  if (key === undefined) return null
  if (typeof key !== 'string') {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', `entries() ${exclusive !== undefined ? exclusiveName : inclusiveName} must be a string key, got ${describe(key)}`)
  }
  return [fullKeyBytes(view, key), exclusive === undefined]
}

async function* iterateEntries(view, opts) {
  const options = opts === undefined || opts === null ? {} : opts
  const limit = normaliseLimit(options)
  const lower = rangeBound(view, options, 'gt', 'gte')
  const upper = rangeBound(view, options, 'lt', 'lte')
  const reverse = options.reverse === true
  const handle = view.handle
  const state = { after: null, done: false }
  let yielded = 0
  let pageSize = FIRST_PAGE_ENTRIES
  while (yielded < limit) {
    if (handle.closed) throw closedError()
    const want = Math.min(pageSize, limit - yielded)
    const page = binding.entriesPage(
      handle.id,
      view.prefixBytes,
      lower === null ? null : lower[0],
      lower !== null && lower[1],
      upper === null ? null : upper[0],
      upper !== null && upper[1],
      reverse,
      state.after,
      Date.now(),
      want,
      MAX_PAGE_BYTES,
    )
    for (const entry of decodePage(page, view.prefix.length, state)) {
      yield entry
      yielded++
    }
    if (state.done) return
    pageSize = Math.min(pageSize * 4, MAX_PAGE_ENTRIES)
  }
}

// ---------------------------------------------------------------------------------------
// The Cache object

function makeView(handle, namespace) {
  const prefix = namespace === '' ? '' : namespace + NAMESPACE_SEPARATOR
  const view = { handle, namespace, prefix, prefixBytes: Buffer.from(prefix, 'utf8') }

  const write = (ops) => handle.submit(WRITE_BATCH, view, ops, 0)

  const cache = Object.freeze({
    get(key) {
      try {
        checkKey(key)
        if (handle.closed) throw closedError()
        return Promise.resolve(readValue(view, key))
      } catch (error) {
        return Promise.reject(error)
      }
    },

    has(key) {
      try {
        checkKey(key)
        if (handle.closed) throw closedError()
        return Promise.resolve(lookup(view, key, false) === LOOKUP_FOUND)
      } catch (error) {
        return Promise.reject(error)
      }
    },

    set(key, value, opts) {
      try {
        checkKey(key)
        if (handle.closed) throw closedError()
        const json = encodeValue(value)
        const ttlMs = (opts === undefined || opts === null ? undefined : opts.ttlMs) ?? handle.defaultTtlMs
        const expiry = expiryFor(ttlMs, Date.now())
        return write([{ kind: OP_PUT, key, json, expiry }])
      } catch (error) {
        return Promise.reject(error)
      }
    },

    del(key) {
      try {
        checkKey(key)
        if (handle.closed) throw closedError()
        return write([{ kind: OP_DEL, key, json: undefined, expiry: undefined }])
      } catch (error) {
        return Promise.reject(error)
      }
    },

    batch(ops) {
      try {
        if (!Array.isArray(ops)) {
          throw codedError(TypeError, 'ERR_INVALID_BATCH', `batch() takes an array of operations, got ${describe(ops)}`)
        }
        if (handle.closed) throw closedError()
        // Encode every value before anything is queued: one bad value writes nothing.
        const now = Date.now()
        const encoded = ops.map((op) => {
          if (op === null || typeof op !== 'object') {
            throw codedError(TypeError, 'ERR_INVALID_BATCH', `batch operations must be objects, got ${describe(op)}`)
          }
          checkKey(op.key)
          const prefix = op.view === undefined ? undefined : viewOfBatchOp(op.view, handle).prefixBytes
          if (op.type === 'put') {
            const ttlMs = op.ttlMs ?? handle.defaultTtlMs
            return { kind: OP_PUT, key: op.key, json: encodeValue(op.value), expiry: expiryFor(ttlMs, now), prefix }
          }
          if (op.type === 'del') return { kind: OP_DEL, key: op.key, json: undefined, expiry: undefined, prefix }
          throw codedError(TypeError, 'ERR_INVALID_BATCH', `batch operation type must be "put" or "del", got ${describe(op.type)}`)
        })
        if (encoded.length === 0) return Promise.resolve()
        return write(encoded)
      } catch (error) {
        return Promise.reject(error)
      }
    },

    entries(opts) {
      return iterateEntries(view, opts)
    },

    sweepExpired() {
      try {
        if (handle.closed) throw closedError()
        return handle.submit(WRITE_SWEEP, view, null, Date.now())
      } catch (error) {
        return Promise.reject(error)
      }
    },

    withNamespace(ns) {
      if (typeof ns !== 'string') {
        throw codedError(TypeError, 'ERR_INVALID_NAMESPACE', `namespaces must be strings, got ${describe(ns)}`)
      }
      if (ns === '') return makeView(handle, namespace)
      return makeView(handle, namespace === '' ? ns : `${namespace}/${ns}`)
    },

    close() {
      return handle.close()
    },
  })
  viewsOfCaches.set(cache, view)
  return cache
}

// Extras for tools (the CLI), kept off the Cache object so that it stays level-cache's.
const viewsOfCaches = new WeakMap()

/** The view a batch operation names with `view:`; it must share the batch's open handle. */
function viewOfBatchOp(cache, handle) {
  const view = viewsOfCaches.get(cache)
  if (view === undefined || view.handle !== handle) {
    throw codedError(
      TypeError,
      'ERR_INVALID_BATCH',
      'a batch operation may name a view (view: cache.withNamespace(...)) of the same open cache only',
    )
  }
  return view
}

function openHandleOf(cache) {
  const view = viewsOfCaches.get(cache)
  if (view === undefined) {
    throw codedError(TypeError, 'ERR_INVALID_ARGUMENT', 'expected a cache opened by openLmdbCache')
  }
  if (view.handle.closed) throw closedError()
  return view.handle
}

/**
 * Figures of the cache's directory: entries (live and expired), map and file sizes, reader
 * slots. Counts cover the whole database, whatever the view's namespace.
 */
async function cacheStats(cache) {
  const s = binding.stats(openHandleOf(cache).id)
  return {
    entries: s.entries,
    liveEntries: s.liveEntries,
    expiredEntries: s.expiredEntries,
    mapSize: s.mapSize,
    maxMapSize: s.maxMapSize,
    usedSize: s.usedSize,
    fileSize: s.fileSize,
    readersInUse: s.readersInUse,
    maxReaders: s.maxReaders,
  }
}

/** Writes a compacted copy of the cache's data file (free pages dropped) to `destFile`. */
async function compactCacheTo(cache, destFile) {
  const handle = openHandleOf(cache)
  if (typeof destFile !== 'string' || destFile === '') {
    throw codedError(TypeError, 'ERR_INVALID_ARGUMENT', 'compactCacheTo() needs a destination file path')
  }
  binding.compactCopy(handle.id, path.resolve(destFile))
}

function optionalNumber(opts, name, fallback) {
  const value = opts[name]
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !(value >= 0)) {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', `${name} must be a non-negative number, got ${describe(value)}`)
  }
  return value
}

async function openLmdbCache(opts) {
  if (opts === null || typeof opts !== 'object') {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', 'openLmdbCache() takes an options object with a path')
  }
  if (typeof opts.path !== 'string' || opts.path === '') {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', `options.path must be a non-empty string, got ${describe(opts.path)}`)
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
  const maxMapSize = optionalNumber(opts, 'maxMapSize', Math.max(DEFAULT_MAX_MAP_SIZE, mapSize))
  const maxReaders = optionalNumber(opts, 'maxReaders', DEFAULT_MAX_READERS)
  const id = binding.open(path.resolve(opts.path), mapSize, maxMapSize, maxReaders, DURABILITY_CODES[durability])
  return makeView(new HandleState(id, opts.defaultTtlMs), namespace)
}

module.exports = {
  openLmdbCache,
  openLevelCache: openLmdbCache,
  cacheStats,
  compactCacheTo,
}
