// Many writers on one directory: 4 processes x 2 worker threads, each thread keeping 16
// operations in flight (mixed set / del / batch of 10-50 / get) for a few seconds, on its own
// disjoint keys plus 16 hot keys shared by all. Each thread records, per key, its last
// acknowledged write (value or deletion) in the order its own promises resolved, and reports
// that model at the end (fixtures/many-writers.mjs explains why it is well defined). The test
// process then opens the directory and checks it against the models: every disjoint key holds
// exactly its writer's last acknowledged write, every hot key the last acknowledged write of
// one of the writers, nothing else is stored, and nothing anywhere reported an error.
//
// The PRNG seeds are fixed (MANY_WRITERS_SEED overrides them); the interleaving is not.
import assert from 'node:assert/strict'
import { fork } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { openLmdbCache } from '../index.js'

const FIXTURE = fileURLToPath(new URL('./fixtures/many-writers.mjs', import.meta.url))
const SEED = Number(process.env.MANY_WRITERS_SEED ?? 0x5ca1ab1e) >>> 0

const PROCESSES = 4
const THREADS = 2
const LANES = 16 // operations in flight per thread
const DURATION_MS = 3000
const KEYS_PER_THREAD = 4000
const HOT_KEYS = 16

function withTimeout(promise, ms, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** A forked fixture process with promises for its messages and its exit. */
function startProcess(proc) {
  const child = fork(FIXTURE, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const waiters = new Map() // event -> resolve
  const events = new Map() // event -> message, for those that came before anyone waited
  child.on('message', (message) => {
    const resolve = waiters.get(message.event)
    if (resolve) resolve(message)
    else events.set(message.event, message)
  })
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  // 'exit' may be emitted before the last messages are read from the IPC channel (the child
  // sends its result and ends at once); 'disconnect' comes after them. So a child counts as
  // gone without sending an event only once both have happened.
  const disconnected = new Promise((resolve) => child.once('disconnect', resolve))
  const gone = Promise.all([exited, disconnected]).then(([info]) => info)
  const next = (event, ms) =>
    withTimeout(
      Promise.race([
        events.has(event) ? Promise.resolve(events.get(event)) : new Promise((resolve) => waiters.set(event, resolve)),
        gone.then((info) => {
          if (events.has(event)) return events.get(event)
          throw new Error(`process ${proc} exited (${JSON.stringify(info)}) before sending '${event}'`)
        }),
      ]),
      ms,
      `process ${proc} sending '${event}'`,
    )
  return { proc, child, exited, next }
}

const show = (v) => (v === undefined ? '<absent>' : v)

test(`${PROCESSES} processes x ${THREADS} worker threads, ${LANES} ops in flight each, mixed set/del/batch/get: the directory holds exactly the last acknowledged writes`, {
  timeout: 40_000,
}, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-many-'))
  const procs = []
  let cache
  try {
    for (let p = 0; p < PROCESSES; p++) procs.push(startProcess(p))
    await Promise.all(procs.map((p) => p.next('started', 15_000)))
    for (const p of procs) {
      p.child.send({
        op: 'start',
        config: {
          dir,
          proc: p.proc,
          threads: THREADS,
          seed: SEED,
          durationMs: DURATION_MS,
          lanes: LANES,
          keysPerThread: KEYS_PER_THREAD,
          hotKeys: HOT_KEYS,
          batchMin: 10,
          batchMax: 50,
        },
      })
    }
    // Start barrier: every thread of every process has the cache open before any writes.
    await Promise.all(procs.map((p) => p.next('ready', 15_000)))
    for (const p of procs) p.child.send({ op: 'go' })
    const results = await Promise.all(procs.map((p) => p.next('result', DURATION_MS + 15_000)))
    const exits = await Promise.all(procs.map((p) => withTimeout(p.exited, 10_000, `process ${p.proc} ending on its own`)))
    assert.deepEqual(
      exits,
      procs.map(() => ({ code: 0, signal: null })),
      'fixture processes exit with code 0',
    )

    // Zero errors anywhere: no worker failed, no operation rejected, no get disagreed.
    assert.deepEqual(
      results.flatMap((r) => r.workerFailures),
      [],
      'worker threads that failed',
    )
    const reports = results.flatMap((r) => r.threads)
    assert.equal(reports.length, PROCESSES * THREADS, 'one report per thread')
    assert.deepEqual(
      reports.filter((r) => r.errors.length > 0).map((r) => ({ writer: r.writer, seed: r.seed, errors: r.errors })),
      [],
      `errors reported by the threads (seed ${SEED})`,
    )

    // The load was real: every thread kept LANES operations in flight and wrote a lot.
    for (const r of reports) {
      const s = r.stats
      const issued = s.get + s.getHot + s.set + s.del + s.batch
      assert.equal(s.maxInFlight, LANES, `${r.writer}: operations in flight at most`)
      assert.ok(
        s.inFlightAtIssue / issued >= LANES / 2,
        `${r.writer}: on average ${(s.inFlightAtIssue / issued).toFixed(1)} other operations in flight when one was issued`,
      )
      assert.ok(
        s.ackedWrites >= 200 && s.batch >= 5 && s.del >= 5 && s.get >= 20 && s.hotWrites >= 10,
        `${r.writer}: too little load to mean anything: ${JSON.stringify(s)}`,
      )
    }

    // The test process opens the directory after everyone left, and compares.
    cache = await openLmdbCache({ path: dir })
    const expectedPresent = new Map() // key -> value
    const lost = [] // acknowledged value, now absent
    const wrong = [] // another value than the last acknowledged one
    const resurrected = [] // deleted last, yet present
    let disjointKeys = 0
    for (const r of reports) {
      for (const [key, entry] of r.disjoint) {
        disjointKeys++
        const actual = await cache.get(key)
        if (entry.deleted) {
          if (actual !== undefined) resurrected.push({ key, actual })
        } else {
          expectedPresent.set(key, entry.value)
          if (actual === undefined) lost.push({ key, expected: entry.value })
          else if (JSON.stringify(actual) !== JSON.stringify(entry.value)) wrong.push({ key, expected: entry.value, actual })
        }
      }
    }
    assert.deepEqual(
      { lost: lost.length, wrong: wrong.length, resurrected: resurrected.length, first: [...lost, ...wrong, ...resurrected].slice(0, 10) },
      { lost: 0, wrong: 0, resurrected: 0, first: [] },
      `disjoint keys (${disjointKeys} checked) against their writer's last acknowledged write`,
    )

    // Hot keys: the last acknowledged write of one of the writers.
    const hotWrong = []
    for (let h = 0; h < HOT_KEYS; h++) {
      const key = `hot:${h}`
      const candidates = reports.map((r) => new Map(r.hotLast).get(key)).filter((entry) => entry !== undefined)
      const actual = await cache.get(key)
      const ok =
        actual === undefined
          ? candidates.length === 0 || candidates.some((entry) => entry.deleted)
          : candidates.some((entry) => !entry.deleted && JSON.stringify(entry.value) === JSON.stringify(actual))
      if (!ok) hotWrong.push({ key, actual: show(actual), candidates: candidates.map((entry) => (entry.deleted ? '<deleted>' : entry.value)) })
      if (actual !== undefined) expectedPresent.set(key, actual)
    }
    assert.deepEqual(hotWrong, [], 'hot keys not holding the last acknowledged write of any writer')

    // Nothing else is stored: no foreign key, no key left behind by a write nobody acknowledged.
    const unexpected = []
    let stored = 0
    for await (const [key, value] of cache.entries()) {
      stored++
      if (!expectedPresent.has(key) || JSON.stringify(expectedPresent.get(key)) !== JSON.stringify(value)) {
        if (unexpected.length < 10) unexpected.push({ key, value })
      }
    }
    assert.deepEqual(unexpected, [], 'entries() yields keys or values outside the models')
    assert.equal(stored, expectedPresent.size, 'number of stored entries')

    const total = (field) => reports.reduce((sum, r) => sum + r.stats[field], 0)
    t.diagnostic(
      `seed ${SEED}: ${total('ackedWrites')} acknowledged key writes (${total('set')} sets, ${total('del')} dels, ${total('batch')} batches of ${total('batchOps')} ops, ${total('hotWrites')} to hot keys), ${total('get') + total('getHot')} gets; ${stored} entries at the end`,
    )
  } finally {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL')
    await Promise.all(procs.map((p) => withTimeout(p.exited, 5_000, 'killed process exiting').catch(() => {})))
    await cache?.close().catch(() => {})
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
