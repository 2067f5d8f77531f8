// Crash safety: child processes are SIGKILLed at random moments while they write or read,
// with the parent holding the same cache open all along.
//
// 1. Writers: every batch whose promise resolved (and was reported) is fully present, no
//    batch is ever partly present, and the cache keeps accepting writes from the parent and
//    from the next child, over many kill rounds on one directory.
// 2. Readers: processes killed inside read transactions leave their LMDB reader slots behind;
//    with maxReaders 16, later openers and readers (sequential and concurrent, and the
//    parent itself without reopening) must still work, so those slots must be reclaimed.
//
// The PRNG is seeded (CRASH_SEED overrides it); the seed is printed with every failure.
import assert from 'node:assert/strict'
import { fork } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { openLmdbCache } from '../index.js'
import { prng } from './support/helpers.js'

const SEED = Number(process.env.CRASH_SEED ?? 0xc0ffee)
const WRITER = fileURLToPath(new URL('./fixtures/crash-writer.mjs', import.meta.url))
const READER = fileURLToPath(new URL('./fixtures/crash-reader.mjs', import.meta.url))
const SCAN_NAMESPACE = 'p'.repeat(490) // as in fixtures/crash-reader.mjs
const MAX_READERS = 16

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-crash-'))
}

/** Rejects if `promise` has not settled within `ms` (a hang is a failure, not a stall). */
function within(ms, promise, what) {
  let timer
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms (seed ${SEED})`)), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

function spawn(script, args) {
  const child = fork(script, args.map(String), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  return child
}

async function kill(child) {
  child.kill('SIGKILL')
  return child.exited
}

function waitForMessage(child, predicate, ms, what) {
  return within(
    ms,
    new Promise((resolve, reject) => {
      const onMessage = (message) => {
        if (predicate(message)) {
          child.off('message', onMessage)
          resolve(message)
        }
      }
      child.on('message', onMessage)
      child.exited.then(({ code, signal }) => reject(new Error(`${what}: child exited (${code ?? signal}) first`)))
    }),
    what,
  )
}

/**
 * Reads LMDB's reader table from lock.mdb (layout of liblmdb's MDB_txninfo on 64-bit Linux:
 * magic u32 @0, used slot count u32 @16, slots of 64 bytes from @128, each with the owner's
 * pid u32 @8). Returns null if the file does not look like that.
 */
function readerTable(dir) {
  let lock
  try {
    lock = fs.readFileSync(path.join(dir, 'lock.mdb'))
  } catch {
    return null
  }
  if (lock.length < 128 || lock.readUInt32LE(0) !== 0xbeefc0de) return null
  const used = lock.readUInt32LE(16)
  if (used > (lock.length - 128) / 64) return null
  const pids = []
  for (let i = 0; i < used; i++) pids.push(lock.readUInt32LE(128 + 64 * i + 8))
  const alive = (pid) => {
    try {
      process.kill(pid, 0)
      return true
    } catch (error) {
      return error.code === 'EPERM'
    }
  }
  const held = pids.filter((pid) => pid !== 0)
  return { used, held: held.length, dead: held.filter((pid) => !alive(pid)).length }
}

const batchKeys = (n) => Array.from({ length: 20 }, (_, j) => `b${n}:${j}`)

/** 'all' if every key of batch n holds n, 'none' if none exists; fails on anything else. */
async function batchState(cache, n, context) {
  let present = 0
  for (const key of batchKeys(n)) {
    const value = await cache.get(key)
    if (value !== undefined) {
      assert.equal(value, n, `${context}: ${key} holds ${value}`)
      present++
    }
  }
  assert.ok(present === 0 || present === 20, `${context}: batch ${n} is partly present (${present} of 20 keys)`)
  return present === 20 ? 'all' : 'none'
}

test('writers SIGKILLed at random moments never lose an acknowledged batch nor leave half of one', { timeout: 150_000 }, async () => {
  const random = prng(SEED)
  const dir = tempDir()
  const ROUNDS = 25
  const durabilities = ['durable', 'nosync', 'strict']
  const acked = new Set()
  let kills = 0
  let killedBeforeReady = 0
  let holderTotal = 0
  let holder = await openLmdbCache({ path: dir })
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const context = `seed ${SEED}, round ${round}`
      const chains = 1 + (round % 3)
      const start = round * 1_000_000
      const child = spawn(WRITER, [dir, start, chains, durabilities[round % 3]])
      const acks = []
      let failure = null
      // Meanwhile the holder writes too, so its writer thread is often waiting for LMDB's
      // write lock when the child dies holding it.
      let holderWrites = 0
      let stopHolder = false
      const holderLoop = (async () => {
        while (!stopHolder) {
          await holder.set(`h${round}:${holderWrites}`, holderWrites)
          holderWrites++
          await sleep(random() * 4)
        }
      })()
      child.on('message', (message) => {
        if (message.ack !== undefined) acks.push(message.ack)
        if (message.error !== undefined) failure = message.error
      })
      // Mostly kill while batches are committing; every fifth round at a random moment after
      // the spawn, which may land during module loading or while the environment opens.
      if (round % 5 === 4) {
        await sleep(20 + random() * 200)
      } else {
        await waitForMessage(child, (m) => m.ready, 20_000, `${context}: writer start`)
        await sleep(20 + random() * 330)
      }
      const { signal } = await kill(child)
      kills++
      assert.equal(failure, null, `${context}: the writer failed before the kill: ${failure}`)
      if (signal !== 'SIGKILL') assert.fail(`${context}: the writer exited by itself (${signal})`)
      if (acks.length === 0) killedBeforeReady++
      stopHolder = true
      await within(10_000, holderLoop, `${context}: holder writes across the kill`)
      for (let i = 0; i < holderWrites; i++) assert.equal(await holder.get(`h${round}:${i}`), i, `${context}: holder write ${i}`)
      holderTotal += holderWrites

      // Every acknowledged batch is complete, read through the handle held all along.
      for (const n of acks) {
        assert.equal(await batchState(holder, n, context), 'all', `${context}: acknowledged batch ${n} is missing`)
        acked.add(n)
      }
      // Per chain, the batches after its last acknowledged one (in flight at the kill, or
      // committed with their report lost) are all there or not at all, and then none follow.
      for (let k = 0; k < chains; k++) {
        const mine = acks.filter((n) => (n - start) % chains === k)
        let n = mine.length === 0 ? start + k : Math.max(...mine) + chains
        while ((await batchState(holder, n, context)) === 'all') n += chains
        for (let later = 1; later <= 2; later++) {
          assert.equal(await batchState(holder, n + later * chains, context), 'none', `${context}: batch after a gap`)
        }
      }
      // The write lock of the dead writer is recovered: the holder's writes still go through.
      await within(10_000, holder.set(`round:${round}`, round), `${context}: write after the kill`)
      assert.equal(await holder.get(`round:${round}`), round)

      // Halfway, close the last handle of this process and reopen (LMDB resets its lock file
      // when no process has the environment open).
      if (round === Math.floor(ROUNDS / 2)) {
        await holder.close()
        holder = await openLmdbCache({ path: dir })
      }
    }
    assert.ok(acked.size > 50, `only ${acked.size} batches were acknowledged over ${kills} kills`)

    // A complete scan of a freshly opened environment: every batch is all-or-nothing, every
    // acknowledged one is there, and nothing else was written.
    await holder.close()
    holder = await openLmdbCache({ path: dir })
    const counts = new Map()
    let rounds = 0
    let holderSeen = 0
    for await (const [key, value] of holder.entries()) {
      if (key.startsWith('round:')) {
        rounds++
        continue
      }
      const own = /^h\d+:(\d+)$/.exec(key)
      if (own) {
        assert.equal(value, Number(own[1]), `${key} holds ${value}`)
        holderSeen++
        continue
      }
      const match = /^b(\d+):(\d+)$/.exec(key)
      assert.ok(match, `unexpected key ${key}`)
      const n = Number(match[1])
      assert.equal(value, n, `${key} holds ${value}`)
      counts.set(n, (counts.get(n) ?? 0) + 1)
    }
    assert.equal(rounds, ROUNDS)
    assert.equal(holderSeen, holderTotal)
    for (const [n, count] of counts) assert.equal(count, 20, `seed ${SEED}: batch ${n} has ${count} of 20 keys`)
    for (const n of acked) assert.ok(counts.has(n), `seed ${SEED}: acknowledged batch ${n} lost`)
    await holder.set('after', 'all')
    assert.equal(await holder.get('after'), 'all')
    console.log(
      `# crash writers: ${kills} kills (${killedBeforeReady} before any ack), ${acked.size} acknowledged batches, ${counts.size} batches present, ${holderTotal} writes of the holder`,
    )
  } finally {
    await holder.close().catch(() => {})
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('reader slots of processes SIGKILLed mid-read are reclaimed (maxReaders 16)', { timeout: 150_000 }, async () => {
  const random = prng(SEED ^ 0x5a5a)
  const dir = tempDir()
  const children = new Set()
  const holder = await openLmdbCache({ path: dir, maxReaders: MAX_READERS })
  const t0 = Date.now()
  const lap = (what) => console.log(`# ${what}: ${Date.now() - t0} ms`)
  try {
    // Data for the readers: 8 values of 256 KiB, and 20,000 long keys that share their first
    // 480 bytes with the scan namespace's prefix without being in it.
    const big = (i) => String.fromCharCode(97 + i).repeat(256 * 1024)
    await holder.batch(Array.from({ length: 8 }, (_, i) => ({ type: 'put', key: `big${i}`, value: big(i) })))
    const outside = `${'p'.repeat(485)}q`
    for (let i = 0; i < 20_000; i += 2000) {
      await holder.batch(Array.from({ length: 2000 }, (_, j) => ({ type: 'put', key: `${outside}${i + j}`, value: i + j })))
    }
    const check = async (what) => {
      assert.equal(await within(10_000, holder.get('big3'), what), big(3), what)
      assert.equal(await holder.has(`${outside}7`), true, what)
      const page = []
      for await (const entry of holder.withNamespace(SCAN_NAMESPACE).entries()) page.push(entry)
      assert.deepEqual(page, [], what)
      await within(10_000, holder.set('alive', what), what)
    }
    await check('before the readers')

    // Kill waves: 5 processes x 4 threads = 20 readers contend for 16 slots, so nearly every
    // slot is held by a reader at any moment; all 5 processes are killed at once. The holder
    // does not read meanwhile, so it holds no slot.
    let deadSeen = 0
    let tableWasFull = 0
    const killWave = async (wave) => {
      const readers = Array.from({ length: 5 }, () => spawn(READER, [dir, 4, 'forever']))
      for (const c of readers) children.add(c)
      await Promise.all(readers.map((c, i) => waitForMessage(c, (m) => m.ready, 30_000, `reader ${i} of kill wave ${wave}`)))
      await sleep(50 + random() * 250)
      await Promise.all(readers.map(kill))
      for (const c of readers) children.delete(c)
      const table = readerTable(dir)
      if (table !== null) {
        deadSeen += table.dead
        if (table.dead === MAX_READERS) tableWasFull++
        console.log(`# kill wave ${wave}: ${table.dead} of ${table.used} reader slots held by killed processes`)
      }
    }

    // Wave 0: the holder, which never reopens, must still read and write (a table full of
    // dead slots makes LMDB report MDB_READERS_FULL, which must trigger the stale-slot cleanup).
    await killWave(0)
    await check('holder after kill wave 0')
    lap('wave 0')

    // Wave 1: then 15 processes open and read at once (with the holder, 16 live readers at
    // most): if the slots of the dead were not reclaimed, they could not read.
    await killWave(1)
    lap('wave 1')
    const concurrent = Array.from({ length: MAX_READERS - 1 }, () => spawn(READER, [dir, 1, 800]))
    for (const c of concurrent) children.add(c)
    const reports = await Promise.all(concurrent.map((c, i) => waitForMessage(c, (m) => m.done, 60_000, `concurrent reader ${i}`)))
    for (const [i, report] of reports.entries()) {
      assert.equal(report.errors, 0, `concurrent reader ${i} failed: ${JSON.stringify(report.codes)}`)
      assert.ok(report.reads > 0, `concurrent reader ${i} read nothing`)
    }
    await Promise.all(concurrent.map((c) => c.exited))
    for (const c of concurrent) children.delete(c)
    await check('holder after the concurrent readers')
    if (readerTable(dir) !== null) {
      assert.ok(deadSeen > 0, 'no kill landed inside a read transaction: the scenario was not exercised')
    }
    console.log(`# dead reader slots left by kills: ${deadSeen} (table entirely dead ${tableWasFull} times)`)
    lap('concurrent')

    // Sequentially: 24 processes (more than the slots) each open, read, and are killed mid-read.
    for (let i = 0; i < 24; i++) {
      const child = spawn(READER, [dir, 1, 'forever'])
      children.add(child)
      await waitForMessage(child, (m) => m.ready, 20_000, `sequential reader ${i}`)
      await sleep(5 + random() * 40)
      await kill(child)
      children.delete(child)
    }
    lap('sequential')
    await check('holder after the sequential readers')
    const last = spawn(READER, [dir, 2, 300])
    children.add(last)
    const report = await waitForMessage(last, (m) => m.done, 20_000, 'final reader')
    assert.equal(report.errors, 0, `final reader failed: ${JSON.stringify(report.codes)}`)
    await last.exited
    children.delete(last)

    // And many handles in this process, opened and read from one after another and together.
    for (let i = 0; i < 40; i++) {
      const handle = await openLmdbCache({ path: dir, maxReaders: MAX_READERS })
      assert.equal(await handle.get('big1'), big(1))
      await handle.close()
    }
    const handles = await Promise.all(Array.from({ length: 40 }, () => openLmdbCache({ path: dir, maxReaders: MAX_READERS })))
    for (const handle of handles) assert.equal(await handle.has('big2'), true)
    await Promise.all(handles.map((h) => h.close()))
    lap('handles')
    await check('holder at the end')
  } finally {
    await Promise.all([...children].map(kill))
    await holder.close().catch(() => {})
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
