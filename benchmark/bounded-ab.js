// Paired A/B of gets with and without a bound, in one process: two caches of the same 100,000
// keys (~100-byte values), one with maxEntries at 90 %; blocks of 20,000 gets alternate
// between them, which cancels most of a shared VM's slow spells. Prints the median ns per get
// of each and their ratio. Usage: node benchmark/bounded-ab.js [rounds]
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { openLmdbCache } from '../index.js'

const KEYS = 100_000
const BLOCK = 20_000
const rounds = Number(process.argv[2] ?? 30)
const keyOf = (i) => `user:${String(i).padStart(6, '0')}`
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-ab-'))

async function filled(name, options) {
  const cache = await openLmdbCache({ path: path.join(root, name), ...options })
  for (let s = 0; s < KEYS; s += 1000) {
    const ops = []
    for (let i = s; i < s + 1000; i++)
      ops.push({ type: 'put', key: keyOf(i), value: { id: i, name: `user-${i}`, email: `u${i}@example.com`, score: i % 100, tags: ['a', 'b'] } })
    await cache.batch(ops)
  }
  return cache
}

async function block(cache, keys) {
  const t = process.hrtime.bigint()
  for (const k of keys) await cache.get(k)
  return Number(process.hrtime.bigint() - t) / keys.length
}

const plain = await filled('plain', {})
const bounded = await filled('bounded', { maxEntries: KEYS * 0.9 })
const keys = Array.from({ length: BLOCK }, (_, i) => keyOf((i * 7919 + 13) % KEYS))
const times = { plain: [], bounded: [] }
for (let r = 0; r < rounds; r++) {
  times.plain.push(await block(plain, keys))
  times.bounded.push(await block(bounded, keys))
}
const median = (a) => a.sort((x, y) => x - y)[a.length >> 1]
const [p, b] = [median(times.plain), median(times.bounded)]
console.log(`ns per get: unbounded ${p.toFixed(0)}, bounded ${b.toFixed(0)}; bounded throughput / unbounded ${(p / b).toFixed(3)}`)
await plain.close()
await bounded.close()
fs.rmSync(root, { recursive: true, force: true })
