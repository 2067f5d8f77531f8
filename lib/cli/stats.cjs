'use strict'
// Owns the figures of `lmdb-cache stats`: the cache's own (cacheStats) and its live entries
// per namespace, read without changing anything.

const { NAMESPACE_SEPARATOR } = require('../namespace.cjs')
const { lmdbCache, withCache } = require('./dirs.cjs')

/**
 * `{ stats, namespaces }` of the cache in `dir`: namespaces maps each namespace ('' for keys
 * without one, first) to its live entries, in key order. Read-only: expired entries are
 * counted, not deleted (an inspecting handle queues no lazy deletes). Opening the cache
 * removes what killed compactions left behind.
 */
async function cacheFigures(dir) {
  // Loaded here, not at the top: the tool's --help works without the native binary.
  const { cacheStats } = lmdbCache()
  return withCache(
    dir,
    async (cache) => {
      const stats = await cacheStats(cache)
      const counts = new Map()
      for await (const [key] of cache.entries()) {
        const at = key.indexOf(NAMESPACE_SEPARATOR)
        const ns = at === -1 ? '' : key.slice(0, at)
        counts.set(ns, (counts.get(ns) ?? 0) + 1)
      }
      const sorted = [...counts].sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : Buffer.compare(Buffer.from(a), Buffer.from(b))))
      return { stats, namespaces: new Map(sorted) }
    },
    { inspect: true },
  )
}

module.exports = { cacheFigures }
