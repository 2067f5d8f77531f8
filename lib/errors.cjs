'use strict'
// Errors with a stable string `code`, as every error of this package carries.

/** A `Kind` (Error, TypeError, RangeError) with `code`, and `cause` where there is one. */
function codedError(Kind, code, message, cause) {
  const error = new Kind(message, cause === undefined ? undefined : { cause })
  error.code = code
  return error
}

module.exports = { codedError }
