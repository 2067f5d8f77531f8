// Datasets and workloads. Adding a workload = adding an entry to WORKLOADS (and, if it needs
// different data, to DATASETS); bench.js and run-backend.js pick it up by name.
//
// A workload entry:
//   title         heading in the report
//   metric        what `measure()` reports; today 'ops/s' (higher is better)
//   uses          Cache methods it calls (stateless backends like `floor` run it only if
//                 they implement all of them; no-fsync variants only if it writes)
//   dataset       a DATASETS key: what every stateful backend holds before timing
//   backendOptions  extra options for the backend's open function
//   ops, warmup   operation counts: { full, quick } (full = the default run)
//   seed          PRNG seed; the same key sequence for every backend and round
//   prepare(ctx)  runs in the child after populate + verify, untimed; may write more data.
//                 ctx = { cache, backend, stateful, evicts, dataset, ops, warmup, seed }.
//                 Returns { warmup(): Promise, measure(): Promise<{ ops, extra? }>, check?() }.
//                 Only measure() is timed; check() (may be async) runs afterwards and throws
//                 on a wrong result.

import { deepStrictEqual } from 'node:assert/strict'
import { DEFAULT_KEY_COUNT, createRng, keyOf, largeValueOf, missingKeyOf, randomIndices, smallValueOf } from './data.js'

export const DEFAULT_LARGE_KEY_COUNT = 5_000

export const DATASETS = {
  small: {
    description: `${DEFAULT_KEY_COUNT.toLocaleString('en-US')} keys (user:000000..), ~100-byte JSON values`,
    keyCount: DEFAULT_KEY_COUNT,
    valueFn: smallValueOf,
    keyFn: keyOf,
  },
  large: {
    // Fewer keys than `small` by default so that populating stays ~1 s per run (the default
    // run starts ~70 fresh processes on this dataset); the reads still go to random keys of
    // 50 MB. `--large-keys 100000` runs the full size (1 GB per populate).
    description: largeDescription(DEFAULT_LARGE_KEY_COUNT),
    keyCount: DEFAULT_LARGE_KEY_COUNT,
    valueFn: largeValueOf,
    keyFn: keyOf,
  },
}

/** Sets how many keys the 10 KB dataset holds (bench.js and every run-backend.js child). */
export function setLargeKeyCount(keyCount) {
  if (!Number.isInteger(keyCount) || keyCount < 1_000) throw new RangeError(`the 10 KB dataset needs an integer >= 1000 of keys, got ${keyCount}`)
  DATASETS.large.keyCount = keyCount
  DATASETS.large.description = largeDescription(keyCount)
}

function largeDescription(keyCount) {
  const megabytes = Math.round((keyCount * 10_000) / 1e6)
  const size = megabytes >= 1000 ? `${(megabytes / 1000).toFixed(1)} GB` : `${megabytes} MB`
  return `${keyCount.toLocaleString('en-US')} keys (user:000000..), ~10 KB JSON values (${size} in all)`
}

function mismatch(what, got, expected) {
  return new Error(`${what}: got ${JSON.stringify(got)?.slice(0, 200)}, expected ${JSON.stringify(expected)?.slice(0, 200)}`)
}

// ---- reads -------------------------------------------------------------------------------

/** get() (or has()) of random stored keys, `concurrency` in flight (1 = awaited one by one). */
function readWorkload({ concurrency = 1 }) {
  return ({ cache, stateful, evicts, dataset, ops, warmup, seed }) => {
    const idx = randomIndices(seed, warmup + ops, dataset.keyCount)
    const keys = Array.from(idx, (i) => dataset.keyFn(i))
    let misses = 0
    const samples = [] // [index into idx, value] every 997th op, checked afterwards
    async function loop(from, to) {
      if (concurrency === 1) {
        for (let i = from; i < to; i++) {
          const v = await cache.get(keys[i])
          if (v === undefined) misses++
          else if (i % 997 === 0) samples.push([i, v])
        }
        return
      }
      let next = from
      async function worker() {
        while (next < to) {
          const i = next++
          const v = await cache.get(keys[i])
          if (v === undefined) misses++
          else if (i % 997 === 0) samples.push([i, v])
        }
      }
      await Promise.all(Array.from({ length: concurrency }, worker))
    }
    return {
      warmup: () => loop(0, warmup),
      async measure() {
        const before = misses
        await loop(warmup, warmup + ops)
        // A bounded backend misses evicted keys: the share is part of its result.
        return evicts ? { ops, extra: { missRatio: (misses - before) / ops } } : { ops }
      },
      check() {
        if (!stateful) return
        if (misses > 0 && !evicts) throw new Error(`get returned undefined for ${misses} stored keys during the run`)
        for (const [i, v] of samples) deepStrictEqual(v, dataset.valueFn(idx[i]), `get(${keys[i]})`)
      },
    }
  }
}

/** has() of keys that are not stored: every answer must be false. */
function hasMissingWorkload({ cache, stateful, ops, warmup, seed }) {
  const idx = randomIndices(seed, warmup + ops, 1_000_000)
  const keys = Array.from(idx, (i) => missingKeyOf(i))
  let hits = 0
  async function loop(from, to) {
    for (let i = from; i < to; i++) if (await cache.has(keys[i])) hits++
  }
  return {
    warmup: () => loop(0, warmup),
    async measure() {
      await loop(warmup, warmup + ops)
      return { ops }
    },
    check() {
      if (stateful && hits > 0) throw new Error(`has() returned true for ${hits} missing keys`)
    },
  }
}

// ---- writes ------------------------------------------------------------------------------

// Write workloads walk the key space with a stride coprime to it, so no key is written twice
// (up to keyCount writes) and the expected final value of every written key is known.
const STRIDE = 7919
const writeIndex = (j, keyCount) => (j * STRIDE + 12_345) % keyCount
// A written value differs from the populated one (its id is shifted by the key count).
const writtenValue = (dataset, i) => dataset.valueFn(i + dataset.keyCount)

async function checkWritten(cache, dataset, count) {
  const step = Math.max(1, Math.floor(count / 300))
  for (let j = 0; j < count; j += step) {
    const i = writeIndex(j, dataset.keyCount)
    const got = await cache.get(dataset.keyFn(i))
    const expected = writtenValue(dataset, i)
    try {
      deepStrictEqual(got, expected)
    } catch {
      throw mismatch(`after the run, get(${dataset.keyFn(i)})`, got, expected)
    }
  }
}

/**
 * set() of distinct stored keys with new values. `inFlight` = 1: each awaited before the next;
 * otherwise groups of `inFlight` sets are fired, then awaited together.
 */
function setWorkload({ inFlight = 1 }) {
  return ({ cache, dataset, ops, warmup }) => {
    if (warmup + ops > dataset.keyCount) throw new Error('set workload: more ops than keys')
    const keys = new Array(warmup + ops)
    const values = new Array(warmup + ops)
    for (let j = 0; j < warmup + ops; j++) {
      const i = writeIndex(j, dataset.keyCount)
      keys[j] = dataset.keyFn(i)
      values[j] = writtenValue(dataset, i) // built up front: value construction is not timed
    }
    async function loop(from, to) {
      if (inFlight === 1) {
        for (let j = from; j < to; j++) await cache.set(keys[j], values[j])
        return
      }
      for (let j = from; j < to; j += inFlight) {
        const end = Math.min(j + inFlight, to)
        const pending = new Array(end - j)
        for (let k = j; k < end; k++) pending[k - j] = cache.set(keys[k], values[k])
        await Promise.all(pending)
      }
    }
    return {
      warmup: () => loop(0, warmup),
      async measure() {
        await loop(warmup, warmup + ops)
        return { ops }
      },
      check: () => checkWritten(cache, dataset, warmup + ops),
    }
  }
}

/** batch() of `size` puts each, awaited one by one; ops = puts. */
function batchWorkload({ size }) {
  return ({ cache, dataset, ops, warmup }) => {
    if (warmup + ops > dataset.keyCount) throw new Error('batch workload: more ops than keys')
    const batches = []
    for (let j = 0; j < warmup + ops; j += size) {
      const b = []
      for (let k = j; k < Math.min(j + size, warmup + ops); k++) {
        const i = writeIndex(k, dataset.keyCount)
        b.push({ type: 'put', key: dataset.keyFn(i), value: writtenValue(dataset, i) })
      }
      batches.push(b)
    }
    const warmBatches = Math.ceil(warmup / size)
    async function loop(from, to) {
      for (let b = from; b < to; b++) await cache.batch(batches[b])
    }
    return {
      warmup: () => loop(0, warmBatches),
      async measure() {
        await loop(warmBatches, batches.length)
        return { ops }
      },
      check: () => checkWritten(cache, dataset, warmup + ops),
    }
  }
}

/** 90 % get, 10 % set of random stored keys, each awaited before the next. */
function mixWorkload({ cache, stateful, dataset, ops, warmup, seed }) {
  const idx = randomIndices(seed, warmup + ops, dataset.keyCount)
  const rng = createRng(seed ^ 0x5e7)
  const n = warmup + ops
  const keys = new Array(n)
  const writeValue = new Array(n) // undefined for a read
  const last = new Map() // key index -> op index of its last write
  for (let j = 0; j < n; j++) {
    keys[j] = dataset.keyFn(idx[j])
    if (rng() % 10 === 0) {
      writeValue[j] = { ...writtenValue(dataset, idx[j]), op: j }
      last.set(idx[j], j)
    }
  }
  let misses = 0
  async function loop(from, to) {
    for (let j = from; j < to; j++) {
      if (writeValue[j] !== undefined) await cache.set(keys[j], writeValue[j])
      else if ((await cache.get(keys[j])) === undefined) misses++
    }
  }
  return {
    warmup: () => loop(0, warmup),
    async measure() {
      await loop(warmup, n)
      return { ops }
    },
    async check() {
      if (!stateful) return
      if (misses > 0) throw new Error(`get returned undefined for ${misses} stored keys during the run`)
      let checked = 0
      for (const [i, j] of last) {
        if (checked++ >= 300) break
        const got = await cache.get(dataset.keyFn(i))
        try {
          deepStrictEqual(got, writeValue[j])
        } catch {
          throw mismatch(`after the run, get(${dataset.keyFn(i)})`, got, writeValue[j])
        }
      }
    },
  }
}

// ---- scans -------------------------------------------------------------------------------

const SCAN_KEYS = 10_000

/**
 * entries() of a whole 10k-key namespace `scan` (values of the dataset's kind), in a database
 * that also holds the dataset's root keys and the neighbouring namespaces `scan/child` and
 * `scan2` (1,000 keys each), which must not show up. ops = entries yielded.
 */
async function entriesWorkload({ cache, dataset, ops, warmup }) {
  const scan = cache.withNamespace('scan')
  const fill = async (view, count, shift) => {
    for (let s = 0; s < count; s += 1000) {
      const b = []
      for (let i = s; i < Math.min(s + 1000, count); i++) b.push({ type: 'put', key: keyOf(i), value: dataset.valueFn(i + shift) })
      await view.batch(b)
    }
  }
  await fill(scan, SCAN_KEYS, 0)
  await fill(cache.withNamespace('scan/child'), 1000, 1_000_000)
  await fill(cache.withNamespace('scan2'), 1000, 2_000_000)
  const counts = []
  async function scanOnce() {
    let n = 0
    for await (const _ of scan.entries()) n++
    counts.push(n)
    return n
  }
  return {
    async warmup() {
      // One full scan, checked entry by entry (order, keys, values).
      let n = 0
      for await (const [k, v] of scan.entries()) {
        const expectedKey = keyOf(n)
        if (k !== expectedKey) throw mismatch(`entries() entry ${n} key`, k, expectedKey)
        if (n % 97 === 0) deepStrictEqual(v, dataset.valueFn(n), `entries() value of ${k}`)
        n++
      }
      if (n !== SCAN_KEYS) throw mismatch('entries() count', n, SCAN_KEYS)
      for (let s = SCAN_KEYS; s < warmup; s += SCAN_KEYS) await scanOnce()
    },
    async measure() {
      let total = 0
      while (total < ops) total += await scanOnce()
      return { ops: total }
    },
    check() {
      const bad = counts.find((c) => c !== SCAN_KEYS)
      if (bad !== undefined) throw mismatch('entries() count', bad, SCAN_KEYS)
    },
  }
}

// ---- the list ----------------------------------------------------------------------------

export const WORKLOADS = {
  'get-awaited': {
    title: '(a) get, awaited one by one',
    metric: 'ops/s',
    uses: ['get'],
    dataset: 'small',
    ops: { full: 150_000, quick: 2_000 },
    warmup: { full: 20_000, quick: 500 },
    seed: 0x0a11ce,
    prepare: readWorkload({ concurrency: 1 }),
  },
  'get-64': {
    title: '(b) get, 64 in flight',
    metric: 'ops/s',
    uses: ['get'],
    dataset: 'small',
    ops: { full: 150_000, quick: 2_000 },
    warmup: { full: 20_000, quick: 500 },
    seed: 0x0b0b,
    prepare: readWorkload({ concurrency: 64 }),
  },
  'set-awaited': {
    title: '(c1) set, awaited one by one',
    metric: 'ops/s',
    uses: ['set', 'get'],
    dataset: 'small',
    ops: { full: 1_000, quick: 100 },
    warmup: { full: 100, quick: 20 },
    seed: 0xc1,
    prepare: setWorkload({ inFlight: 1 }),
  },
  'set-1000': {
    title: '(c2) 1,000 sets fired, then awaited',
    metric: 'ops/s',
    uses: ['set', 'get'],
    dataset: 'small',
    ops: { full: 10_000, quick: 2_000 },
    warmup: { full: 1_000, quick: 1_000 },
    seed: 0xc2,
    prepare: setWorkload({ inFlight: 1000 }),
  },
  'batch-100': {
    title: '(d) batches of 100 puts, awaited one by one (ops = puts)',
    metric: 'ops/s',
    uses: ['batch', 'get'],
    dataset: 'small',
    ops: { full: 8_000, quick: 1_000 },
    warmup: { full: 1_000, quick: 200 },
    seed: 0xd,
    prepare: batchWorkload({ size: 100 }),
  },
  entries: {
    title: '(e) entries() of a 10k-key namespace (ops = entries)',
    metric: 'ops/s',
    uses: ['entries'],
    dataset: 'small',
    ops: { full: 50_000, quick: 10_000 },
    warmup: { full: 10_000, quick: 10_000 },
    seed: 0xe,
    prepare: entriesWorkload,
  },
  'mix-90-10': {
    title: '(f) 90 % get / 10 % set, awaited one by one',
    metric: 'ops/s',
    uses: ['get', 'set'],
    dataset: 'small',
    ops: { full: 8_000, quick: 1_000 },
    warmup: { full: 2_000, quick: 200 },
    seed: 0xf,
    prepare: mixWorkload,
  },
  'has-missing': {
    title: '(g) has() of missing keys, awaited one by one',
    metric: 'ops/s',
    uses: ['has'],
    dataset: 'small',
    ops: { full: 200_000, quick: 2_000 },
    warmup: { full: 20_000, quick: 500 },
    seed: 0x9,
    prepare: hasMissingWorkload,
  },
}

// The same workloads over ~10 KB values (the `large` dataset), with operation counts scaled so
// a round takes about as long as its small-value counterpart.
const LARGE_VARIANTS = {
  'get-awaited': { ops: { full: 20_000, quick: 1_000 }, warmup: { full: 2_000, quick: 200 } },
  'get-64': { ops: { full: 20_000, quick: 1_000 }, warmup: { full: 2_000, quick: 200 } },
  'set-awaited': { ops: { full: 300, quick: 50 }, warmup: { full: 50, quick: 10 } },
  'set-1000': { ops: { full: 3_000, quick: 1_000 }, warmup: { full: 500, quick: 1_000 } },
  'batch-100': { ops: { full: 2_000, quick: 500 }, warmup: { full: 500, quick: 100 } },
  entries: { ops: { full: 20_000, quick: 10_000 }, warmup: { full: 10_000, quick: 10_000 } },
  'mix-90-10': { ops: { full: 3_000, quick: 500 }, warmup: { full: 500, quick: 100 } },
  'has-missing': { ops: { full: 200_000, quick: 2_000 }, warmup: { full: 20_000, quick: 500 } },
}
for (const [name, counts] of Object.entries(LARGE_VARIANTS)) {
  const base = WORKLOADS[name]
  WORKLOADS[`${name}-10k`] = {
    ...base,
    ...counts,
    title: `${base.title} — 10 KB values`,
    dataset: 'large',
    seed: base.seed ^ 0x10_000,
  }
}

export const DEFAULT_WORKLOADS = Object.keys(WORKLOADS)
