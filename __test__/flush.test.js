// 'durable' commits skip their fsync and a flusher thread fsyncs after them; the first open
// after an OS crash rolls back a newest transaction that flush-state does not record as
// flushed (docs/file-format.md, "Flushing off the writer lock"). A reboot is played by writing
// another boot id into flush-state: the open must then undo the last commit unless the record
// says it was flushed, and must do it only once. The crash image itself (a newest meta page
// over pages that never reached the disk) is built by the Rust test in src/flush_state/tests.rs.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { openLmdbCache } from '../index.js'
import { buildHolder, holdWriterLock } from './support/holder.js'

const RECORD_LEN = 72
const BOOT_AT = 8
const FLUSHED_AT = 56
const onLinux = process.platform === 'linux'
const why = 'flush-state is kept only where the OS names its boot (Linux)'

/** Rewrites flush-state as if another boot had recorded it, with `flushed` (default: kept). */
function playReboot(dir, flushed) {
  const file = path.join(dir, 'flush-state')
  const record = fs.readFileSync(file)
  assert.equal(record.length, RECORD_LEN)
  assert.equal(record.subarray(0, 8).toString('latin1'), 'LMCFLSH1')
  record.fill(0, BOOT_AT, FLUSHED_AT)
  record.write('a boot before the crash', BOOT_AT, 'latin1')
  if (flushed !== undefined) record.writeBigUInt64LE(BigInt(flushed), FLUSHED_AT)
  fs.writeFileSync(file, record)
}

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-flush-'))

async function valueIn(dir) {
  const cache = await openLmdbCache({ path: dir })
  try {
    return await cache.get('k')
  } finally {
    await cache.close()
  }
}

async function writeEach(dir, values, durability) {
  for (const v of values) {
    const cache = await openLmdbCache({ path: dir, durability })
    await cache.set('k', v)
    await cache.close()
  }
}

test('after a reboot, the first open undoes a last commit not recorded as flushed, once', { skip: !onLinux && why }, async () => {
  const dir = tempDir()
  try {
    await writeEach(dir, ['first', 'second'])
    playReboot(dir, 0)
    assert.equal(await valueIn(dir), 'first', 'the last commit was rolled back')
    assert.equal(await valueIn(dir), 'first', 'and nothing more at the next open of this boot')
    await writeEach(dir, ['third'])
    assert.equal(await valueIn(dir), 'third')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test("after a reboot, a commit recorded as flushed is kept: closing records 'durable' commits, 'strict' ones record themselves", {
  skip: !onLinux && why,
}, async () => {
  const dir = tempDir()
  try {
    await writeEach(dir, ['first', 'second'])
    playReboot(dir)
    assert.equal(await valueIn(dir), 'second')

    // A 'strict' commit is recorded (with an fsync) before its promise resolves: a process
    // killed right after it leaves it recorded all the same.
    const cache = await openLmdbCache({ path: dir, durability: 'strict' })
    await cache.set('k', 'strict')
    const record = fs.readFileSync(path.join(dir, 'flush-state'))
    await cache.close()
    playReboot(dir, record.readBigUInt64LE(FLUSHED_AT))
    assert.equal(await valueIn(dir), 'strict')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('a rollback that another process (outside this package) keeps from running fails with ERR_RECOVERY_BUSY, and runs at the next open', {
  skip: !onLinux && why,
  timeout: 120_000,
}, async (t) => {
  const { exe, skip } = buildHolder()
  if (skip) return t.skip(skip)
  const dir = tempDir()
  try {
    await writeEach(dir, ['first', 'second'])
    playReboot(dir, 0)
    const holder = holdWriterLock(exe, dir)
    await holder.holding
    await assert.rejects(openLmdbCache({ path: dir }), (e) => e.code === 'ERR_RECOVERY_BUSY' && /crash recovery/.test(e.message))
    holder.release()
    assert.equal(await holder.exited, 0)
    assert.equal(await valueIn(dir), 'first')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
