'use strict'
// The public API of @promethean/lmdb-cache: level-cache's Cache, over the native core.
// This entry only gathers the API; each concern lives in lib/:
//
//   lib/native.cjs       loading the native binary; the scratch buffer and protocol layout
//   lib/write-queue.cjs  encoding writes, one flush per event-loop turn, exit drain
//   lib/reads.cjs        get and has through the scratch buffer (the hot path)
//   lib/entries.cjs      entries() paging, key bounds, count()
//   lib/cache.cjs        the Cache object and its namespace views
//   lib/open.cjs         open options, file modes, the level-cache directory warning
//   lib/tools.cjs        cacheStats, compactCacheTo, getEntry, putEntries, migrateFromLevel
//   lib/errors.cjs       coded errors and the shared argument checks
//
// docs/architecture.md shows how a get and a set flow through them.

const { openLmdbCache, inspectLmdbCache } = require('./lib/open.cjs')
const { cacheStats, compactCacheTo, getEntry, putEntries, migrateFromLevel } = require('./lib/tools.cjs')

module.exports = {
  openLmdbCache,
  openLevelCache: openLmdbCache,
  inspectLmdbCache,
  cacheStats,
  compactCacheTo,
  getEntry,
  putEntries,
  migrateFromLevel,
}
