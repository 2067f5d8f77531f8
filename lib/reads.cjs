'use strict'
// Owns reads: a get or has is one synchronous native call (one LMDB read transaction) that
// passes nothing through N-API arguments: the key bytes, the handle id and the results travel
// through the scratch buffer shared with native code (see src/binding.rs). Keep these
// functions monomorphic and free of closures: they are the hot path.

const { binding, scratch, ctl, L, hot, utf8Write } = require('./native.cjs')

const { KEY_OFFSET, KEY_CAPACITY, VALUE_OFFSET, CTL_HANDLE, CTL_KEY_LEN, CTL_WANT_VALUE, CTL_EXPIRY, CTL_HAS_EXPIRY, CTL_NOW } = L
const { CTL_VALUE_LEN, CTL_VALUE_ASCII, CTL_VALUE_KIND, LOOKUP_MISSING, LOOKUP_FOUND, LOOKUP_FOUND_LARGE, LOOKUP_FAILED } = L

const SHORT_KEY = 64

/** Writes the view's full key into the scratch buffer; -1 when it may not fit. */
function writeScratchKey(view, key) {
  const prefix = view.prefixBytes
  if (key.length * 3 > KEY_CAPACITY - prefix.length) return -1
  if (prefix.length > 0) scratch.set(prefix, KEY_OFFSET)
  const start = KEY_OFFSET + prefix.length
  // Short ASCII keys (the common case) are copied by a JS loop: a call into the UTF-8
  // encoder costs more than the copy. Anything else goes through the encoder.
  if (key.length <= SHORT_KEY) {
    let i = 0
    for (; i < key.length; i++) {
      const c = key.charCodeAt(i)
      if (c > 0x7f) break
      scratch[start + i] = c
    }
    if (i === key.length) return prefix.length + i
  }
  return prefix.length + utf8Write(scratch, key, start)
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

/** The value a lookup with wantValue found, or undefined (missing, expired, stored undefined). */
function foundValue(handle, status) {
  if (status === LOOKUP_FOUND) {
    const end = VALUE_OFFSET + ctl[CTL_VALUE_LEN]
    return handle.decoders.decodeValue(scratch, VALUE_OFFSET, end, ctl[CTL_VALUE_KIND], ctl[CTL_VALUE_ASCII] === 1)
  }
  if (status === LOOKUP_FOUND_LARGE) {
    const large = binding.takeLargeValue()
    return handle.decoders.decodeValue(large, 0, large.length, ctl[CTL_VALUE_KIND], ctl[CTL_VALUE_ASCII] === 1)
  }
  return undefined
}

function readValue(view, key) {
  return foundValue(view.handle, lookup(view, key, true))
}

/** The absolute expiry (epoch ms) of the entry the last lookup found, or null. */
function foundExpiry() {
  return ctl[CTL_HAS_EXPIRY] === 1 ? ctl[CTL_EXPIRY] : null
}

module.exports = { LOOKUP_FOUND, LOOKUP_FOUND_LARGE, fullKeyBytes, lookup, foundValue, foundExpiry, readValue }
