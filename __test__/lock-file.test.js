// lock.mdb deleted under a running process (forbidden, and documented so): that process and
// any that opens the directory afterwards use different lock files, so their writers no longer
// exclude each other and pages are reused under reads. The process that lost its lock file
// must stop at once with ERR_LOCK_FILE_REPLACED (scans, count, stats and writes) rather than
// iterate for ever over a tree changing under it or damage it further.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { cacheStats, openLmdbCache } from '../index.js'

const INDEX = new URL('../index.js', import.meta.url).href
const N = 20_000

async function filled(dir) {
  const cache = await openLmdbCache({ path: dir })
  for (let i = 0; i < N; i += 5_000) {
    await cache.batch(Array.from({ length: 5_000 }, (_, j) => ({ type: 'put', key: `k${String(i + j).padStart(6, '0')}`, value: { n: i + j } })))
  }
  return cache
}

const replaced = (error) => error.code === 'ERR_LOCK_FILE_REPLACED' && /lock\.mdb .* deleted or replaced/.test(error.message)

test('with its lock.mdb deleted, a process refuses scans, counts, stats and writes with ERR_LOCK_FILE_REPLACED', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-lockfile-'))
  try {
    const cache = await filled(dir)
    assert.equal(await cache.count(), N)
    fs.rmSync(path.join(dir, 'lock.mdb'))
    await assert.rejects(async () => {
      for await (const _ of cache.entries()) {
        // nothing: the first page already fails
      }
    }, replaced)
    await assert.rejects(cache.count(), replaced)
    await assert.rejects(cacheStats(cache), replaced)
    await assert.rejects(cache.set('k', 1), replaced)
    await assert.rejects(cache.sweepExpired(), replaced)
    // Single reads go on (each record is checked against its checksum); close works.
    assert.deepEqual(await cache.get('k000001'), { n: 1 })
    await cache.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('with lock.mdb deleted while another process writes through a new one, an iteration here ends', { timeout: 60_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-lockfile-'))
  let writer = null
  try {
    const cache = await filled(dir)
    fs.rmSync(path.join(dir, 'lock.mdb'))
    // Another process opens the directory (creating a new lock.mdb) and rewrites it.
    const script = `
      import { openLmdbCache, cacheStats } from ${JSON.stringify(INDEX)}
      const cache = await openLmdbCache({ path: ${JSON.stringify(dir)} })
      for (let round = 0; ; round++) {
        const ops = []
        for (let j = 0; j < 1000; j++) {
          const key = 'k' + String((round * 7919 + j * 31) % ${N}).padStart(6, '0')
          ops.push(j % 2 ? { type: 'del', key } : { type: 'put', key, value: { round, pad: 'p'.repeat(j % 300) } })
        }
        await cache.batch(ops)
        if (round === 3) process.stdout.write(JSON.stringify(await cacheStats(cache)) + '\\n')
      }`
    writer = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    // Its stats (through the new lock file) answer: they do not hang.
    const stats = await new Promise((resolve, reject) => {
      let out = ''
      writer.stdout.setEncoding('utf8').on('data', (chunk) => {
        out += chunk
        if (out.includes('\n')) resolve(JSON.parse(out))
      })
      writer.once('exit', (code) => reject(new Error(`the writer exited with ${code}`)))
    })
    assert.ok(stats.entries > 0)
    // Here: the iteration ends, at once, with the code; it never yields more than there is.
    let yielded = 0
    await assert.rejects(async () => {
      for await (const _ of cache.entries()) yielded++
    }, replaced)
    assert.ok(yielded <= N, `${yielded} entries yielded`)
    await cache.close()
  } finally {
    if (writer !== null) writer.kill('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
