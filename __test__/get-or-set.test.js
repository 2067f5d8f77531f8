// getOrSet: single-flight across real processes sharing one directory. 8 processes x 100
// concurrent callers compute once; an owner SIGKILLed mid-compute is taken over once its
// lease lapses; a compute that throws rejects its own callers only and the next call computes.
import assert from 'node:assert/strict'
import { fork } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { openLmdbCache } from '../index.js'

const CHILD = new URL('./fixtures/get-or-set-child.mjs', import.meta.url)

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-getorset-'))
}

/** A child process calling getOrSet; `next(kind)` resolves with its next message holding `kind`. */
function spawnChild(dir, sideFile, { callers = 100, mode = 'value', lockTtlMs = 10_000, key = 'hot' } = {}) {
  const child = fork(CHILD, [dir, key, sideFile, String(callers), mode, String(lockTtlMs)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const messages = []
  const waiters = []
  child.on('message', (message) => {
    messages.push(message)
    for (const w of [...waiters]) {
      if (w.kind in message) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(message)
      }
    }
  })
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  const next = (kind) => {
    const found = messages.find((m) => kind in m)
    if (found !== undefined) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      waiters.push({ kind, resolve })
      exited.then((exit) => reject(new Error(`child ${child.pid} exited (${JSON.stringify(exit)}) before sending ${kind}`)))
    })
  }
  return { child, next, exited }
}

const computesIn = (sideFile) => fs.readFileSync(sideFile, 'utf8').split('\n').filter(Boolean).map(Number)

test('8 processes x 100 concurrent callers on one missing key: compute runs exactly once and all get its value', { timeout: 60_000 }, async () => {
  const dir = tempDir()
  const sideFile = path.join(dir, 'computes.log')
  fs.writeFileSync(sideFile, '')
  const children = Array.from({ length: 8 }, () => spawnChild(dir, sideFile))
  try {
    await Promise.all(children.map((c) => c.next('ready')))
    for (const c of children) c.child.send('go')
    const results = await Promise.all(children.map((c) => c.next('values')))
    const computes = computesIn(sideFile)
    assert.equal(computes.length, 1, `compute ran in ${computes.join(', ')}`)
    const values = results.flatMap((r) => r.values)
    assert.equal(values.length, 800)
    assert.deepEqual(
      results.flatMap((r) => r.errors),
      [],
    )
    for (const value of values) assert.deepEqual(value, { by: computes[0] })
    for (const c of children) assert.deepEqual(await c.exited, { code: 0, signal: null })
  } finally {
    for (const c of children) c.child.kill('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('the owner SIGKILLed mid-compute: after its lease lapses one waiting process computes, and every caller gets that value', {
  timeout: 60_000,
}, async () => {
  const dir = tempDir()
  const sideFile = path.join(dir, 'computes.log')
  fs.writeFileSync(sideFile, '')
  const LOCK_TTL_MS = 1500
  const owner = spawnChild(dir, sideFile, { callers: 10, mode: 'hang', lockTtlMs: LOCK_TTL_MS })
  const waiters = []
  try {
    await owner.next('ready')
    owner.child.send('go')
    await owner.next('computing') // it holds the lease now
    for (let i = 0; i < 3; i++) waiters.push(spawnChild(dir, sideFile, { lockTtlMs: LOCK_TTL_MS }))
    await Promise.all(waiters.map((w) => w.next('ready')))
    for (const w of waiters) w.child.send('go')
    owner.child.kill('SIGKILL')
    assert.deepEqual(await owner.exited, { code: null, signal: 'SIGKILL' })
    const results = await Promise.all(waiters.map((w) => w.next('values')))
    const computes = computesIn(sideFile)
    assert.equal(computes.length, 2, 'the dead owner, then exactly one taker')
    assert.equal(computes[0], owner.child.pid)
    assert.ok(
      waiters.some((w) => w.child.pid === computes[1]),
      'a waiting process took over',
    )
    for (const r of results) {
      assert.deepEqual(r.errors, [])
      assert.equal(r.values.length, 100)
      for (const value of r.values) assert.deepEqual(value, { by: computes[1] })
    }
  } finally {
    owner.child.kill('SIGKILL')
    for (const w of waiters) w.child.kill('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('compute throwing rejects its own callers only (shared in-process promise); a waiting process then computes, and so does the next call', {
  timeout: 60_000,
}, async () => {
  const dir = tempDir()
  const sideFile = path.join(dir, 'computes.log')
  fs.writeFileSync(sideFile, '')
  const owner = spawnChild(dir, sideFile, { callers: 20, mode: 'throw', key: 'k' })
  let other
  try {
    await owner.next('ready')
    owner.child.send('go')
    // Wait until the owner's compute has started (it holds the lease), then start a waiter.
    while (computesIn(sideFile).length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
    other = spawnChild(dir, sideFile, { callers: 5, key: 'k' })
    await other.next('ready')
    other.child.send('go')
    const failed = await owner.next('values')
    assert.deepEqual(failed.values, [])
    assert.equal(failed.errors.length, 20, 'every caller of the owning process rejects')
    assert.ok(failed.errors.every((m) => m === `compute failed in ${owner.child.pid}`))
    const recovered = await other.next('values')
    assert.deepEqual(recovered.errors, [])
    assert.equal(recovered.values.length, 5)
    for (const value of recovered.values) assert.deepEqual(value, { by: other.child.pid })
    assert.deepEqual(computesIn(sideFile), [owner.child.pid, other.child.pid])

    // In one process: callers share one promise; the next call after a failure computes again.
    const cache = await openLmdbCache({ path: dir })
    try {
      let calls = 0
      const failing = async () => {
        calls++
        await new Promise((resolve) => setTimeout(resolve, 20))
        throw new Error('nope')
      }
      const settled = await Promise.allSettled(Array.from({ length: 10 }, () => cache.getOrSet('j', failing)))
      assert.equal(calls, 1)
      assert.ok(settled.every((s) => s.status === 'rejected' && s.reason.message === 'nope'))
      assert.equal(await cache.getOrSet('j', async () => ++calls), 2, 'recomputed, not blocked by a lease')
      assert.equal(await cache.getOrSet('j', async () => ++calls), 2, 'then served from the cache')
      await assert.rejects(cache.getOrSet('j', 'not a function'), { code: 'ERR_INVALID_ARGUMENT' })
      await assert.rejects(
        cache.getOrSet('j', async () => 1, { lockTtlMs: 0 }),
        { code: 'ERR_INVALID_OPTIONS' },
      )
    } finally {
      await cache.close()
    }
  } finally {
    owner.child.kill('SIGKILL')
    other?.child.kill('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('4 worker threads and the main thread of one process, 50 callers each: compute runs once', { timeout: 60_000 }, async () => {
  const { Worker } = await import('node:worker_threads')
  const dir = tempDir()
  const sideFile = path.join(dir, 'computes.log')
  fs.writeFileSync(sideFile, '')
  const index = new URL('../index.cjs', import.meta.url).pathname
  const body = `
    const { parentPort, workerData, threadId } = require('node:worker_threads')
    const fs = require('node:fs')
    const { openLmdbCache } = require(workerData.index)
    ;(async () => {
      const cache = await openLmdbCache({ path: workerData.dir })
      const compute = async () => {
        fs.appendFileSync(workerData.sideFile, 'thread ' + threadId + '\\n')
        await new Promise((resolve) => setTimeout(resolve, 300))
        return { by: threadId }
      }
      parentPort.postMessage('ready')
      await new Promise((resolve) => parentPort.once('message', resolve))
      const values = await Promise.all(Array.from({ length: 50 }, () => cache.getOrSet('hot', compute)))
      await cache.close()
      parentPort.postMessage(values)
    })()`
  const workers = Array.from({ length: 4 }, () => new Worker(body, { eval: true, workerData: { index, dir, sideFile } }))
  const cache = await openLmdbCache({ path: dir })
  try {
    const next = (w) => new Promise((resolve, reject) => w.once('message', resolve).once('error', reject))
    await Promise.all(workers.map(next))
    const results = workers.map(next)
    for (const w of workers) w.postMessage('go')
    const mainCompute = async () => {
      fs.appendFileSync(sideFile, 'main\n')
      await new Promise((resolve) => setTimeout(resolve, 300))
      return { by: 'main' }
    }
    const mine = Promise.all(Array.from({ length: 50 }, () => cache.getOrSet('hot', mainCompute)))
    const values = [...(await mine), ...(await Promise.all(results)).flat()]
    const computes = fs.readFileSync(sideFile, 'utf8').split('\n').filter(Boolean)
    assert.equal(computes.length, 1, `computed by ${computes.join(', ')}`)
    assert.equal(values.length, 250)
    const winner = computes[0] === 'main' ? { by: 'main' } : { by: Number(computes[0].slice('thread '.length)) }
    for (const value of values) assert.deepEqual(value, winner)
  } finally {
    await Promise.all(workers.map((w) => w.terminate()))
    await cache.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
