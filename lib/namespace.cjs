'use strict'
// Owns how a namespace and a key make one stored key: `namespace + U+241F + key` (level-cache's
// layout). Loads no native code, so the CLI and migrate can use it before the binary.

/** Between a namespace and a key in the stored key. */
const NAMESPACE_SEPARATOR = '\u241F'

module.exports = { NAMESPACE_SEPARATOR }
