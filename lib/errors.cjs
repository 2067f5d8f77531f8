'use strict'
// Owns errors: every error of this package carries a stable string `code`; the argument
// checks shared by the API (keys, open handles) and the one way a method that returns a
// promise reports a synchronous failure (a rejected promise, never a throw).

/** A `Kind` (Error, TypeError, RangeError) with `code`, and `cause` where there is one. */
function codedError(Kind, code, message, cause) {
  const error = new Kind(message, cause === undefined ? undefined : { cause })
  error.code = code
  return error
}

/** A short description of a bad argument for an error message. */
function describe(value) {
  if (value === null) return 'null'
  if (typeof value === 'symbol') return 'a symbol'
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`
}

function closedError() {
  return codedError(Error, 'ERR_CACHE_CLOSED', 'the cache is closed')
}

/** Throws ERR_CACHE_CLOSED once the handle (shared by a cache and its views) is closed. */
function checkOpen(handle) {
  if (handle.closed) throw closedError()
}

function checkKey(key) {
  if (typeof key !== 'string') {
    throw codedError(TypeError, 'ERR_INVALID_KEY', `cache keys must be strings, got ${describe(key)}`)
  }
}

/**
 * Runs `fn(a, b, c, d)` and returns its promise, or a rejected promise if it throws: the API's
 * methods report bad arguments and a closed cache by rejecting, as level-cache's do. `fn` is
 * a module-level function, so no closure is made per call.
 */
function promised(fn, a, b, c, d) {
  try {
    return fn(a, b, c, d)
  } catch (error) {
    return Promise.reject(error)
  }
}

module.exports = { codedError, describe, closedError, checkOpen, checkKey, promised }
