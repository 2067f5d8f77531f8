// close() never blocks the event loop: the last handle's close is finished by the writer
// thread (it commits what was queued, closes LMDB, then settles the promise), so a close
// while another process holds LMDB's writer lock for a long transaction leaves this process
// responsive, and resolves once that transaction ends. The other process is a small Rust
// program over the same LMDB (fixtures/hold_write_txn.rs, built with cargo).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { cacheStats, openLmdbCache } from '../index.js'
import { buildHolder, holdWriterLock } from './support/holder.js'

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

test("close() of the last handle leaves the event loop running while another process holds LMDB's writer lock", { timeout: 120_000 }, async (t) => {
  const { exe, skip } = buildHolder()
  if (skip) return t.skip(skip)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-close-'))
  try {
    const cache = await openLmdbCache({ path: dir })
    await cache.set('kept', 1)
    await cache.set('gone', 2, { ttlMs: 1 })
    await sleep(20)

    const holder = holdWriterLock(exe, dir)
    await holder.holding
    // A read of the expired entry queues a lazy delete: the writer thread now waits for the
    // writer lock, with nothing a close could wait for on the JS side.
    assert.equal(await cache.get('gone'), undefined)

    let ticks = 0
    let fiveTicks
    const ticked = new Promise((resolve) => {
      fiveTicks = resolve
    })
    const timer = setInterval(() => {
      ticks++
      if (ticks === 5) fiveTicks()
    }, 10)
    let closed = false
    const closing = cache.close().then(() => {
      closed = true
    })
    await ticked
    assert.equal(closed, false, 'close() cannot be done while the writer waits for the lock')
    assert.equal(holder.output().includes('released'), false)

    holder.release()
    await closing
    clearInterval(timer)
    assert.equal(await holder.exited, 0, 'the holder released the lock when told, not at its own timeout')
    assert.ok(ticks >= 5)

    // The delete queued before the close was committed by it.
    const again = await openLmdbCache({ path: dir })
    assert.equal((await cacheStats(again)).entries, 1)
    assert.equal(await again.get('kept'), 1)
    await again.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('close() without await: an open of the same directory right after it waits for the close and sees every write', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-close-'))
  try {
    for (let round = 0; round < 20; round++) {
      const cache = await openLmdbCache({ path: dir })
      const writes = []
      for (let i = 0; i < 50; i++) writes.push(cache.set(`r${round}:${i}`, i))
      const closing = cache.close()
      const again = await openLmdbCache({ path: dir })
      await Promise.all(writes)
      await closing
      assert.equal(await again.get(`r${round}:49`), 49)
      assert.equal(await again.count(), (round + 1) * 50)
      await again.close()
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
