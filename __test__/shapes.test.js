// Shapes (src/shapes.rs): objects that share a key list are stored as a reference to it and
// their values. What a read returns never changes; these tests pin that across ids past one
// byte, reopens, other processes and worker threads adding shapes concurrently, two
// directories in one process, and a damaged stored shape.
import assert from 'node:assert/strict'
import { fork, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { Worker } from 'node:worker_threads'
import fc from 'fast-check'
import { openLmdbCache } from '../index.js'
import { shapedValue } from './fixtures/shaped-values.mjs'
import { collect, jsonRoundTrip } from './support/helpers.js'

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-shapes-'))
}

// Key names that a generated object literal or a plain map could get wrong.
const awkwardKey = fc.constantFrom(
  'a',
  'b',
  'id',
  'constructor',
  'toString',
  'hasOwnProperty',
  '0',
  '10',
  '',
  ' ',
  'é',
  '😀',
  'a-b',
  'class',
  '__proto__x',
  '__defineGetter__',
)
const leaf = fc.oneof(fc.integer({ min: -200, max: 300 }), fc.double(), fc.string({ maxLength: 8 }), fc.boolean(), fc.constant(null))
// A handful of key lists, reused: records of the same shape appear again and again.
const record = (keyLists) =>
  fc
    .integer({ min: 0, max: keyLists.length - 1 })
    .chain((k) => fc.tuple(...keyLists[k].map(() => leaf)).map((values) => Object.fromEntries(keyLists[k].map((key, i) => [key, values[i]]))))

test('objects sharing key lists read back as JSON would give them: get, entries, reopen', async () => {
  const dir = tempDir()
  try {
    await fc.assert(
      fc.asyncProperty(
        fc
          .array(fc.uniqueArray(awkwardKey, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 4 })
          .chain((lists) => fc.array(fc.array(record(lists), { maxLength: 5 }), { minLength: 1, maxLength: 6 })),
        async (values) => {
          let cache = await openLmdbCache({ path: dir, durability: 'nosync' })
          try {
            for (let i = 0; i < values.length; i++) await cache.set(`v${i}`, values[i])
            for (let i = 0; i < values.length; i++) assert.deepStrictEqual(await cache.get(`v${i}`), jsonRoundTrip(values[i]))
            const view = cache.withNamespace('b')
            await view.batch(values.map((value, i) => ({ type: 'put', key: `v${i}`, value })))
            const entries = new Map(await collect(view.entries()))
            for (let i = 0; i < values.length; i++) assert.deepStrictEqual(entries.get(`v${i}`), jsonRoundTrip(values[i]))
            await cache.close()
            cache = await openLmdbCache({ path: dir })
            for (let i = 0; i < values.length; i++) assert.deepStrictEqual(await cache.get(`v${i}`), jsonRoundTrip(values[i]))
          } finally {
            await cache.close()
          }
        },
      ),
      { numRuns: 60 },
    )
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('a hundred shapes (ids past one byte and past 64) read back, also from a fresh handle', async () => {
  const dir = tempDir()
  const value = (s, round) => ({ [`shape${s}`]: s, round, n: 100, more: { [`inner${s}`]: [s, round] } })
  try {
    const cache = await openLmdbCache({ path: dir, durability: 'nosync' })
    for (let round = 0; round < 3; round++) {
      for (let s = 0; s < 100; s++) await cache.set(`k${s}:${round}`, value(s, round))
    }
    for (let s = 0; s < 100; s++) assert.deepStrictEqual(await cache.get(`k${s}:2`), value(s, 2))
    const fresh = await openLmdbCache({ path: dir })
    const all = new Map(await collect(fresh.entries()))
    assert.equal(all.size, 300)
    for (let s = 0; s < 100; s++) for (let round = 0; round < 3; round++) assert.deepStrictEqual(all.get(`k${s}:${round}`), value(s, round))
    await fresh.close()
    await cache.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('4 processes adding shapes at once: each reads every value the others wrote', { timeout: 60_000 }, async () => {
  const dir = tempDir()
  const PROCESSES = 4
  const PER_PROCESS = 40
  const children = []
  try {
    // This process loads the (empty) shape table first; it must reload when it meets new ids.
    const cache = await openLmdbCache({ path: dir })
    assert.equal(await cache.get('nothing'), undefined)
    const script = new URL('./fixtures/shape-writer.mjs', import.meta.url)
    const results = []
    for (let p = 0; p < PROCESSES; p++) {
      const child = fork(script, [dir, String(p), String(PROCESSES), String(PER_PROCESS)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      const messages = []
      child.on('message', (m) => messages.push(m))
      children.push({ child, messages, exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) })
    }
    const waitFor = async (pred) => {
      for (let i = 0; i < 1200 && !pred(); i++) await new Promise((r) => setTimeout(r, 50))
      assert.ok(pred(), 'children did not report in time')
    }
    await waitFor(() => children.every((c) => c.messages.some((m) => m.written)))
    for (const c of children) c.child.send('read')
    for (const c of children) results.push(await c.exited)
    for (const [i, c] of children.entries()) {
      assert.equal(results[i], 0, `child ${i}: ${JSON.stringify(c.messages.at(-1))}`)
      assert.deepEqual(c.messages.at(-1), { checked: PROCESSES * PER_PROCESS * 2 })
    }
    for (let p = 0; p < PROCESSES; p++) {
      for (let i = 0; i < PER_PROCESS; i++) assert.deepStrictEqual(await cache.get(`p${p}:${i}:1`), shapedValue(p, i, 1))
    }
    await cache.close()
  } finally {
    for (const c of children) c.child.kill('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('a worker thread adds shapes; the main thread, which loaded the table before, reads them', async () => {
  const dir = tempDir()
  try {
    const cache = await openLmdbCache({ path: dir })
    await cache.set('first', { a: 1 })
    await cache.set('second', { a: 2 })
    assert.deepStrictEqual(await cache.get('second'), { a: 2 })
    const index = new URL('../index.js', import.meta.url).href
    const worker = new Worker(
      `import { openLmdbCache } from ${JSON.stringify(index)}
       import { workerData, parentPort } from 'node:worker_threads'
       const c = await openLmdbCache({ path: workerData })
       for (let i = 0; i < 50; i++) await c.set('w' + i, { ['own' + (i % 10)]: i, list: [{ x: i, y: 'y' }, { x: 0, y: '' }] })
       await c.close()
       parentPort.postMessage('done')`,
      { eval: true, workerData: dir, type: 'module' },
    )
    await new Promise((resolve, reject) => {
      worker.once('message', resolve)
      worker.once('error', reject)
    })
    await worker.terminate()
    for (let i = 0; i < 50; i++)
      assert.deepStrictEqual(await cache.get(`w${i}`), {
        [`own${i % 10}`]: i,
        list: [
          { x: i, y: 'y' },
          { x: 0, y: '' },
        ],
      })
    await cache.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('two directories in one process: a shape id of one means nothing in the other', async () => {
  const dirA = tempDir()
  const dirB = tempDir()
  try {
    const a = await openLmdbCache({ path: dirA })
    const b = await openLmdbCache({ path: dirB })
    for (let i = 0; i < 3; i++) {
      await a.set(`k${i}`, { alpha: i, beta: 'a' })
      await b.set(`k${i}`, { gamma: 'b', delta: i, epsilon: [i] })
    }
    for (let i = 0; i < 3; i++) {
      assert.deepStrictEqual(await a.get(`k${i}`), { alpha: i, beta: 'a' })
      assert.deepStrictEqual(await b.get(`k${i}`), { gamma: 'b', delta: i, epsilon: [i] })
    }
    await a.close()
    await b.close()
  } finally {
    fs.rmSync(dirA, { recursive: true, force: true })
    fs.rmSync(dirB, { recursive: true, force: true })
  }
})

test('a damaged stored shape is ERR_CORRUPT_RECORD for the values using it; other values and writes go on', async () => {
  const dir = tempDir()
  try {
    let cache = await openLmdbCache({ path: dir })
    const marked = (i) => ({ zqMarkerKeyA: i, zqMarkerKeyB: 'v' })
    await cache.set('m1', marked(1))
    await cache.set('m2', marked(2))
    await cache.set('plain', 'text')
    await cache.close()
    // The stored shape: a MessagePack array of the two keys (m1, seen first, is a map).
    const file = path.join(dir, 'data.mdb')
    const bytes = fs.readFileSync(file)
    const shape = Buffer.concat([Buffer.from([0x92, 0xac]), Buffer.from('zqMarkerKeyA')])
    const at = bytes.indexOf(shape)
    assert.ok(at > 0, 'the shape is stored in data.mdb')
    assert.equal(bytes.indexOf(shape, at + 1), -1, 'once')
    bytes[at + 5] ^= 0x01
    fs.writeFileSync(file, bytes)
    const cli = new URL('../bin/lmdb-cache.js', import.meta.url).pathname
    const verify = spawnSync(process.execPath, [cli, 'verify', dir], { encoding: 'utf8' })
    assert.equal(verify.status, 1, verify.stdout + verify.stderr)
    assert.match(verify.stdout, /\(shape 0\).*checksum/)
    cache = await openLmdbCache({ path: dir })
    await assert.rejects(cache.get('m2'), (e) => e.code === 'ERR_CORRUPT_RECORD' && /shape 0/.test(e.message))
    assert.equal(await cache.get('plain'), 'text')
    // Writes go on; the same key list is stored as maps from now on (no id past damage).
    await cache.set('m3', marked(3))
    await cache.set('m4', marked(4))
    assert.deepStrictEqual(await cache.get('m4'), marked(4))
    await cache.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
