'use strict'
// Owns the write queue: encoding values and write ops into binary requests (the layout is the
// protocol's, src/protocol.rs, read from the `layout` of init()), collecting the requests of
// one event-loop turn into one flush to the store's writer thread, the pending tickets whose
// promises settle after the commit, and the drain that commits pending writes at process exit.

const { constants: BUFFER_LIMITS } = require('node:buffer')
const { binding, setCompletionHandler, completionPort, L, hot, utf8Write } = require('./native.cjs')
const { encodeMsgpack } = require('./msgpack-encode.cjs')
const { codedError, describe } = require('./errors.cjs')

const { OP_PUT, OP_FLAG_EXPIRY, OP_FLAG_UNDEFINED, OP_FLAG_MSGPACK, OP_FIXED_LEN, U32_LEN } = L

// A value is read back whole into JS (in entries(), a page with its key around it), so a
// value of more bytes than the longest string V8 makes could be stored but perhaps never read.
// The margin leaves room for the key of an entries() page.
const MAX_VALUE_BYTES = BUFFER_LIMITS.MAX_STRING_LENGTH - 1024 * 1024

/**
 * The stored bytes of a value: `{ bytes, msgpack }`, MessagePack where it can carry the value
 * with JSON's semantics, else JSON.stringify's UTF-8 text; undefined where JSON leaves the
 * value out (undefined, functions, symbols). With `transient`, `bytes` may be the encoder's
 * own buffer: valid only until the next encodeValue, so only for a write submitted at once.
 */
function encodeValue(value, transient = false) {
  let bytes
  let msgpack = true
  try {
    bytes = encodeMsgpack(value, transient)
    if (bytes === null) {
      msgpack = false
      const json = JSON.stringify(value)
      bytes = json === undefined ? undefined : Buffer.from(json, 'utf8')
    }
  } catch (cause) {
    throw codedError(TypeError, 'ERR_INVALID_VALUE', `the value cannot be stored as JSON: ${cause.message}`, cause)
  }
  if (bytes === undefined) return undefined
  if (bytes.length > MAX_VALUE_BYTES) {
    throw codedError(
      RangeError,
      'ERR_INVALID_VALUE',
      `the value takes ${bytes.length} bytes, more than the ${MAX_VALUE_BYTES} a read can turn back into a value`,
    )
  }
  return { bytes, msgpack }
}

function expiryFor(ttlMs, now) {
  if (ttlMs === undefined || ttlMs === null) return undefined
  if (typeof ttlMs !== 'number' || Number.isNaN(ttlMs)) {
    throw codedError(TypeError, 'ERR_INVALID_TTL', `ttlMs must be a number of milliseconds, got ${describe(ttlMs)}`)
  }
  return now + ttlMs
}

// ---------------------------------------------------------------------------------------
// Requests: every write is one binary request; the requests made during one turn of the
// event loop reach native code in one call, so a burst of writes costs one N-API call and
// lands in one commit.

const pending = new Map() // ticket -> { resolve, reject, handle, counted }
let nextTicket = 1
// The kind of a pending close (not a request kind: a close is no write).
const CLOSE = -1

function takeTicket() {
  const ticket = nextTicket
  nextTicket = nextTicket >= 0x7fffffff ? 1 : nextTicket + 1
  return ticket
}

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
    if (error === undefined) waiter.resolve(waiter.counted ? values[i] : undefined)
    else waiter.reject(error)
    if (waiter.kind === CLOSE) openHandles--
    else waiter.handle.writeSettled()
  }
  if (pending.size === 0) writerIdled()
}

// Caches of this module copy that are open or closing. While there are any, or writes are
// pending, completions need this copy's port attached; after that it is detached, so that
// nothing native keeps a discarded copy (a test runner's) alive or reports an open handle.
let openHandles = 0

/** A cache of this module copy opened: completions must reach it. */
function handleOpened() {
  if (openHandles++ === 0 && hot.attachPort() !== 1) {
    openHandles--
    throw codedError(Error, 'ERR_INTERNAL', 'the completion function of this thread could not be created')
  }
}
setCompletionHandler(onWritesDone)

// A flush: [u32 request count][request]...; each request starts with a header.
const { FLUSH_HEADER_LEN, REQUEST_HEADER_LEN } = L
// A burst of writes larger than this is handed to the writer thread in parts, as each part
// fills, rather than all at the end of the turn: the writer then commits while JS is still
// encoding the rest (1,000 sets of 10 KB values: settled ~40% sooner, measured). Smaller
// bursts still go in one call and one commit.
const EARLY_FLUSH_BYTES = 256 * 1024
let flushBuffer = Buffer.allocUnsafeSlow(256 * 1024)
let flushLength = FLUSH_HEADER_LEN
let flushTickets = []
let flushScheduled = false

// Lengths in a request are u32, and one Buffer holds the requests of a turn.
const MAX_REQUEST_BYTES = Math.min(0xffffffff, BUFFER_LIMITS.MAX_LENGTH) - 1024 * 1024

function reserveFlush(bytes) {
  if (flushLength + bytes > MAX_REQUEST_BYTES) flushWrites() // send what is there first
  const needed = flushLength + bytes
  if (flushBuffer.length < needed) {
    const bigger = Buffer.allocUnsafeSlow(Math.min(Math.max(needed, flushBuffer.length * 2), MAX_REQUEST_BYTES + 1024 * 1024))
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
  flushLength = FLUSH_HEADER_LEN
  try {
    binding.enqueueRequests(bytes, completionPort)
  } catch (error) {
    // Only an internal fault gets here; fail the requests rather than leave them pending.
    const failures = []
    for (const ticket of tickets) failures.push(ticket, error)
    onWritesDone(Uint32Array.from(tickets), new Float64Array(tickets.length), failures)
  }
  if (flushBuffer.length > 1024 * 1024) flushBuffer = Buffer.allocUnsafeSlow(256 * 1024)
}

/**
 * Queues one request of `kind` (L.REQUEST_BATCH with `ops`; L.REQUEST_SWEEP or
 * L.REQUEST_CLEAR with null) for the view's handle; the promise settles after its commit, with
 * the request's count for a sweep, a clear, or with `counted` (the ops of a batch that took
 * effect: OP_DEL_LIVE, OP_LEASE_TAKE), else undefined. `now` judges what is live.
 */
function submit(kind, view, ops, now, counted = false) {
  const handle = view.handle
  // A clear's payload is the view's prefix (every key of its namespace starts with it).
  const prefix = kind === L.REQUEST_CLEAR ? view.prefixBytes : null
  let bytes = REQUEST_HEADER_LEN + (ops === null ? (prefix === null ? 0 : prefix.length) : opsSize(view, ops, false))
  // Past what one request may hold, count exactly: the bound may overstate threefold.
  if (bytes > MAX_REQUEST_BYTES) bytes = REQUEST_HEADER_LEN + opsSize(view, ops, true)
  if (bytes > MAX_REQUEST_BYTES) {
    throw codedError(RangeError, 'ERR_INVALID_VALUE', `a write of ${bytes} bytes is larger than the ${MAX_REQUEST_BYTES} one request may hold`)
  }
  const ticket = takeTicket()
  const buf = reserveFlush(bytes)
  const start = flushLength
  buf.writeUInt32LE(handle.id, start + L.REQUEST_HANDLE_AT)
  buf.writeUInt32LE(ticket, start + L.REQUEST_TICKET_AT)
  buf[start + L.REQUEST_KIND_AT] = kind
  buf.writeDoubleLE(now, start + L.REQUEST_NOW_AT)
  const payloadStart = start + REQUEST_HEADER_LEN
  let end = payloadStart
  if (ops !== null) end = writeOps(buf, payloadStart, view, ops)
  else if (prefix !== null) {
    buf.set(prefix, payloadStart)
    end += prefix.length
  }
  buf.writeUInt32LE(end - payloadStart, start + L.REQUEST_PAYLOAD_LEN_AT)
  flushLength = end
  flushTickets.push(ticket)
  const writerIdle = pending.size === 0
  if (writerIdle) writerBusied()
  handle.inflight++
  counted = counted || kind !== L.REQUEST_BATCH
  const settled = new Promise((resolve, reject) => pending.set(ticket, { resolve, reject, handle, counted }))
  if (writerIdle || flushLength >= EARLY_FLUSH_BYTES) {
    flushWrites()
  } else if (!flushScheduled) {
    flushScheduled = true
    queueMicrotask(flushWrites)
  }
  return settled
}

/**
 * Closes the handle (its writes all settled): resolves at once when other handles on its
 * directory remain in this process; after the last one, once the writer thread has committed
 * what was queued and closed LMDB (it posts the completion; the JS thread never waits for
 * another process's write transaction). Meanwhile the event loop is held, as for a write.
 */
function closeHandle(handle) {
  const ticket = takeTicket()
  const settled = new Promise((resolve, reject) => pending.set(ticket, { resolve, reject, handle, kind: CLOSE }))
  const writerIdle = pending.size === 1
  if (writerIdle) writerBusied()
  let outcome // true: closed now; false: the writer thread completes the ticket; or an error
  try {
    outcome = binding.close(handle.id, ticket, completionPort)
  } catch (error) {
    outcome = error
  }
  if (outcome !== false) {
    const waiter = pending.get(ticket)
    pending.delete(ticket)
    openHandles--
    if (outcome === true) waiter.resolve()
    else waiter.reject(outcome)
    if (pending.size === 0) writerIdled()
  }
  return settled
}

// Writes pending when the process exits. The event loop is kept alive while writes are pending
// (holdLoop), so the end of a script waits for them; process.exit() and an uncaught exception
// do not wait for the loop. Then the 'exit' hook below hands what JS still holds to the
// writer thread and blocks until everything queued in this process is committed, as
// level-cache's writes survive such an exit. The hook is attached only while writes are
// pending, so it costs nothing to an idle cache and keeps no module copy alive (test runners
// load the module afresh per file). In a worker thread 'exit' is the worker's exit: the same
// hook commits that worker's writes before it ends; when the main thread exits the process,
// writes a worker had already handed over are committed too (the drain covers every store of
// the process), but those still in that worker's JS turn are lost.
const EXIT_DRAIN_TIMEOUT_MS = 10_000

function writerBusied() {
  hot.holdLoop()
  process.on('exit', commitBeforeExit)
}

function writerIdled() {
  hot.releaseLoop()
  process.off('exit', commitBeforeExit)
  if (openHandles === 0) hot.detachPort()
}

function commitBeforeExit() {
  process.off('exit', commitBeforeExit)
  try {
    flushWrites()
    binding.drainSync(EXIT_DRAIN_TIMEOUT_MS)
  } catch {
    // Exiting: nothing is left to report a failure to.
  }
}

/**
 * An upper bound of the bytes writeOps encodes for `ops` (the op count included). Each op is
 * counted at OP_FIXED_LEN, as if it had an expiry and a value length, though a del writes
 * 6 fixed bytes (14 with an expiry) and a put 10 (18); a key is counted at 3 UTF-8 bytes per
 * UTF-16 unit, or with `exact` at its UTF-8 length (that walks every key: for huge writes only).
 */
function opsSize(view, ops, exact) {
  let bytes = L.BATCH_HEADER_LEN
  for (const op of ops) {
    const prefix = op.prefix === undefined ? view.prefixBytes : op.prefix
    bytes += OP_FIXED_LEN + prefix.length + textSize(op.key, exact) + (op.value === undefined ? 0 : op.value.bytes.length)
  }
  return bytes
}

const textSize = (text, exact) => (exact ? Buffer.byteLength(text) : text.length * 3)

/** Encodes ops ({kind, key, value, expiry}) for the view into buf at off; returns the end. */
function writeOps(buf, off, view, ops) {
  off = buf.writeUInt32LE(ops.length, off)
  for (const op of ops) {
    const prefix = op.prefix === undefined ? view.prefixBytes : op.prefix
    let flags = 0
    if (op.expiry !== undefined) flags |= OP_FLAG_EXPIRY
    if (op.kind === OP_PUT && op.value === undefined) flags |= OP_FLAG_UNDEFINED
    if (op.kind === OP_PUT && op.value !== undefined && op.value.msgpack) flags |= OP_FLAG_MSGPACK
    buf[off++] = op.kind
    buf[off++] = flags
    if (op.expiry !== undefined) off = buf.writeDoubleLE(op.expiry, off)
    const keyLenAt = off
    off += U32_LEN
    if (prefix.length > 0) buf.set(prefix, off)
    const keyLen = prefix.length + utf8Write(buf, op.key, off + prefix.length)
    buf.writeUInt32LE(keyLen, keyLenAt)
    off += keyLen
    // A put's value, or a lease op's owner token.
    if (op.value !== undefined) {
      const bytes = op.value.bytes
      off = buf.writeUInt32LE(bytes.length, off)
      buf.set(bytes, off)
      off += bytes.length
    }
  }
  return off
}

module.exports = { encodeValue, expiryFor, submit, handleOpened, closeHandle }
