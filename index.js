// ESM entry of @promethean/lmdb-cache. The implementation lives in index.cjs so that ESM and
// CommonJS users share one module instance (and one native thread state) per thread.
import implementation from './index.cjs'

export const openLmdbCache = implementation.openLmdbCache
export const openLevelCache = implementation.openLevelCache
export const inspectLmdbCache = implementation.inspectLmdbCache
export const cacheStats = implementation.cacheStats
export const compactCacheTo = implementation.compactCacheTo
export const getEntry = implementation.getEntry
export const putEntries = implementation.putEntries
export const migrateFromLevel = implementation.migrateFromLevel
