'use strict'
// Owns the Cache object (level-cache's API) and its namespace views: the handle state one
// openLmdbCache() call shares with its views (in-flight writes, close), the methods of a
// view, batch-op validation, and the map from a Cache to its view that the tools use.

const { binding, L, textOf } = require('./native.cjs')
const { createValueDecoders } = require('./codec.cjs')
const { codedError, describe, checkOpen, checkKey, promised } = require('./errors.cjs')
const { encodeValue, expiryFor, submit, handleOpened, closeHandle } = require('./write-queue.cjs')
const { LOOKUP_FOUND, lookup, readValue } = require('./reads.cjs')
const { EntriesIterator, countEntries } = require('./entries.cjs')
const { deleteReporting, clearView, keysOf, getMany } = require('./cache-extras.cjs')
const { getOrSet } = require('./get-or-set.cjs')

const { NAMESPACE_SEPARATOR } = require('./namespace.cjs')
const { REQUEST_BATCH, REQUEST_SWEEP, OP_PUT, OP_DEL } = L

/** One per openLmdbCache() call, shared by its namespace views. */
class HandleState {
  constructor(id, defaultTtlMs, dir) {
    this.id = id
    this.dir = dir
    this.defaultTtlMs = defaultTtlMs
    this.closed = false
    this.closing = null
    this.inflight = 0
    this.onIdle = null
    // Per store: the shapes of one directory mean nothing in another.
    this.decoders = createValueDecoders(L, textOf, (from) => JSON.parse(binding.shapesFrom(id, from)))
    handleOpened()
  }

  writeSettled() {
    this.inflight--
    if (this.inflight === 0 && this.onIdle !== null) this.onIdle()
  }

  close() {
    if (this.closing === null) {
      this.closed = true
      this.closing = (async () => {
        if (this.inflight > 0) {
          await new Promise((resolve) => {
            this.onIdle = resolve
          })
        }
        await closeHandle(this)
      })()
    }
    return this.closing
  }
}

// The write methods, module-level so that promised() makes no closure per call.

function setValue(view, key, value, opts) {
  checkKey(key)
  checkOpen(view.handle)
  // ttlMs is read first: a getter's code runs before the value's encoded bytes exist.
  const ttlMs = (opts === undefined || opts === null ? undefined : opts.ttlMs) ?? view.handle.defaultTtlMs
  // Transient: nothing encodes another value before submit() copies these bytes.
  const encoded = encodeValue(value, true)
  const expiry = expiryFor(ttlMs, Date.now())
  return submit(REQUEST_BATCH, view, [{ kind: OP_PUT, key, value: encoded, expiry }], 0)
}

function delKey(view, key) {
  checkKey(key)
  checkOpen(view.handle)
  return submit(REQUEST_BATCH, view, [{ kind: OP_DEL, key, value: undefined, expiry: undefined }], 0)
}

function batchOps(view, ops) {
  if (!Array.isArray(ops)) {
    throw codedError(TypeError, 'ERR_INVALID_BATCH', `batch() takes an array of operations, got ${describe(ops)}`)
  }
  const handle = view.handle
  checkOpen(handle)
  // Encode every value before anything is queued: one bad value writes nothing.
  const now = Date.now()
  // A loop over indices, not ops.map: map skips the holes of a sparse array.
  const encoded = new Array(ops.length)
  for (let i = 0; i < ops.length; i++) encoded[i] = encodeBatchOp(ops[i], handle, now)
  if (encoded.length === 0) return Promise.resolve()
  return submit(REQUEST_BATCH, view, encoded, 0)
}

function sweepView(view) {
  checkOpen(view.handle)
  return submit(REQUEST_SWEEP, view, null, Date.now())
}

/** Validates and encodes one operation of batch(); throws a coded error for a bad one. */
function encodeBatchOp(op, handle, now) {
  if (op === null || typeof op !== 'object') {
    throw codedError(TypeError, 'ERR_INVALID_BATCH', `batch operations must be objects, got ${describe(op)}`)
  }
  checkKey(op.key)
  const prefix = op.view === undefined ? undefined : viewOfBatchOp(op.view, handle).prefixBytes
  if (op.type === 'put') {
    const ttlMs = op.ttlMs ?? handle.defaultTtlMs
    return { kind: OP_PUT, key: op.key, value: encodeValue(op.value), expiry: expiryFor(ttlMs, now), prefix }
  }
  if (op.type === 'del') return { kind: OP_DEL, key: op.key, value: undefined, expiry: undefined, prefix }
  throw codedError(TypeError, 'ERR_INVALID_BATCH', `batch operation type must be "put" or "del", got ${describe(op.type)}`)
}

function makeView(handle, namespace) {
  const prefix = namespace === '' ? '' : namespace + NAMESPACE_SEPARATOR
  const view = { handle, namespace, prefix, prefixBytes: Buffer.from(prefix, 'utf8') }

  const cache = Object.freeze({
    // get and has are the hot path: their try/catch stays inline (no call through promised),
    // so each stays one monomorphic function around the lookup.
    get(key) {
      try {
        checkKey(key)
        checkOpen(handle)
        return Promise.resolve(readValue(view, key))
      } catch (error) {
        return Promise.reject(error)
      }
    },

    has(key) {
      try {
        checkKey(key)
        checkOpen(handle)
        return Promise.resolve(lookup(view, key, false) === LOOKUP_FOUND)
      } catch (error) {
        return Promise.reject(error)
      }
    },

    set(key, value, opts) {
      return promised(setValue, view, key, value, opts)
    },

    del(key) {
      return promised(delKey, view, key)
    },

    batch(ops) {
      return promised(batchOps, view, ops)
    },

    entries(opts) {
      return new EntriesIterator(view, opts)
    },

    count(opts) {
      return countEntries(view, opts)
    },

    sweepExpired() {
      return promised(sweepView, view)
    },

    // Additions (not level-cache's): see lib/cache-extras.cjs and lib/get-or-set.cjs.
    delete(key) {
      return promised(deleteReporting, view, key)
    },

    clear() {
      return promised(clearView, view)
    },

    keys(opts) {
      return keysOf(view, opts)
    },

    getMany(keys) {
      try {
        return Promise.resolve(getMany(view, keys))
      } catch (error) {
        return Promise.reject(error)
      }
    },

    getOrSet(key, compute, opts) {
      return promised(getOrSet, view, key, compute, opts)
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
    throw codedError(TypeError, 'ERR_INVALID_BATCH', 'a batch operation may name a view (view: cache.withNamespace(...)) of the same open cache only')
  }
  return view
}

/** The view of a cache opened by openLmdbCache; throws unless it is one and still open. */
function openViewOf(cache) {
  const view = viewsOfCaches.get(cache)
  if (view === undefined) {
    throw codedError(TypeError, 'ERR_INVALID_ARGUMENT', 'expected a cache opened by openLmdbCache')
  }
  checkOpen(view.handle)
  return view
}

module.exports = { NAMESPACE_SEPARATOR, HandleState, makeView, openViewOf }
