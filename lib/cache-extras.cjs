'use strict'
// Owns the view methods beyond level-cache's (all optional additions): delete() that reports
// whether the key held a live entry, clear() of a view in bounded transactions, keys() (the
// entries() paging without values), and getMany() in one read transaction.

const { binding, scratch, ctl, L } = require('./native.cjs')
const { codedError, describe, checkOpen, checkKey } = require('./errors.cjs')
const { submit } = require('./write-queue.cjs')
const { EntriesIterator } = require('./entries.cjs')

const { REQUEST_BATCH, REQUEST_CLEAR, OP_DEL_LIVE, CLEAR_CHUNK } = L
const U32_BYTES = L.U32_LEN

/** Deletes the key in one write transaction; resolves true if it held a live entry. */
async function deleteReporting(view, key) {
  checkKey(key)
  checkOpen(view.handle)
  const counted = await submit(REQUEST_BATCH, view, [{ kind: OP_DEL_LIVE, key, value: undefined, expiry: undefined }], Date.now(), true)
  return counted === 1
}

/**
 * Deletes every entry of the view's namespace (the root view: every entry), CLEAR_CHUNK per
 * write transaction so that other writers wait at most one chunk; resolves with the count.
 * Not atomic: a reader may see part of it done, and writes made meanwhile may survive it.
 */
async function clearView(view) {
  let total = 0
  for (;;) {
    checkOpen(view.handle)
    const deleted = await submit(REQUEST_CLEAR, view, null, Date.now())
    total += deleted
    if (deleted < CLEAR_CHUNK) return total
  }
}

/** keys(): entries() without the values (neither copied nor decoded). */
function keysOf(view, opts) {
  return new EntriesIterator(view, opts, true)
}

/** The values of `keys` from one snapshot, undefined where a key has none; one native call. */
function getMany(view, keys) {
  if (!Array.isArray(keys)) {
    throw codedError(TypeError, 'ERR_INVALID_KEY', `getMany() takes an array of keys, got ${describe(keys)}`)
  }
  checkOpen(view.handle)
  const prefix = view.prefixBytes
  const encoded = new Array(keys.length)
  let bytes = U32_BYTES
  for (let i = 0; i < keys.length; i++) {
    checkKey(keys[i])
    encoded[i] = Buffer.from(keys[i], 'utf8')
    bytes += U32_BYTES + prefix.length + encoded[i].length
  }
  const request = Buffer.allocUnsafe(bytes)
  let at = request.writeUInt32LE(keys.length, 0)
  for (const key of encoded) {
    at = request.writeUInt32LE(prefix.length + key.length, at)
    at += prefix.copy(request, at)
    at += key.copy(request, at)
  }
  const answer = binding.getMany(view.handle.id, request, Date.now())
  const { decodeMany } = view.handle.decoders
  // null: the answer was written into the scratch buffer's value area.
  if (answer === null || answer === undefined) return decodeMany(scratch, L.VALUE_OFFSET, L.VALUE_OFFSET + ctl[L.CTL_VALUE_LEN])
  return decodeMany(answer, 0, answer.length)
}

module.exports = { deleteReporting, clearView, keysOf, getMany }
