// Deterministic benchmark data: keys, values, random sequences, populate and verify.

import { deepStrictEqual } from 'node:assert/strict'

export const DEFAULT_KEY_COUNT = 100_000
export const KEY_PREFIX = 'user:'
const TAGS = ['red', 'green', 'blue', 'gold', 'teal', 'plum', 'rust', 'sand']
const NAMES = ['Ada', 'Brin', 'Cleo', 'Dara', 'Emil', 'Faye', 'Gus', 'Hana', 'Ivo', 'Juno']

/** `user:000000` ... (six digits; wider indices simply get more digits). */
export function keyOf(i) {
  return KEY_PREFIX + String(i).padStart(6, '0')
}

/** A key that no dataset ever contains. */
export function missingKeyOf(i) {
  return `missing:${String(i).padStart(6, '0')}`
}

/** A fixed ~100-byte JSON object (as `JSON.stringify` measures it), deterministic per index. */
export function smallValueOf(i) {
  return {
    id: i,
    name: `${NAMES[i % NAMES.length]} ${String(i).padStart(6, '0')}`,
    email: `user${String(i).padStart(6, '0')}@example.com`,
    score: ((i * 7919) % 100_000) / 100,
    tags: [TAGS[i % TAGS.length], TAGS[(i >> 3) % TAGS.length]],
  }
}

/**
 * A small, fast, seedable PRNG (xorshift32 with a splitmix-style seed scramble), so every
 * backend sees exactly the same key sequence. Returns a function giving a uint32.
 */
export function createRng(seed) {
  let s = (seed >>> 0) ^ 0x9e3779b9
  s = Math.imul(s ^ (s >>> 16), 0x85ebca6b)
  s = Math.imul(s ^ (s >>> 13), 0xc2b2ae35)
  s = (s ^ (s >>> 16)) >>> 0
  if (s === 0) s = 0x6d2b79f5
  return function nextUint32() {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    return s
  }
}

/** `count` uniformly random indices in [0, n), deterministic for a seed. */
export function randomIndices(seed, count, n) {
  const rng = createRng(seed)
  const out = new Uint32Array(count)
  for (let i = 0; i < count; i++) out[i] = Math.floor((rng() / 0x1_0000_0000) * n)
  return out
}

/** The key strings for `randomIndices`, built up front so key formatting is never timed. */
export function randomKeys(seed, count, n, keyFn = keyOf) {
  const idx = randomIndices(seed, count, n)
  const out = new Array(count)
  for (let i = 0; i < count; i++) out[i] = keyFn(idx[i])
  return out
}

/** Write keys 0..keyCount-1 through the Cache API's `batch`, `batchSize` puts at a time. */
export async function populate(cache, { keyCount, valueFn = smallValueOf, batchSize = 1000, keyFn = keyOf }) {
  for (let start = 0; start < keyCount; start += batchSize) {
    const end = Math.min(start + batchSize, keyCount)
    const ops = new Array(end - start)
    for (let i = start; i < end; i++) ops[i - start] = { type: 'put', key: keyFn(i), value: valueFn(i) }
    await cache.batch(ops)
  }
}

/**
 * Check that `sample` random stored keys read back exactly (or, with `mayMiss`, as undefined:
 * evicted) and that missing keys read as `undefined`. Throws an Error naming the backend and the first mismatch.
 */
export async function verify(cache, { backend, keyCount, valueFn = smallValueOf, sample = 1000, seed = 0x5eed, keyFn = keyOf, mayMiss = false }) {
  const idx = randomIndices(seed, sample, keyCount)
  // Always include both ends of the key space.
  const toCheck = [0, keyCount - 1, ...idx]
  for (const i of toCheck) {
    const key = keyFn(i)
    const got = await cache.get(key)
    if (got === undefined && mayMiss) continue // evicted by a bounded cache
    try {
      deepStrictEqual(got, valueFn(i))
    } catch {
      throw new Error(
        `correctness check failed for backend "${backend}": get(${JSON.stringify(key)}) returned ` +
          `${JSON.stringify(got)}, expected ${JSON.stringify(valueFn(i))}`,
      )
    }
  }
  for (let i = 0; i < 3; i++) {
    const key = missingKeyOf(i)
    const got = await cache.get(key)
    if (got !== undefined) {
      throw new Error(
        `correctness check failed for backend "${backend}": get(${JSON.stringify(key)}) of a missing key ` +
          `returned ${JSON.stringify(got)}, expected undefined`,
      )
    }
  }
  return toCheck.length + 3
}

// A fixed pseudo-random text the large values are cut from (deterministic).
const LARGE_TEXT = (() => {
  const rng = createRng(0x1a43e)
  const words = ['lorem', 'ipsum', 'dolor', 'sit', 'amet', 'cache', 'value', 'token', 'delta', 'omega', 'nodejs', 'lmdb']
  let s = ''
  while (s.length < 12_000) s += `${words[rng() % words.length]} `
  return s
})()

/** A ~10 KB JSON object (as `JSON.stringify` measures it), deterministic per index. */
export function largeValueOf(i) {
  const r = (i * 7919) % 2000
  const items = new Array(40)
  for (let k = 0; k < 40; k++) items[k] = { k, n: (i + k) % 997, tag: TAGS[(i + k) % TAGS.length] }
  return {
    ...smallValueOf(i),
    body: LARGE_TEXT.slice(r, r + 8700),
    items,
  }
}
