// A damaged or truncated data.mdb is refused at open with ERR_INVALID_DATABASE instead of
// killing the process, and `lmdb-cache verify` reports damage that would fault on reading
// (from a child process) without crashing its caller. Files are made by the package itself.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { CLI, run, tempDir } from './support/cli-helpers.js'

const INDEX_URL = new URL('../index.js', import.meta.url).href
const PAGE = 4096

// Writes a cache of `count` entries (a third with an expiry) in a child process.
async function makeCache(dir, count = 20_000) {
  const script = `import { openLmdbCache } from ${JSON.stringify(INDEX_URL)}
const cache = await openLmdbCache({ path: ${JSON.stringify(dir)} })
for (let i = 0; i < ${count}; i += 500) {
  await cache.batch(Array.from({ length: 500 }, (_, j) => ({ type: 'put', key: 'key' + String(i + j).padStart(6, '0'), value: { n: i + j, s: 'x'.repeat(100) }, ttlMs: (i + j) % 3 ? undefined : 3_600_000 })))
}
await cache.close()`
  const made = await run(process.execPath, ['--input-type=module', '-e', script])
  assert.equal(made.code, 0, made.stderr)
}

// Opens the cache in a child process; resolves what the child printed and how it ended.
async function openInChild(dir) {
  const script = `import { openLmdbCache } from ${JSON.stringify(INDEX_URL)}
try {
  const cache = await openLmdbCache({ path: ${JSON.stringify(dir)} })
  console.log('opened', await cache.get('key000001') === undefined ? 'empty' : 'with data')
  await cache.close()
} catch (e) { console.log(e.code, e.message) }`
  return run(process.execPath, ['--input-type=module', '-e', script])
}

function overwrite(file, offset, bytes) {
  const fd = fs.openSync(file, 'r+')
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, offset)
  } finally {
    fs.closeSync(fd)
  }
}

// The offset of the meta page LMDB opens (the one with the larger transaction id).
function newestMeta(file) {
  const head = Buffer.alloc(2 * PAGE)
  const fd = fs.openSync(file, 'r')
  fs.readSync(fd, head, 0, head.length, 0)
  fs.closeSync(fd)
  return head.readBigUInt64LE(PAGE + 16 + 128) > head.readBigUInt64LE(16 + 128) ? PAGE : 0
}

test('a data.mdb truncated to half its length is refused with ERR_INVALID_DATABASE; open, stats and verify survive it', { timeout: 120_000 }, async () => {
  const dir = tempDir('lmdb-cache-damaged-')
  try {
    await makeCache(dir)
    const file = path.join(dir, 'data.mdb')
    fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2))
    const opened = await openInChild(dir)
    assert.equal(opened.signal, null, `the process died of ${opened.signal}`)
    assert.equal(opened.code, 0, opened.stderr)
    assert.match(opened.stdout, /^ERR_INVALID_DATABASE .*truncated/)

    const stats = await run(process.execPath, [CLI, 'stats', dir])
    assert.equal(stats.signal, null, `stats died of ${stats.signal}`)
    assert.equal(stats.code, 1)
    assert.match(stats.stderr, /truncated.*\[ERR_INVALID_DATABASE\]/)

    const verify = await run(process.execPath, [CLI, 'verify', dir])
    assert.equal(verify.code, 1, verify.stderr)
    assert.match(verify.stdout, /^damaged: .*truncated/)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('a damaged meta page (magic, root page) is refused with ERR_INVALID_DATABASE naming what is wrong', { timeout: 120_000 }, async () => {
  const dir = tempDir('lmdb-cache-damaged-')
  try {
    await makeCache(dir, 2_000)
    const file = path.join(dir, 'data.mdb')
    const healthy = fs.readFileSync(file)
    const meta = newestMeta(file)

    overwrite(file, meta + 16, Buffer.from([0, 0, 0, 0])) // mm_magic
    let opened = await openInChild(dir)
    assert.equal(opened.signal, null)
    assert.match(opened.stdout, /^ERR_INVALID_DATABASE .*magic 0x00000000/)

    // A main database root past the last page read as an empty cache before.
    fs.writeFileSync(file, healthy)
    const root = Buffer.alloc(8)
    root.writeBigUInt64LE(5_000_000n)
    overwrite(file, meta + 16 + 112, root)
    opened = await openInChild(dir)
    assert.equal(opened.signal, null)
    assert.match(opened.stdout, /^ERR_INVALID_DATABASE .*root page 5000000/)

    fs.writeFileSync(file, healthy)
    opened = await openInChild(dir)
    assert.equal(opened.stdout.trim(), 'opened with data')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('lmdb-cache verify: OK with counts on a healthy cache (exit 0), writing nothing', { timeout: 120_000 }, async () => {
  const dir = tempDir('lmdb-cache-damaged-')
  try {
    await makeCache(dir)
    const before = fs.readFileSync(path.join(dir, 'data.mdb'))
    const verify = await run(process.execPath, [CLI, 'verify', dir])
    assert.equal(verify.code, 0, verify.stderr + verify.stdout)
    assert.equal(verify.stdout, 'OK: 20,000 entries, 6,667 expiry index rows, every record readable\n')
    assert.ok(fs.readFileSync(path.join(dir, 'data.mdb')).equals(before), 'verify changed data.mdb')
    const json = await run(process.execPath, [CLI, 'verify', dir, '--json'])
    assert.equal(json.code, 0)
    assert.deepEqual(JSON.parse(json.stdout).entries, 20_000)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('lmdb-cache verify: garbage over leaf pages in the middle is reported (exit 1), the caller stays alive', { timeout: 120_000 }, async () => {
  const dir = tempDir('lmdb-cache-damaged-')
  try {
    await makeCache(dir)
    const file = path.join(dir, 'data.mdb')
    const pages = Math.floor(fs.statSync(file).size / PAGE)
    // A fixed pseudo-random pattern over 40 pages in the middle of the file.
    const garbage = Buffer.alloc(40 * PAGE)
    let x = 12345
    for (let i = 0; i < garbage.length; i++) {
      x = (x * 1103515245 + 12345) >>> 0
      garbage[i] = x >>> 24
    }
    const first = Math.floor(pages / 2)
    overwrite(file, first * PAGE, garbage)
    const verify = await run(process.execPath, [CLI, 'verify', dir])
    assert.equal(verify.signal, null, 'the CLI itself must not crash')
    assert.equal(verify.code, 1, verify.stderr + verify.stdout)
    assert.match(verify.stdout, /^damaged: /)
    assert.match(verify.stdout, /restore a backup/)
    // The damage is named by page: the garbage pages in use, each "its header names page X".
    const named = [...verify.stdout.matchAll(/damaged at page (\d+): (.*)/g)].map((m) => ({ page: Number(m[1]), detail: m[2] }))
    assert.ok(named.length > 0, verify.stdout)
    for (const { page, detail } of named) {
      assert.ok(page >= first && page < first + 40, `page ${page} lies outside the garbage: ${detail}`)
      assert.match(detail, /^its header names page \d+$/)
    }
    const json = JSON.parse((await run(process.execPath, [CLI, 'verify', dir, '--json'])).stdout)
    assert.equal(json.ok, false)
    assert.match(json.message, /^damaged: /)
    assert.deepEqual(json.damagedPages, named)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('lmdb-cache verify names a damaged page by its number: a page whose header names another page', { timeout: 120_000 }, async () => {
  const dir = tempDir('lmdb-cache-damaged-')
  try {
    await makeCache(dir, 2_000)
    const file = path.join(dir, 'data.mdb')
    const head = fs.readFileSync(file).subarray(0, 2 * PAGE)
    // The main database's root page (MDB_db.md_root of the newest meta page).
    const root = Number(head.readBigUInt64LE(newestMeta(file) + 16 + 72 + 40))
    const wrong = Buffer.alloc(8)
    wrong.writeBigUInt64LE(987_654n)
    overwrite(file, root * PAGE, wrong)
    const verify = await run(process.execPath, [CLI, 'verify', dir])
    assert.equal(verify.signal, null)
    assert.equal(verify.code, 1, verify.stderr + verify.stdout)
    assert.match(verify.stdout, new RegExp(`^damaged: 1 damaged page:\n  damaged at page ${root}: its header names page 987654\n`))
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
