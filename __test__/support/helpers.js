import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export const SEP = '\u241F'

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Drains an async iterable into an array. */
export async function collect(iterable) {
  const out = []
  for await (const item of iterable) out.push(item)
  return out
}

/** Compares two strings by the byte order of their UTF-8 encodings. */
export const utf8Compare = (a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))

/** What a JSON round trip makes of a value. */
export const jsonRoundTrip = (value) => {
  const text = JSON.stringify(value)
  return text === undefined ? undefined : JSON.parse(text)
}

/**
 * Runs `fn` with a fresh temporary directory and a tracked opener; every cache
 * opened through it is closed (errors ignored) and the directory removed
 * afterwards, whatever the outcome.
 *
 * fn receives { dir, dbPath, open(extra) } where open merges
 * { ...baseOptions, path: dbPath, ...extra }.
 */
export async function withDir(openImpl, baseOptions, fn) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-test-'))
  const dbPath = path.join(dir, 'db')
  const opened = []
  const open = async (extra = {}) => {
    const cache = await openImpl({ ...baseOptions, path: dbPath, ...extra })
    opened.push(cache)
    return cache
  }
  try {
    return await fn({ dir, dbPath, open })
  } finally {
    for (const cache of opened.reverse()) {
      try {
        await cache.close()
      } catch {
        // already closed or broken: cleanup only
      }
    }
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** withDir + one cache opened with `extra`, handed to fn(cache, ctx). */
export function withCache(openImpl, baseOptions, extra, fn) {
  return withDir(openImpl, baseOptions, async (ctx) => fn(await ctx.open(extra), ctx))
}

/**
 * Asserts that calling `call()` returns a promise (no synchronous throw) that
 * rejects with an instance of `Ctor` whose `code` is `code` (when given).
 */
export async function assertRejects(call, Ctor, code, what = '') {
  let promise
  try {
    promise = call()
  } catch (err) {
    assert.fail(`${what} threw synchronously instead of returning a rejected promise: ${err}`)
  }
  assert.ok(promise && typeof promise.then === 'function', `${what} should return a promise, got ${typeof promise}`)
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof Ctor, `${what}: expected ${Ctor.name}, got ${err?.constructor?.name}: ${err?.message}`)
    if (code !== undefined) {
      assert.equal(err.code, code, `${what}: expected code ${code}, got ${err.code} (${err.message})`)
    }
    return true
  })
}

/** Deterministic pseudo-random string of `length` chars from `alphabet`. */
export function pseudoRandomString(length, seed = 1, alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-') {
  let state = seed >>> 0 || 1
  const chars = new Array(length)
  for (let i = 0; i < length; i++) {
    state ^= state << 13
    state >>>= 0
    state ^= state >>> 17
    state ^= state << 5
    state >>>= 0
    chars[i] = alphabet[state % alphabet.length]
  }
  return chars.join('')
}

/** Deterministic Fisher-Yates shuffle (returns a new array). */
export function shuffled(items, seed = 7) {
  const out = [...items]
  let state = seed
  for (let i = out.length - 1; i > 0; i--) {
    state = (state * 1103515245 + 12345) % 2147483648
    const j = state % (i + 1)
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}

/** mulberry32: a small seeded PRNG, so randomized tests are reproducible from their seed. */
export function prng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
