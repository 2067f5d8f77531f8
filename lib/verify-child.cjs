// The child process of `lmdb-cache verify <dir>`: walks every record natively (read-only, see
// src/verify.rs), writing `progress <records> <JSON key>` lines to stderr as it goes and the
// result as one JSON line to stdout. It runs in a child so that a fault on a damaged page
// (SIGBUS, SIGSEGV) kills only it: the CLI reports the signal and the last key it got past.
'use strict'
const fs = require('node:fs')

const dir = process.argv[2]
let result
try {
  const binding = require('../binding.cjs')
  const report = binding.verifyWalk(dir, (records, key) => {
    fs.writeSync(2, `progress\t${records}\t${JSON.stringify(key)}\n`)
  })
  result = { ok: true, report }
} catch (error) {
  result = { ok: false, code: error?.code, message: String(error?.message ?? error) }
}
fs.writeSync(1, `${JSON.stringify(result)}\n`)
