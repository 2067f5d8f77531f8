// The child process of `lmdb-cache verify <dir>`: first walks every B-tree page with file
// reads (src/page_walk.rs), writing a `page <number> <JSON what>` line to stderr for each
// damaged one; then walks every record through LMDB (read-only, see src/verify.rs), writing
// `progress <records> <JSON key>` lines as it goes, and the result as one JSON line to stdout.
// It runs in a child so that a fault on a damaged page (SIGBUS, SIGSEGV) kills only it: the
// CLI reports the damaged pages found first, the signal and the last key the walk got past.
'use strict'
const fs = require('node:fs')

const dir = process.argv[2]
let result
try {
  const binding = require('../binding.cjs')
  let pages = null
  try {
    pages = binding.verifyPages(dir)
    for (const [page, detail] of pages.damaged) fs.writeSync(2, `page\t${page}\t${JSON.stringify(detail)}\n`)
  } catch {
    // Meta pages that cannot be read: the record walk's open check names what is wrong.
  }
  const report = binding.verifyWalk(dir, (records, key) => {
    fs.writeSync(2, `progress\t${records}\t${JSON.stringify(key)}\n`)
  })
  result = { ok: true, report, pages }
} catch (error) {
  result = { ok: false, code: error?.code, message: String(error?.message ?? error) }
}
fs.writeSync(1, `${JSON.stringify(result)}\n`)
