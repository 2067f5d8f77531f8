'use strict'
// CommonJS entry of @promethean/lmdb-cache/keyv: the Keyv store (lib/keyv.cjs).
const { KeyvLmdb } = require('./lib/keyv.cjs')

module.exports = { KeyvLmdb, default: KeyvLmdb }
