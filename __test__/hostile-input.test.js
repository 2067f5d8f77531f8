// Hostile and extreme input: every case must leave the process alive and fail (if it fails)
// with a stable `code`, writing nothing it should not.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { openLmdbCache } from '../index.js'

const INDEX_URL = pathToFileURL(fileURLToPath(new URL('../index.js', import.meta.url))).href
const MiB = 1024 * 1024

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-hostile-'))
}

async function withTemp(fn) {
  const dir = tempDir()
  try {
    return await fn(dir)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

async function withCache(fn, options = {}) {
  return withTemp(async (dir) => {
    const cache = await openLmdbCache({ path: path.join(dir, 'db'), ...options })
    try {
      return await fn(cache, dir)
    } finally {
      await cache.close()
    }
  })
}

/** `call()` must return a promise (not throw) that rejects with Kind and `code`. */
async function rejectsWith(call, Kind, code, what) {
  let promise
  try {
    promise = call()
  } catch (error) {
    assert.fail(`${what}: threw synchronously (${error.code}: ${error.message})`)
  }
  await assert.rejects(
    promise,
    (error) => {
      assert.ok(error instanceof Kind, `${what}: expected a ${Kind.name}, got ${error?.constructor?.name}: ${error?.message}`)
      assert.equal(error.code, code, `${what}: code ${error.code} (${error.message})`)
      return true
    },
    `${what}: no rejection`,
  )
}

async function allEntries(cache) {
  const out = []
  for await (const entry of cache.entries()) out.push(entry)
  return out
}

// ---------------------------------------------------------------------------------------
// Keys

const NON_STRING_KEYS = [
  ['a number', 1],
  ['zero', 0],
  ['NaN', NaN],
  ['null', null],
  ['undefined', undefined],
  ['a boolean', true],
  ['a plain object', {}],
  ['an object with toString', { toString: () => 'k' }],
  ['an array', ['k']],
  ['a symbol', Symbol('k')],
  ['a bigint', 10n],
  ['a Buffer', Buffer.from('k')],
  ['a String object', new String('k')],
  ['a function', () => 'k'],
  ['a Date', new Date(0)],
]

test('non-string keys reject with a TypeError coded ERR_INVALID_KEY from every method, and write nothing', async () => {
  await withCache(async (root) => {
    await root.set('k', 'kept')
    for (const cache of [root, root.withNamespace('ns')]) {
      for (const [name, key] of NON_STRING_KEYS) {
        await rejectsWith(() => cache.get(key), TypeError, 'ERR_INVALID_KEY', `get(${name})`)
        await rejectsWith(() => cache.has(key), TypeError, 'ERR_INVALID_KEY', `has(${name})`)
        await rejectsWith(() => cache.set(key, 1), TypeError, 'ERR_INVALID_KEY', `set(${name})`)
        await rejectsWith(() => cache.del(key), TypeError, 'ERR_INVALID_KEY', `del(${name})`)
        await rejectsWith(
          () =>
            cache.batch([
              { type: 'put', key: 'fine', value: 1 },
              { type: 'put', key, value: 2 },
            ]),
          TypeError,
          'ERR_INVALID_KEY',
          `batch put(${name})`,
        )
        await rejectsWith(
          () =>
            cache.batch([
              { type: 'del', key: 'k' },
              { type: 'del', key },
            ]),
          TypeError,
          'ERR_INVALID_KEY',
          `batch del(${name})`,
        )
      }
    }
    assert.deepEqual(await allEntries(root), [['k', 'kept']])
  })
})

test('a 1 MiB key round-trips through set, get, has, entries, batch and del, in the root and in a namespace', async () => {
  await withCache(async (root) => {
    const ascii = 'k'.repeat(MiB)
    const sibling = `${'k'.repeat(MiB - 1)}j` // shares all but the last character
    const wide = 'é'.repeat(MiB / 2) // 1 MiB of UTF-8 in half as many UTF-16 units
    for (const cache of [root, root.withNamespace('ns'), root.withNamespace('n'.repeat(600))]) {
      await cache.set(ascii, { which: 'ascii' })
      await cache.batch([
        { type: 'put', key: sibling, value: { which: 'sibling' } },
        { type: 'put', key: wide, value: { which: 'wide' } },
      ])
      assert.deepEqual(await cache.get(ascii), { which: 'ascii' })
      assert.deepEqual(await cache.get(sibling), { which: 'sibling' })
      assert.deepEqual(await cache.get(wide), { which: 'wide' })
      assert.equal(await cache.has(ascii), true)
      assert.equal(await cache.get(`${ascii}x`), undefined)
      const entries = await allEntries(cache)
      assert.equal(entries.length, 3)
      assert.deepEqual(entries.map(([key, value]) => [key.length, key === ascii || key === sibling || key === wide, value.which]).sort(), [
        [MiB, true, 'ascii'],
        [MiB, true, 'sibling'],
        [MiB / 2, true, 'wide'],
      ])
      await cache.del(ascii)
      await cache.batch([{ type: 'del', key: wide }])
      assert.equal(await cache.has(ascii), false)
      assert.equal(await cache.has(wide), false)
      assert.deepEqual(await cache.get(sibling), { which: 'sibling' })
      await cache.del(sibling)
      assert.deepEqual(await allEntries(cache), [])
    }
  })
})

test('a 64 MiB value round-trips, also after reopening', { timeout: 60_000 }, async () => {
  await withTemp(async (dir) => {
    const db = path.join(dir, 'db')
    const big = `${'x'.repeat(64 * MiB - 10)}é😀end`
    let cache = await openLmdbCache({ path: db })
    await cache.set('big', big)
    await cache.set('small', 1)
    assert.equal(await cache.get('big'), big)
    assert.equal(await cache.has('big'), true)
    const [[key, value]] = await allEntries(cache.withNamespace('')).then((all) => all.filter(([k]) => k === 'big'))
    assert.equal(key, 'big')
    assert.equal(value.length, big.length)
    await cache.close()
    cache = await openLmdbCache({ path: db })
    assert.equal(await cache.get('big'), big)
    assert.equal(await cache.get('small'), 1)
    await cache.del('big')
    assert.equal(await cache.get('big'), undefined)
    await cache.close()
  })
})

// ---------------------------------------------------------------------------------------
// Values

function circularObject() {
  const o = { a: 1 }
  o.self = o
  return o
}

function circularArray() {
  const a = [1]
  a.push([a])
  return a
}

const UNENCODABLE = [
  ['a bigint', () => 10n],
  ['a nested bigint', () => ({ a: [1, { b: 2n }] })],
  ['a circular object', circularObject],
  ['a circular array', circularArray],
  [
    'a throwing toJSON',
    () => ({
      toJSON() {
        throw new Error('no')
      },
    }),
  ],
  [
    'a throwing getter',
    () => ({
      get x() {
        throw new Error('no')
      },
    }),
  ],
  [
    'a proxy that throws',
    () =>
      new Proxy(
        {},
        {
          ownKeys() {
            throw new Error('no')
          },
        },
      ),
  ],
]

test('values JSON cannot encode reject with a TypeError coded ERR_INVALID_VALUE and write nothing', async () => {
  await withCache(async (root) => {
    for (const cache of [root, root.withNamespace('ns')]) {
      await cache.set('k', 'before')
      for (const [name, make] of UNENCODABLE) {
        await rejectsWith(() => cache.set('k', make()), TypeError, 'ERR_INVALID_VALUE', `set(${name})`)
        await rejectsWith(() => cache.set('fresh', make()), TypeError, 'ERR_INVALID_VALUE', `set(${name}) of a new key`)
        await rejectsWith(
          () =>
            cache.batch([
              { type: 'put', key: 'a', value: 1 },
              { type: 'del', key: 'k' },
              { type: 'put', key: 'b', value: make() },
              { type: 'put', key: 'c', value: 3 },
            ]),
          TypeError,
          'ERR_INVALID_VALUE',
          `batch with ${name}`,
        )
        await rejectsWith(() => cache.set('k', 1, { ttlMs: 10n }), TypeError, 'ERR_INVALID_TTL', 'a bigint ttl')
      }
      assert.equal(await cache.get('k'), 'before')
      for (const key of ['fresh', 'a', 'b', 'c']) assert.equal(await cache.has(key), false, key)
    }
    assert.deepEqual(await allEntries(root), [
      ['k', 'before'],
      ['ns\u241Fk', 'before'],
    ])
    // The cache still works after all that.
    await root.set('after', { ok: true })
    assert.deepEqual(await root.get('after'), { ok: true })
  })
})

// ---------------------------------------------------------------------------------------
// Huge batches

test('a batch of 100,000 operations is applied atomically and completely', { timeout: 60_000 }, async () => {
  await withCache(async (cache) => {
    const N = 100_000
    const ops = Array.from({ length: N }, (_, i) => ({ type: 'put', key: `k${String(i).padStart(6, '0')}`, value: { i } }))
    // While it commits, readers (polling between turns) never see a part of it. Each read is
    // its own snapshot and the commit may land between two of them, so what holds is: once
    // one key was seen, every later read sees every key.
    const committing = cache.batch(ops)
    let settled = false
    committing.then(
      () => (settled = true),
      () => (settled = true),
    )
    let polls = 0
    while (!settled) {
      const first = await cache.has('k000000')
      const last = await cache.has('k099999')
      const middle = await cache.get('k050000')
      const firstAgain = await cache.has('k000000')
      const seen = [first, last, middle !== undefined, firstAgain]
      for (let i = 1; i < seen.length; i++) assert.ok(!seen[i - 1] || seen[i], `part of the batch was visible: ${seen}`)
      if (middle !== undefined) assert.deepEqual(middle, { i: 50_000 })
      polls++
      await new Promise((resolve) => setImmediate(resolve))
    }
    await committing
    for (let i = 0; i < N; i += 997) assert.deepEqual(await cache.get(`k${String(i).padStart(6, '0')}`), { i })
    let count = 0
    for await (const [key, value] of cache.entries()) {
      assert.equal(key, `k${String(count).padStart(6, '0')}`)
      assert.equal(value.i, count)
      count++
    }
    assert.equal(count, N)

    // 100,000 mixed operations: delete the even keys, rewrite the odd ones.
    await cache.batch(
      Array.from({ length: N }, (_, i) =>
        i % 2 === 0 ? { type: 'del', key: `k${String(i).padStart(6, '0')}` } : { type: 'put', key: `k${String(i).padStart(6, '0')}`, value: -i },
      ),
    )
    count = 0
    for await (const [key, value] of cache.entries()) {
      assert.equal(value, -Number(key.slice(1)))
      count++
    }
    assert.equal(count, N / 2)

    // 100,000 operations whose very last value is bad: nothing at all is written.
    const poisoned = Array.from({ length: N }, (_, i) => ({ type: 'put', key: `z${i}`, value: i }))
    poisoned.push({ type: 'put', key: 'z-last', value: 1n })
    await rejectsWith(() => cache.batch(poisoned), TypeError, 'ERR_INVALID_VALUE', 'poisoned batch')
    assert.equal(await cache.has('z0'), false)
    assert.equal(await cache.has('z99999'), false)
    console.log(`# 100k batch: ${polls} polls while it committed`)
  })
})

test('a batch of 100,000 operations that does not fit under maxMapSize is refused whole', { timeout: 60_000 }, async () => {
  await withCache(
    async (cache) => {
      await cache.set('before', 1)
      const ops = Array.from({ length: 100_000 }, (_, i) => ({ type: 'put', key: `k${i}`, value: 'v'.repeat(100) }))
      await assert.rejects(cache.batch(ops), { code: 'ERR_CACHE_FULL' })
      assert.equal(await cache.has('k0'), false)
      assert.equal(await cache.has('k99999'), false)
      assert.deepEqual(await allEntries(cache), [['before', 1]])
      await cache.set('after', 2)
      assert.equal(await cache.get('after'), 2)
    },
    { mapSize: MiB, maxMapSize: 4 * MiB },
  )
})

// ---------------------------------------------------------------------------------------
// Paths and foreign files

test('a path that is a file, or that goes through a file, is refused with ERR_NOT_A_DIRECTORY', async () => {
  await withTemp(async (dir) => {
    const file = path.join(dir, 'file')
    fs.writeFileSync(file, 'not a directory')
    const link = path.join(dir, 'link-to-file')
    fs.symlinkSync(file, link)
    for (const target of [file, link, path.join(file, 'sub'), path.join(file, 'sub', 'deeper')]) {
      await rejectsWith(() => openLmdbCache({ path: target }), Error, 'ERR_NOT_A_DIRECTORY', target)
    }
    assert.equal(fs.readFileSync(file, 'utf8'), 'not a directory')
    assert.deepEqual(fs.readdirSync(dir).sort(), ['file', 'link-to-file'])
  })
})

test('a symlink to a directory is followed, and two spellings of one directory share it', async () => {
  await withTemp(async (dir) => {
    const real = path.join(dir, 'real')
    fs.mkdirSync(real)
    fs.symlinkSync(real, path.join(dir, 'alias'))
    const a = await openLmdbCache({ path: real })
    const b = await openLmdbCache({ path: path.join(dir, 'alias', '.', '') })
    await a.set('k', 1)
    assert.equal(await b.get('k'), 1)
    await a.close()
    await b.close()
    assert.ok(fs.existsSync(path.join(real, 'data.mdb')))
  })
})

const FOREIGN_FILES = [
  ['64 KiB of pseudo-random bytes', () => Buffer.from(Array.from({ length: 64 * 1024 }, (_, i) => (i * 2654435761) >>> 24))],
  ['a short text', () => Buffer.from('hello, I am not a database\n')],
  ['10 bytes', () => Buffer.from('0123456789')],
  ['one page of zeros', () => Buffer.alloc(4096)],
  ['two pages of 0xFF', () => Buffer.alloc(8192, 0xff)],
  ['a SQLite header', () => Buffer.concat([Buffer.from('SQLite format 3\0'), Buffer.alloc(4080, 1)])],
]

test('a directory holding a data.mdb that is not LMDB is refused with ERR_INVALID_DATABASE and left byte for byte', async () => {
  for (const [name, make] of FOREIGN_FILES) {
    await withTemp(async (dir) => {
      const content = make()
      fs.writeFileSync(path.join(dir, 'data.mdb'), content)
      await rejectsWith(() => openLmdbCache({ path: dir }), Error, 'ERR_INVALID_DATABASE', name)
      // Twice: a failed open leaves nothing behind in the process either.
      await rejectsWith(() => openLmdbCache({ path: dir }), Error, 'ERR_INVALID_DATABASE', `${name}, again`)
      assert.ok(fs.readFileSync(path.join(dir, 'data.mdb')).equals(content), `${name}: data.mdb was modified`)
    })
  }
})

test('an empty data.mdb is not data of anyone: it opens as a fresh cache', async () => {
  // LMDB itself treats a zero-length data file as a new environment.
  await withTemp(async (dir) => {
    fs.writeFileSync(path.join(dir, 'data.mdb'), '')
    const cache = await openLmdbCache({ path: dir })
    await cache.set('k', 1)
    assert.equal(await cache.get('k'), 1)
    await cache.close()
  })
})

/** Runs an ESM snippet in a child process from the package directory (so `lmdb` resolves). */
function runChild(source, args = [], options = {}) {
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', source, '--', ...args], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    encoding: 'utf8',
    timeout: 30_000,
    ...options,
  })
  assert.equal(result.status, 0, `child failed: ${result.stderr}`)
  return result.stdout.trim()
}

test("a directory holding another program's LMDB environment (lmdb-js) is refused and not modified", async () => {
  await withTemp(async (dir) => {
    // Created in a child process, so that lmdb-js's environment is closed for sure.
    runChild(
      `import { open } from 'lmdb'
       const db = open({ path: process.argv[1] })
       for (let i = 0; i < 100; i++) await db.put('key' + i, { i })
       await db.openDB('other').put('x', 'y')
       await db.close()`,
      [dir],
    )
    const data = path.join(dir, 'data.mdb')
    const before = fs.readFileSync(data)
    await rejectsWith(() => openLmdbCache({ path: dir }), Error, 'ERR_INVALID_DATABASE', 'lmdb-js environment')
    await rejectsWith(() => openLmdbCache({ path: dir, durability: 'strict' }), Error, 'ERR_INVALID_DATABASE', 'again')
    assert.ok(fs.readFileSync(data).equals(before), 'data.mdb was modified')
    // lmdb-js still reads its data.
    const read = runChild(
      `import { open } from 'lmdb'
       const db = open({ path: process.argv[1] })
       console.log(JSON.stringify([db.get('key42'), db.openDB('other').get('x')]))
       await db.close()`,
      [dir],
    )
    assert.equal(read, '[{"i":42},"y"]')
  })
})

test("another program's LMDB environment is refused while that program has it open, and it carries on", async () => {
  await withTemp(async (dir) => {
    const source = `import { open } from 'lmdb'
      const db = open({ path: process.argv[1] })
      for (let i = 0; i < 100; i++) await db.put('key' + i, { i })
      console.log('ready')
      process.stdin.once('data', async () => {
        await db.put('after', 1)
        console.log(JSON.stringify([db.get('key42'), db.get('after')]))
        await db.close()
        process.exit(0)
      })`
    const child = spawn(process.execPath, ['--input-type=module', '-e', source, '--', dir], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    try {
      let out = ''
      const exited = new Promise((resolve) => child.once('exit', resolve))
      await new Promise((resolve, reject) => {
        child.stdout.on('data', (chunk) => {
          out += chunk
          if (out.includes('ready')) resolve()
        })
        exited.then(() => reject(new Error(`lmdb-js child exited early: ${out}`)))
      })
      const files = ['data.mdb', 'lock.mdb'].map((f) => [f, fs.readFileSync(path.join(dir, f))])
      await rejectsWith(() => openLmdbCache({ path: dir }), Error, 'ERR_INVALID_DATABASE', 'lmdb-js environment in use')
      for (const [f, before] of files) assert.ok(fs.readFileSync(path.join(dir, f)).equals(before), `${f} was modified`)
      child.stdin.write('go\n')
      assert.equal(await exited, 0)
      assert.equal(out.trim().split('\n').pop(), '[{"i":42},1]')
    } finally {
      child.kill('SIGKILL')
    }
  })
})

// ---------------------------------------------------------------------------------------
// Permissions

const PERMISSION_CASES = `
  const { openLmdbCache } = await import(process.argv[1])
  const base = process.argv[2]
  const out = {}
  for (const name of ['read-only', 'no-access', 'read-only/new', 'existing-read-only']) {
    try {
      const cache = await openLmdbCache({ path: base + '/' + name })
      await cache.close()
      out[name] = 'opened'
    } catch (error) {
      out[name] = error.code
    }
  }
  console.log(JSON.stringify(out))
`

/** Directories this process may not write or enter (meaningful for a non-root user). */
async function makePermissionCases(base) {
  fs.mkdirSync(path.join(base, 'read-only'), { mode: 0o555 })
  fs.mkdirSync(path.join(base, 'no-access'), { mode: 0o000 })
  const existing = path.join(base, 'existing-read-only')
  const cache = await openLmdbCache({ path: existing })
  await cache.set('k', 1)
  await cache.close()
  for (const f of fs.readdirSync(existing)) fs.chmodSync(path.join(existing, f), 0o444)
  fs.chmodSync(existing, 0o555)
  fs.chmodSync(base, 0o755)
  for (const d of ['read-only', 'no-access']) fs.chmodSync(path.join(base, d), d === 'no-access' ? 0o000 : 0o555)
}

const EXPECTED_PERMISSIONS = {
  'read-only': 'ERR_PERMISSION_DENIED',
  'no-access': 'ERR_PERMISSION_DENIED',
  'read-only/new': 'ERR_PERMISSION_DENIED',
  'existing-read-only': 'ERR_PERMISSION_DENIED',
}

test('directories without write or search permission are refused with ERR_PERMISSION_DENIED', {
  skip: process.getuid?.() === 0 ? 'running as root, which bypasses file permissions (see the next test)' : false,
}, async () => {
  await withTemp(async (dir) => {
    await makePermissionCases(dir)
    try {
      for (const [name, code] of Object.entries(EXPECTED_PERMISSIONS)) {
        await rejectsWith(() => openLmdbCache({ path: path.join(dir, name) }), Error, code, name)
      }
    } finally {
      for (const d of ['read-only', 'no-access', 'existing-read-only']) fs.chmodSync(path.join(dir, d), 0o755)
    }
  })
})

test('as root: the same directories refuse an unprivileged child process with ERR_PERMISSION_DENIED', {
  skip: process.getuid?.() !== 0 ? 'only meaningful when running as root' : false,
}, async (t) => {
  await withTemp(async (dir) => {
    await makePermissionCases(dir)
    try {
      const probe = spawnSync(process.execPath, ['-e', 'process.exit(0)'], { uid: 65534, gid: 65534 })
      if (probe.status !== 0) return t.skip('cannot start a process as uid 65534 here')
      const access = spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(fileURLToPath(INDEX_URL))})`], {
        uid: 65534,
        gid: 65534,
      })
      if (access.status !== 0) return t.skip('uid 65534 cannot read the package files')
      const result = JSON.parse(runChild(PERMISSION_CASES, [INDEX_URL, dir], { uid: 65534, gid: 65534, cwd: '/' }))
      assert.deepEqual(result, EXPECTED_PERMISSIONS)
    } finally {
      for (const d of ['read-only', 'no-access', 'existing-read-only']) fs.chmodSync(path.join(dir, d), 0o755)
    }
  })
})

// ---------------------------------------------------------------------------------------
// Options

const BAD_OPTIONS = [
  ['no options', () => undefined, 'ERR_INVALID_OPTIONS'],
  ['null', () => null, 'ERR_INVALID_OPTIONS'],
  ['a string', () => '/tmp/x', 'ERR_INVALID_OPTIONS'],
  ['a number', () => 42, 'ERR_INVALID_OPTIONS'],
  ['an array', () => [], 'ERR_INVALID_OPTIONS'],
  ['no path', () => ({}), 'ERR_INVALID_OPTIONS'],
  ['an empty path', () => ({ path: '' }), 'ERR_INVALID_OPTIONS'],
  ['a numeric path', () => ({ path: 1 }), 'ERR_INVALID_OPTIONS'],
  ['a null path', () => ({ path: null }), 'ERR_INVALID_OPTIONS'],
  ['a Buffer path', () => ({ path: Buffer.from('/tmp/x') }), 'ERR_INVALID_OPTIONS'],
  ['a URL path', () => ({ path: new URL('file:///tmp/x') }), 'ERR_INVALID_OPTIONS'],
  ['a numeric namespace', (path) => ({ path, namespace: 1 }), 'ERR_INVALID_OPTIONS'],
  ['a null namespace', (path) => ({ path, namespace: null }), 'ERR_INVALID_OPTIONS'],
  ['an unknown durability', (path) => ({ path, durability: 'fast' }), 'ERR_INVALID_OPTIONS'],
  ['an empty durability', (path) => ({ path, durability: '' }), 'ERR_INVALID_OPTIONS'],
  ['an inherited property as durability', (path) => ({ path, durability: 'toString' }), 'ERR_INVALID_OPTIONS'],
  ['__proto__ as durability', (path) => ({ path, durability: '__proto__' }), 'ERR_INVALID_OPTIONS'],
  ['a numeric durability', (path) => ({ path, durability: 1 }), 'ERR_INVALID_OPTIONS'],
  ['a negative mapSize', (path) => ({ path, mapSize: -1 }), 'ERR_INVALID_OPTIONS'],
  ['a NaN mapSize', (path) => ({ path, mapSize: NaN }), 'ERR_INVALID_OPTIONS'],
  ['a string mapSize', (path) => ({ path, mapSize: '64' }), 'ERR_INVALID_OPTIONS'],
  ['a bigint mapSize', (path) => ({ path, mapSize: 64n }), 'ERR_INVALID_OPTIONS'],
  ['a negative maxMapSize', (path) => ({ path, maxMapSize: -1 }), 'ERR_INVALID_OPTIONS'],
  ['a null maxMapSize', (path) => ({ path, maxMapSize: null }), 'ERR_INVALID_OPTIONS'],
  ['a negative maxReaders', (path) => ({ path, maxReaders: -5 }), 'ERR_INVALID_OPTIONS'],
  ['a string maxReaders', (path) => ({ path, maxReaders: '16' }), 'ERR_INVALID_OPTIONS'],
  ['maxReaders beyond 32 bits', (path) => ({ path, maxReaders: 2 ** 32 }), 'ERR_INVALID_OPTIONS'],
  ['a fractional maxReaders', (path) => ({ path, maxReaders: 16.5 }), 'ERR_INVALID_OPTIONS'],
  // lock.mdb is sized by it: 2 ** 32 - 1 once wrote ~256 GiB of zeros before failing.
  ['maxReaders 2 ** 32 - 1', (path) => ({ path, maxReaders: 2 ** 32 - 1 }), 'ERR_INVALID_OPTIONS'],
  ['maxReaders 1e6', (path) => ({ path, maxReaders: 1e6 }), 'ERR_INVALID_OPTIONS'],
  ['maxReaders 2 ** 16 + 1', (path) => ({ path, maxReaders: 2 ** 16 + 1 }), 'ERR_INVALID_OPTIONS'],
  ['a negative fileMode', (path) => ({ path, fileMode: -1 }), 'ERR_INVALID_OPTIONS'],
  ['a fileMode past 0o777', (path) => ({ path, fileMode: 0o1000 }), 'ERR_INVALID_OPTIONS'],
  ['a string fileMode', (path) => ({ path, fileMode: '0644' }), 'ERR_INVALID_OPTIONS'],
  ['a fractional fileMode', (path) => ({ path, fileMode: 0o644 + 0.5 }), 'ERR_INVALID_OPTIONS'],
  ['a string defaultTtlMs', (path) => ({ path, defaultTtlMs: '1000' }), 'ERR_INVALID_TTL'],
  ['a NaN defaultTtlMs', (path) => ({ path, defaultTtlMs: NaN }), 'ERR_INVALID_TTL'],
]

test('bad options reject with a TypeError and a stable code, and create nothing', async () => {
  await withTemp(async (dir) => {
    for (const [name, options, code] of BAD_OPTIONS) {
      await rejectsWith(() => openLmdbCache(options(path.join(dir, 'never-created'))), TypeError, code, name)
    }
    assert.deepEqual(fs.readdirSync(dir), [])
  })
})

test('maxReaders 2 ** 16, the largest accepted, opens with a lock file of a few MiB', async () => {
  await withTemp(async (dir) => {
    const started = Date.now()
    const cache = await openLmdbCache({ path: dir, maxReaders: 2 ** 16 })
    try {
      await cache.set('k', 1)
      assert.equal(await cache.get('k'), 1)
    } finally {
      await cache.close()
    }
    const lockSize = fs.statSync(path.join(dir, 'lock.mdb')).size
    assert.ok(lockSize <= 8 * MiB, `lock.mdb is ${lockSize} bytes`)
    assert.ok(Date.now() - started < 10_000)
  })
})

test('maxMapSize: Infinity means no limit: the map grows past its initial size', { timeout: 30_000 }, async () => {
  await withCache(
    async (cache) => {
      const value = 'i'.repeat(MiB)
      for (let i = 0; i < 12; i++) await cache.set(`k${i}`, value)
      for (let i = 0; i < 12; i++) assert.equal((await cache.get(`k${i}`)).length, MiB)
    },
    { mapSize: 4 * MiB, maxMapSize: Infinity },
  )
})

test('a mapSize beyond the address space is refused as an invalid option and the path stays usable', async () => {
  await withTemp(async (dir) => {
    await assert.rejects(openLmdbCache({ path: dir, mapSize: 2 ** 50 }), (error) => {
      assert.equal(error.name, 'TypeError')
      assert.equal(error.code, 'ERR_INVALID_OPTIONS', error.message)
      return true
    })
    const cache = await openLmdbCache({ path: dir })
    await cache.set('k', 1)
    assert.equal(await cache.get('k'), 1)
    await cache.close()
  })
})

test('a path holding a NUL character is refused with ERR_INVALID_OPTIONS', async () => {
  await withTemp(async (dir) => {
    await assert.rejects(openLmdbCache({ path: path.join(dir, 'a\0b') }), { code: 'ERR_INVALID_OPTIONS' })
    assert.deepEqual(fs.readdirSync(dir), [])
  })
})

test('the buffer native code shares with JS cannot be detached by user code that gets hold of it', async () => {
  await withCache(async (cache) => {
    await cache.set('k', 'v'.repeat(300))
    // Code that patches Buffer.prototype sees the shared scratch buffer pass by.
    let captured = null
    const original = Buffer.prototype.utf8Write
    Buffer.prototype.utf8Write = function (...args) {
      if (this.length > 65536) captured = this
      return original.apply(this, args)
    }
    try {
      await cache.get('\u00e9')
    } finally {
      Buffer.prototype.utf8Write = original
    }
    assert.ok(captured !== null, 'the patch saw the scratch buffer')
    const length = captured.length
    // Transferring it would free its memory under native code; it is copied instead.
    const copy = structuredClone(captured.buffer, { transfer: [captured.buffer] })
    assert.equal(captured.length, length, 'still attached')
    assert.equal(copy.byteLength, captured.buffer.byteLength)
    assert.equal(await cache.get('k'), 'v'.repeat(300))
  })
})

test('opening a new cache on a full file system fails with ERR_DISK_FULL instead of killing the process', async (t) => {
  const mount = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-full-'))
  let mounted = false
  try {
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mount], { stdio: 'ignore' }).status !== 0) {
      t.skip('cannot mount a tmpfs here (needs root and mount permission)')
      return
    }
    mounted = true
    // Fill it, leaving less than a lock file needs.
    const filler = fs.openSync(path.join(mount, 'filler'), 'w')
    try {
      for (;;) fs.writeSync(filler, Buffer.alloc(4096))
    } catch (error) {
      assert.equal(error.code, 'ENOSPC')
    } finally {
      fs.closeSync(filler)
    }
    // In a child: a SIGBUS would kill it.
    const script = `import(${JSON.stringify(INDEX_URL)}).then(({ openLmdbCache }) => openLmdbCache({ path: ${JSON.stringify(path.join(mount, 'fresh'))} })).then(() => console.log('opened'), (e) => console.log(e.code))`
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 })
    assert.equal(child.signal, null, `the process died of ${child.signal}`)
    assert.equal(child.stdout.trim(), 'ERR_DISK_FULL', child.stderr)
    assert.equal(fs.existsSync(path.join(mount, 'fresh', 'lock.mdb')), false)
  } finally {
    if (mounted) spawnSync('umount', [mount], { stdio: 'ignore' })
    fs.rmSync(mount, { recursive: true, force: true })
  }
})
