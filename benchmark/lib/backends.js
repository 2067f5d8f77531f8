// The backends the benchmark can run. Each entry opens something with the Cache API
// (see /work/shared/docs/level-cache-contract.md). Modules are imported lazily, inside
// `open`/`probe`, so a backend that cannot load (e.g. the native package not built yet)
// only affects its own row.
//
// Entry fields:
//   description  one line for the report
//   stateful     true: gets a fresh directory, is populated and verified before timing
//   supports     for stateless backends: the Cache methods it implements (workloads using
//                anything else skip it)
//   hidden       not in the default set; run only when named with --backends
//   writesOnly   differs from another backend only in write durability: runs only in
//                workloads that write (see backendSupports)
//   evicts       bounded: stored keys may have been evicted, so reads of them may miss
//                (checks then allow misses, never wrong values)
//   probe()      throws if the backend cannot be loaded here
//   open(ctx)    -> Promise<Cache>; ctx = { path, options, dataset }

import { createRequire } from 'node:module'
import { smallValueOf } from './data.js'

const require = createRequire(import.meta.url)

// The native no-op: `binding.noop` if the addon exports it directly, else the raw hot-path
// `noop` that `binding.init(...)` hands out (the same calling convention as the read path).
// The floor runs in a process of its own, where nothing else has called `init`.
function loadNoop() {
  const binding = require('../../binding.cjs')
  if (typeof binding.noop === 'function') return binding.noop
  if (typeof binding.init === 'function') {
    const noop = binding.init(() => {})?.hot?.noop
    if (typeof noop === 'function') return noop
  }
  throw new Error('binding.cjs has no noop() (neither exported nor in init().hot)')
}

export const BACKENDS = {
  'lmdb-cache': {
    description: 'this package (Rust, napi-rs, heed/LMDB)',
    stateful: true,
    async probe() {
      await import('../../index.js')
    },
    async open({ path, options }) {
      const { openLmdbCache } = await import('../../index.js')
      return openLmdbCache({ path, ...options })
    },
  },
  'lmdb-cache-nosync': {
    description: "this package with `durability: 'nosync'` (no fsync on commit)",
    stateful: true,
    writesOnly: true,
    async probe() {
      await import('../../index.js')
    },
    async open({ path, options }) {
      const { openLmdbCache } = await import('../../index.js')
      return openLmdbCache({ path, ...options, durability: 'nosync' })
    },
  },
  'lmdb-cache-bounded': {
    description: 'this package with `maxEntries` at 90 % of the dataset: the working set is above the bound, gets of evicted keys miss',
    stateful: true,
    // Populating evicts: reads of stored keys may miss (never return a wrong value).
    evicts: true,
    hidden: true,
    async probe() {
      await import('../../index.js')
    },
    async open({ path, options, dataset }) {
      const { openLmdbCache } = await import('../../index.js')
      return openLmdbCache({ path, ...options, maxEntries: Math.floor(dataset.keyCount * 0.9) })
    },
  },
  'level-cache': {
    description: "level-cache's semantics over `level` 10 (LevelDB)",
    stateful: true,
    async probe() {
      await import('../backends/level-cache.js')
    },
    async open({ path, options }) {
      const { openLevelBackedCache } = await import('../backends/level-cache.js')
      return openLevelBackedCache({ path, ...options })
    },
  },
  'lmdb-js': {
    description: "level-cache's semantics over lmdb-js 3 (`lmdb`), encoding json",
    stateful: true,
    async probe() {
      await import('../backends/lmdbjs-cache.js')
    },
    async open({ path, options }) {
      const { openLmdbJsBackedCache } = await import('../backends/lmdbjs-cache.js')
      return openLmdbJsBackedCache({ path, ...options })
    },
  },
  'lmdb-js-msgpack': {
    description: "level-cache's semantics over lmdb-js 3 with its default encoding (msgpackr, shared structures)",
    stateful: true,
    async probe() {
      await import('../backends/lmdbjs-cache.js')
    },
    async open({ path, options }) {
      const { openLmdbJsBackedCache } = await import('../backends/lmdbjs-cache.js')
      return openLmdbJsBackedCache({ path, ...options, encoding: 'msgpack' })
    },
  },
  'lmdb-js-nosync': {
    description: 'the same over lmdb-js with `noSync: true`',
    stateful: true,
    writesOnly: true,
    async probe() {
      await import('../backends/lmdbjs-cache.js')
    },
    async open({ path, options }) {
      const { openLmdbJsBackedCache } = await import('../backends/lmdbjs-cache.js')
      return openLmdbJsBackedCache({ path, ...options, noSync: true })
    },
  },
  sqlite: {
    description: "level-cache's semantics over better-sqlite3 (WAL, synchronous=NORMAL, WITHOUT ROWID table)",
    stateful: true,
    async probe() {
      await import('../backends/sqlite-cache.js')
    },
    async open({ path, options }) {
      const { openSqliteBackedCache } = await import('../backends/sqlite-cache.js')
      return openSqliteBackedCache({ path, ...options })
    },
  },
  floor: {
    description: "lower bound per op: a no-op native call + JSON.parse of one value's JSON text (get), the no-op alone (has of a missing key)",
    stateful: false,
    supports: ['get', 'has'],
    async probe() {
      loadNoop()
    },
    async open({ dataset }) {
      const noop = loadNoop()
      const valueFn = dataset?.valueFn ?? smallValueOf
      // A ready string: the floor leaves out even the bytes-to-string decoding a real get does.
      const text = JSON.stringify(valueFn(12_345 % (dataset?.keyCount ?? 100_000)))
      const unsupported = (name) => async () => {
        throw new Error(`the floor backend does not implement ${name}()`)
      }
      return Object.freeze({
        async get(_key) {
          noop()
          return JSON.parse(text)
        },
        // The workloads call has() on missing keys only: nothing to decode, the native call
        // is the whole floor.
        async has(_key) {
          noop()
          return false
        },
        set: unsupported('set'),
        del: unsupported('del'),
        batch: unsupported('batch'),
        entries: unsupported('entries'),
        sweepExpired: unsupported('sweepExpired'),
        withNamespace() {
          return this
        },
        async close() {},
      })
    },
  },
  // Harness self-test only: a Map with the same envelope, no persistence.
  memory: {
    description: 'harness self-test: an in-process Map (not a real backend)',
    stateful: true,
    hidden: true,
    async probe() {},
    async open() {
      const { openMemoryCache } = await import('./memory-cache.js')
      return openMemoryCache()
    },
  },
}

export const DEFAULT_BACKENDS = Object.keys(BACKENDS).filter((name) => !BACKENDS[name].hidden)

/** Workloads compare against these when present. */
export const BASELINES = ['level-cache', 'lmdb-js', 'lmdb-js-msgpack']

const WRITES = ['set', 'del', 'batch']

/**
 * Whether backend `name` runs a workload calling `methods`. Backends that differ from another
 * one only in write durability (`writesOnly`) run only where something is written.
 */
export function backendSupports(name, methods) {
  const b = BACKENDS[name]
  if (b.writesOnly) return methods.some((m) => WRITES.includes(m))
  if (b.stateful) return true
  return methods.every((m) => b.supports.includes(m))
}
