// The lmdb-cache command-line tool, run as a real child process (node bin/lmdb-cache.js ...):
// every command's output, its --help, and its errors (one line, no stack trace, non-zero).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { openLevelBackedCache } from '../benchmark/backends/level-cache.js'
import { cacheStats, compactCacheTo, getEntry, openLmdbCache, putEntries } from '../index.js'
import { CACHE_DIR_FILES, CLI, SEP, cli, fingerprint, run, tempDir } from './support/cli-helpers.js'

const COMMANDS = ['migrate', 'stats', 'sweep', 'dump', 'load', 'compact']
const HOUR = 3_600_000

let work
before(() => {
  work = tempDir()
})
after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

/** A user error: the exit code, and one line on stderr naming the command, without a stack. */
function assertUserError(result, code, pattern, what) {
  const label = `${what}: ${JSON.stringify(result)}`
  assert.equal(result.code, code, label)
  const lines = result.stderr.trimEnd().split('\n')
  assert.equal(lines.length, 1, `one line on stderr: ${label}`)
  assert.match(lines[0], /^lmdb-cache( \w+)?: /, label)
  assert.match(lines[0], pattern, label)
  assert.doesNotMatch(result.stderr, /\n\s+at /, `no stack trace: ${label}`)
}

async function withCache(dir, fn, opts = {}) {
  const cache = await openLmdbCache({ path: dir, ...opts })
  try {
    return await fn(cache)
  } finally {
    await cache.close()
  }
}

/** A cache with root and namespaced keys, long and unicode keys, expiries, and expired entries. */
async function fillCache(dir, { expired = 0 } = {}) {
  const far = Date.now() + HOUR
  const entries = [
    { key: '', value: { empty: true } },
    { key: 'plain', value: 'text ✓', expiresAt: null },
    { key: 'number', value: 12.5, expiresAt: far },
    { key: 'fraction', value: [1, null, { deep: true }], expiresAt: far + 0.25 },
    { key: `users${SEP}ada`, value: { name: 'Ada', tags: ['x'] }, expiresAt: far + 7 },
    { key: `users${SEP}😀`, value: null },
    { key: `users/sessions${SEP}s1`, value: false, expiresAt: far },
    { key: `ключ${SEP}${'長'.repeat(300)}`, value: 'a long key' },
    { key: `a${SEP}b${SEP}c`, value: 'two separators' },
    { key: 'line\nbreak "quoted"', value: 'escapes' },
  ]
  await withCache(dir, async (cache) => {
    await putEntries(cache, entries)
    if (expired > 0) {
      const past = Date.now() - 1000
      await putEntries(
        cache,
        Array.from({ length: expired }, (_, i) => ({ key: `old${i}`, value: i, expiresAt: past })),
      )
    }
  })
  return entries
}

test('--help of the tool and of every command; no command, unknown command', async () => {
  const results = await Promise.all([
    cli(['--help']),
    cli(['help', 'dump']),
    cli([]),
    cli(['frobnicate']),
    cli(['--version']),
    ...COMMANDS.map((c, i) => cli([c, i % 2 === 0 ? '--help' : '-h'])),
  ])
  const [main, helpDump, none, unknown, version, ...perCommand] = results
  assert.equal(main.code, 0)
  for (const c of COMMANDS) assert.match(main.stdout, new RegExp(`\\n  ${c} `))
  assert.equal(helpDump.code, 0)
  assert.match(helpDump.stdout, /^Usage: lmdb-cache dump <dir>/)
  assert.equal(none.code, 2)
  assert.match(none.stderr, /^Usage: lmdb-cache <command>/)
  assertUserError(unknown, 2, /unknown command 'frobnicate'/, 'unknown command')
  assert.equal(version.stdout.trim(), JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url))).version)
  for (const [i, r] of perCommand.entries()) {
    const c = COMMANDS[i % COMMANDS.length]
    assert.equal(r.code, 0, `${c} --help`)
    assert.match(r.stdout, new RegExp(`^Usage: lmdb-cache ${c} `), `${c} --help`)
    assert.equal(r.stderr, '')
  }
})

test('bad arguments and missing or invalid directories: one line, no stack trace, non-zero', async () => {
  const file = path.join(work, 'a-file')
  fs.writeFileSync(file, 'x')
  const empty = path.join(work, 'empty-dir')
  fs.mkdirSync(empty)
  const level = path.join(work, 'a-level-cache')
  const lc = await openLevelBackedCache({ path: level })
  await lc.set('k', 1)
  await lc.close()
  const missing = path.join(work, 'missing')
  const cases = [
    // [args, exit code, message]
    [['stats'], 2, /missing <dir> argument/],
    [['stats', missing], 1, /no such directory/],
    [['stats', file], 1, /not a directory/],
    [['stats', empty], 1, /not an lmdb-cache directory \(no data\.mdb\)/],
    [['stats', level], 1, /looks like a level-cache directory: use 'lmdb-cache migrate/],
    [['stats', empty, '--bogus'], 2, /Unknown option '--bogus'/],
    [['stats', empty, 'extra'], 2, /unexpected argument 'extra'/],
    [['sweep'], 2, /missing <dir>/],
    [['sweep', missing], 1, /no such directory/],
    [['sweep', empty], 1, /not an lmdb-cache directory/],
    [['dump'], 2, /missing <dir>/],
    [['dump', missing], 1, /no such directory/],
    [['dump', level], 1, /not an lmdb-cache directory/],
    [['dump', empty, '--out'], 2, /argument missing/],
    [['load'], 2, /missing <dir>/],
    [['load', empty], 2, /missing <file>/],
    [['load', empty, path.join(work, 'no-such.jsonl')], 1, /cannot read .*no such file/],
    [['load', level, file], 1, /not an lmdb-cache directory \(no data\.mdb\) and not empty/],
    [['load', file, file], 1, /not a directory/],
    [['compact'], 2, /missing <dir>/],
    [['compact', missing], 1, /no such directory/],
    [['compact', empty], 1, /not an lmdb-cache directory/],
    [['migrate'], 2, /missing --from/],
    [['migrate', '--from', level], 2, /missing --to/],
    [['migrate', '--from', '', '--to', empty], 2, /--from needs a value/],
    [['migrate', '--from', level, '--to', empty, 'extra'], 2, /unexpected argument/],
    [['migrate', '--from', missing, '--to', path.join(work, 'm1')], 1, /does not exist \[ERR_INVALID_SOURCE\]/],
    [['migrate', '--from', empty, '--to', path.join(work, 'm1')], 1, /not a LevelDB .*\[ERR_INVALID_SOURCE\]/],
    [['migrate', '--from', level, '--to', file], 1, /\[ERR_INVALID_DESTINATION\]/],
    [['migrate', '--from', level, '--to', level], 1, /separate directories/],
  ]
  const results = await Promise.all(cases.map(([args]) => cli(args)))
  for (const [i, [args, code, pattern]] of cases.entries()) assertUserError(results[i], code, pattern, args.join(' '))
  assert.deepEqual(fs.readdirSync(empty), [], 'nothing was created in the empty directory')
  assert.equal(fs.existsSync(path.join(work, 'm1')), false)
})

test('stats: entries, live/expired, per-namespace counts, sizes, readers; --json', async () => {
  const dir = path.join(work, 'stats')
  await fillCache(dir, { expired: 5 })
  const json = await cli(['stats', dir, '--json'])
  assert.equal(json.code, 0, json.stderr)
  const s = JSON.parse(json.stdout)
  assert.equal(s.directory, dir)
  assert.equal(s.entries, 15)
  assert.equal(s.liveEntries, 10)
  assert.equal(s.expiredEntries, 5)
  assert.deepEqual(s.namespaces, { '': 5, a: 1, users: 2, 'users/sessions': 1, ключ: 1 })
  assert.ok(s.fileSize > 0 && s.usedSize > 0 && s.usedSize <= s.mapSize && s.mapSize <= s.maxMapSize)
  assert.ok(s.readersInUse >= 1 && s.maxReaders >= s.readersInUse)

  const text = await cli(['stats', dir])
  assert.equal(text.code, 0, text.stderr)
  // Read-only: the first run counted the expired entries and deleted none of them.
  assert.match(text.stdout, /^entries +15 \(10 live, 5 expired\)$/m)
  assert.match(text.stdout, /^namespaces +4 \(live entries in each; \(no namespace\): keys without one\)$/m)
  assert.match(text.stdout, /^ {2}\(no namespace\) +5$/m)
  assert.match(text.stdout, /^ {2}users\/sessions +1$/m)
  assert.match(text.stdout, /^free pages +\d+ \(4\.0 KiB each, [\d.]+ K?i?B reusable\)$/m)
  assert.match(text.stdout, /^map size +64\.0 MiB/m)
  assert.match(text.stdout, /^file size +[\d.]+ KiB/m)
  assert.match(text.stdout, /^readers +\d+ of 1,022 slots/m)
  // dump reads every entry and value, and deletes nothing either.
  assert.equal((await cli(['dump', dir])).code, 0)
  const swept = await cli(['sweep', dir, '--json'])
  assert.deepEqual(JSON.parse(swept.stdout), { swept: 5 }, 'stats and dump left the expired entries to sweep')
})

test('sweep: deletes the expired entries and prints the count', async () => {
  const dir = path.join(work, 'sweep')
  await fillCache(dir, { expired: 7 })
  const first = await cli(['sweep', dir])
  assert.equal(first.code, 0, first.stderr)
  assert.equal(first.stdout, 'swept 7 expired entries\n')
  const second = await cli(['sweep', dir, '--json'])
  assert.deepEqual(JSON.parse(second.stdout), { swept: 0 })
  await withCache(dir, async (cache) => assert.deepEqual((await cacheStats(cache)).entries, 10))
})

test('dump and load round-trip keys, values and expiries exactly; --namespace; --out', async () => {
  const src = path.join(work, 'dump-src')
  const written = await fillCache(src, { expired: 3 })
  const dumped = await cli(['dump', src])
  assert.equal(dumped.code, 0, dumped.stderr)
  const lines = dumped.stdout
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l))
  assert.equal(lines.length, written.length, 'every live entry, no expired one')
  for (const w of written) {
    const line = lines.find((l) => l.key === w.key)
    assert.ok(line, `dumped ${JSON.stringify(w.key)}`)
    assert.deepEqual(line.value, w.value)
    assert.equal(line.expiresAt, w.expiresAt === undefined || w.expiresAt === null ? null : Math.ceil(w.expiresAt))
  }
  // In stored-key byte order, as entries() yields them.
  const keys = lines.map((l) => l.key)
  assert.deepEqual(
    keys,
    [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
  )

  // --out writes the same text to a file.
  const file = path.join(work, 'dump.jsonl')
  const out = await cli(['dump', src, '--out', file])
  assert.equal(out.code, 0, out.stderr)
  assert.equal(out.stdout, `dumped ${written.length} entries to ${file}\n`)
  assert.equal(fs.readFileSync(file, 'utf8'), dumped.stdout)
  assertUserError(await cli(['dump', src, '--out', path.join(work, 'no-dir', 'x.jsonl')]), 1, /cannot write/, 'dump --out into a missing dir')

  // load into a new directory, dump again: the same text; the same entries and expiries.
  const dst = path.join(work, 'dump-dst')
  const loaded = await cli(['load', dst, file])
  assert.equal(loaded.code, 0, loaded.stderr)
  assert.equal(loaded.stdout, `loaded ${written.length} entries into ${dst}\n`)
  const again = await cli(['dump', dst])
  assert.equal(again.stdout, dumped.stdout)
  await withCache(dst, async (cache) => {
    for (const line of lines) assert.deepEqual(await getEntry(cache, line.key), { value: line.value, expiresAt: line.expiresAt })
  })

  // --namespace: exactly that namespace (nested ones are separate), repeatable.
  const users = await cli(['dump', src, '--namespace', 'users'])
  assert.deepEqual(
    users.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l).key),
    [`users${SEP}ada`, `users${SEP}😀`],
  )
  const two = await cli(['dump', src, '--namespace', 'users/sessions', '--namespace', 'a'])
  assert.deepEqual(
    two.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l).key),
    [`users/sessions${SEP}s1`, `a${SEP}b${SEP}c`],
  )
  const none = await cli(['dump', src, '--namespace', 'nothing-here'])
  assert.equal(none.code, 0)
  assert.equal(none.stdout, '')
})

test('load: skips expired entries; checks the whole file before writing anything', async () => {
  const file = path.join(work, 'load.jsonl')
  const dst = path.join(work, 'load-dst')
  const far = Date.now() + HOUR
  fs.writeFileSync(
    file,
    `${[
      JSON.stringify({ key: 'a', value: 1, expiresAt: far }),
      '',
      JSON.stringify({ key: 'gone', value: 2, expiresAt: Date.now() - 5 }),
      JSON.stringify({ key: 'b', value: { x: [1] } }),
      JSON.stringify({ key: 'c', value: null, expiresAt: null }),
    ].join('\n')}\n`,
  )
  const ok = await cli(['load', dst, file])
  assert.equal(ok.code, 0, ok.stderr)
  assert.equal(ok.stdout, `loaded 3 entries into ${dst} (1 already expired, skipped)\n`)
  await withCache(dst, async (cache) => {
    assert.deepEqual(await getEntry(cache, 'a'), { value: 1, expiresAt: far })
    assert.deepEqual(await getEntry(cache, 'b'), { value: { x: [1] }, expiresAt: null })
    assert.deepEqual(await getEntry(cache, 'c'), { value: null, expiresAt: null })
    assert.equal(await cache.has('gone'), false)
  })

  const bad = [
    ['not json', /:2: not JSON/],
    ['[1,2]', /:2: expected an object/],
    ['{"key":1,"value":2}', /:2: "key" must be a string/],
    ['{"key":"k"}', /:2: "value" is missing/],
    ['{"key":"k","value":1,"expiresAt":"soon"}', /:2: "expiresAt" must be epoch milliseconds or null/],
  ]
  for (const [line, pattern] of bad) {
    const badFile = path.join(work, 'bad.jsonl')
    fs.writeFileSync(badFile, `${JSON.stringify({ key: 'first', value: 1 })}\n${line}\n`)
    const target = path.join(work, 'bad-dst')
    assertUserError(await cli(['load', target, badFile]), 1, pattern, `load of ${line}`)
    assert.equal(fs.existsSync(target), false, 'nothing written for a bad file')
  }
})

/** Puts `count` entries k0, k1, ... of 2,000 times `char`, in batches of 1,000. */
async function putBigEntries(cache, count, char) {
  const big = char.repeat(2000)
  for (let b = 0; b < count; b += 1000) {
    await cache.batch(Array.from({ length: Math.min(1000, count - b) }, (_, i) => ({ type: 'put', key: `k${b + i}`, value: big })))
  }
}

/** A child process that opens the cache directory and keeps it open until its stdin ends. */
async function holdOpen(dir) {
  const script = `
    import { openLmdbCache } from ${JSON.stringify(new URL('../index.js', import.meta.url).href)}
    const cache = await openLmdbCache({ path: ${JSON.stringify(dir)} })
    await cache.get('x')
    process.stdout.write('open\\n')
    process.stdin.resume()
    process.stdin.on('end', async () => { await cache.close() })`
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] })
  await new Promise((resolve, reject) => {
    child.stdout.once('data', resolve)
    child.once('exit', (code) => reject(new Error(`holder exited with ${code}`)))
  })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  return {
    pid: child.pid,
    release: async () => {
      child.stdin.end()
      await exited
    },
  }
}

test('compact: refuses while another process has the directory open; then shrinks data.mdb safely', { timeout: 30_000 }, async () => {
  const dir = path.join(work, 'compact')
  // ~8 MiB of entries, then most of them deleted: data.mdb keeps its size until compacted.
  await withCache(dir, async (cache) => {
    await putBigEntries(cache, 4000, 'x')
    await cache.batch(Array.from({ length: 3900 }, (_, i) => ({ type: 'del', key: `k${i}` })))
    await cache.set('kept', { with: 'expiry' }, { ttlMs: HOUR })
  })
  const sizeBefore = fs.statSync(path.join(dir, 'data.mdb')).size
  const expiryBefore = await withCache(dir, (cache) => getEntry(cache, 'kept'))

  // Another process has it open: refused, data.mdb untouched.
  const holder = await holdOpen(dir)
  try {
    const refused = await cli(['compact', dir])
    assertUserError(refused, 1, new RegExp(`open in another process \\(pid ${holder.pid}\\)`), 'compact while open elsewhere')
  } finally {
    await holder.release()
  }
  // This test process holds it open too: also another process for the CLI.
  await withCache(dir, async () => {
    const refused = await cli(['compact', dir])
    assertUserError(refused, 1, new RegExp(`pid ${process.pid}\\b`), 'compact while the test process has it open')
  })
  assert.equal(fs.statSync(path.join(dir, 'data.mdb')).size, sizeBefore)

  const done = await cli(['compact', dir])
  assert.equal(done.code, 0, done.stderr)
  assert.match(done.stdout, /^compacted .*: data\.mdb [\d.]+ MiB -> [\d.]+ KiB \(101 entries\)\n$/)
  const sizeAfter = fs.statSync(path.join(dir, 'data.mdb')).size
  assert.ok(sizeAfter < sizeBefore / 4, `data.mdb ${sizeBefore} -> ${sizeAfter}`)
  assert.deepEqual(fs.readdirSync(dir).sort(), CACHE_DIR_FILES, 'no temporary left')

  // The data is intact, and the compacted file takes writes, here and in another process.
  await withCache(dir, async (cache) => {
    assert.deepEqual(await getEntry(cache, 'kept'), expiryBefore)
    assert.equal((await cacheStats(cache)).entries, 101)
    assert.equal(await cache.get('k3999'), 'x'.repeat(2000))
    await cache.set('after', 1)
  })
  const stats = JSON.parse((await cli(['stats', dir, '--json'])).stdout)
  assert.equal(stats.entries, 102)
})

test("compact keeps data.mdb's owner and mode, and refuses a data.mdb that is a symlink", {
  skip: (typeof process.getuid !== 'function' || process.getuid() !== 0) && 'needs root to chown',
}, async () => {
  const dir = path.join(work, 'compact-owner')
  await withCache(dir, (cache) => cache.set('k', 1))
  const data = path.join(dir, 'data.mdb')
  fs.chownSync(data, 65534, 65534)
  fs.chmodSync(data, 0o640)
  const done = await cli(['compact', dir])
  assert.equal(done.code, 0, done.stderr)
  const after = fs.statSync(data)
  assert.deepEqual([after.uid, after.gid, after.mode & 0o777], [65534, 65534, 0o640])

  const linked = path.join(work, 'compact-link')
  const real = path.join(work, 'compact-link-store')
  await withCache(linked, (cache) => cache.set('k', 1))
  fs.mkdirSync(real)
  fs.renameSync(path.join(linked, 'data.mdb'), path.join(real, 'data.mdb'))
  fs.symlinkSync(path.join(real, 'data.mdb'), path.join(linked, 'data.mdb'))
  assertUserError(await cli(['compact', linked]), 1, /data\.mdb is a symbolic link/, 'compact of a symlinked data.mdb')
  assert.ok(fs.lstatSync(path.join(linked, 'data.mdb')).isSymbolicLink(), 'left as it was')
})

test('compact never loses a write made by a process that opens, writes and closes while it runs', { timeout: 120_000 }, async () => {
  const dir = path.join(work, 'compact-race')
  // Large enough that the copy takes a while: ~40 MiB.
  await withCache(dir, (cache) => putBigEntries(cache, 20_000, 'y'))
  const index = JSON.stringify(new URL('../index.js', import.meta.url).href)
  // Open, write one key, close, pause: closed most of the time, so compact's checks for other
  // holders mostly pass, and a write can land between them.
  const writerScript = `
    import { openLmdbCache } from ${index}
    const acked = []
    const end = Date.now() + Number(process.argv[1])
    for (let i = 0; Date.now() < end; i++) {
      const cache = await openLmdbCache({ path: ${JSON.stringify(dir)} })
      await cache.set('w' + i, i)
      acked.push('w' + i)
      await cache.close()
      await new Promise((resolve) => setTimeout(resolve, 60))
    }
    process.stdout.write(JSON.stringify(acked))`
  const outcomes = []
  for (let round = 0; round < 4; round++) {
    const writer = run(process.execPath, ['--input-type=module', '-e', writerScript, '2500'])
    await new Promise((resolve) => setTimeout(resolve, 100 + round * 150))
    const compact = await cli(['compact', dir])
    outcomes.push(compact.code)
    const done = await writer
    assert.equal(done.code, 0, done.stderr)
    const acked = JSON.parse(done.stdout)
    await withCache(dir, async (cache) => {
      for (const key of acked)
        assert.notEqual(
          await cache.get(key),
          undefined,
          `round ${round}: acknowledged ${key} lost (compact exit ${compact.code}: ${compact.stdout}${compact.stderr})`,
        )
    })
    if (compact.code !== 0) assert.match(compact.stderr, /was written to|open in another process/)
  }
  assert.ok(
    outcomes.every((code) => code === 0 || code === 1),
    `exit codes ${outcomes}`,
  )
})

test('migrate: plain progress lines off a terminal, a summary, --json; refused while the source is open elsewhere', { timeout: 30_000 }, async () => {
  const from = path.join(work, 'migrate-src')
  const lc = await openLevelBackedCache({ path: from })
  await lc.batch(Array.from({ length: 3000 }, (_, i) => ({ type: 'put', key: `k${i}`, value: { i }, ttlMs: i % 3 === 0 ? -1 : HOUR })))
  await lc.withNamespace('ns').set('inner', 'v')
  await lc.set('undef', undefined)

  // The test process holds the LevelDB open: another process for the CLI, refused.
  const busy = await cli(['migrate', '--from', from, '--to', path.join(work, 'migrate-busy')])
  assertUserError(busy, 1, new RegExp(`in use \\(process ${process.pid} has it open\\): stop it first \\[ERR_SOURCE_IN_USE\\]`), 'source in use')
  await lc.close()

  const to = path.join(work, 'migrate-dst')
  const plain = await cli(['migrate', '--from', from, '--to', to, '--verify'])
  assert.equal(plain.code, 0, plain.stderr)
  // Progress counts entries read (as the summary's "read"), not copied.
  assert.match(plain.stderr, /^copy: read 3,002\/3,002 entries \(100%\), [\d,]+\/s, ETA 0s$/m)
  assert.match(plain.stderr, /^verify: verified 3,002\/3,002 entries \(100%\)/m)
  // biome-ignore lint/suspicious/noControlCharactersInRegex: terminal control is what is asserted
  assert.doesNotMatch(plain.stderr, /\r|\x1b/, 'no terminal control off a terminal')
  assert.match(plain.stdout, /^migrated .* -> .* in [\d.]+s$/m)
  assert.match(plain.stdout, /^ {2}read +3,002$/m)
  assert.match(plain.stdout, /^ {2}copied +2,001$/m)
  assert.match(plain.stdout, /^ {2}skipped, expired +1,000$/m)
  assert.match(plain.stdout, /^ {2}skipped, undefined +1 /m)
  assert.match(plain.stdout, /^verify: OK, 2,001 entries have the same value and expiry on both sides$/m)

  const json = await cli(['migrate', '--from', from, '--to', path.join(work, 'migrate-ns'), '--namespace', 'ns', '--json'])
  assert.equal(json.code, 0, json.stderr)
  assert.equal(json.stderr, '', 'no progress with --json')
  const summary = JSON.parse(json.stdout)
  assert.deepEqual([summary.copied, summary.skippedExpired, summary.namespaces], [1, 0, ['ns']])
  await withCache(path.join(work, 'migrate-ns'), async (cache) => assert.equal(await cache.get('inner'), 'v'), { namespace: 'ns' })
})

test('migrate: a progress bar with count, rate and ETA on a terminal', { timeout: 30_000 }, async (t) => {
  const probe = await run('script', ['--version']).catch(() => null)
  if (probe === null || probe.code !== 0) {
    t.skip('no `script` command to run the CLI on a pseudo-terminal')
    return
  }
  const from = path.join(work, 'tty-src')
  const lc = await openLevelBackedCache({ path: from })
  await lc.batch(Array.from({ length: 2000 }, (_, i) => ({ type: 'put', key: `k${i}`, value: i })))
  await lc.close()
  const command = [process.execPath, CLI, 'migrate', '--from', from, '--to', path.join(work, 'tty-dst')].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ')
  const result = await run('script', ['-qec', command, '/dev/null'])
  assert.equal(result.code, 0, result.stdout + result.stderr)
  // Redrawn in place (carriage return, erase to end of line), then the summary.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: terminal control is what is asserted
  assert.match(result.stdout, /\rcopy \[#{24}\] 100% {2}2,000\/2,000 {2}[\d,]+\/s {2}ETA 0s\x1b\[K/)
  assert.match(result.stdout, /migrated .* in [\d.]+s/)
})

test('a failure to write standard output (a full disk) is one line on stderr and exit 1', {
  skip: !fs.existsSync('/dev/full') && 'needs /dev/full',
}, async () => {
  const dir = path.join(work, 'dev-full')
  await withCache(dir, (cache) => cache.set('k', 'v'))
  const { spawnSync } = await import('node:child_process')
  for (const command of [
    ['stats', dir],
    ['dump', dir],
  ]) {
    const full = fs.openSync('/dev/full', 'w')
    try {
      const result = spawnSync(process.execPath, [CLI, ...command], { stdio: ['ignore', full, 'pipe'], encoding: 'utf8' })
      assert.equal(result.status, 1, result.stderr)
      assert.match(result.stderr, /^lmdb-cache \w+: cannot write to standard output: ENOSPC[^\n]*\n$/)
    } finally {
      fs.closeSync(full)
    }
  }
})

test('compact removes the leftovers of a killed compaction, not the work of a running one', async () => {
  const dir = path.join(work, 'compact-leftovers')
  await withCache(dir, (cache) => cache.set('k', 1))
  const gone = await run(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'])
  const dead = path.join(dir, `.compact-${gone.stdout}`)
  const live = path.join(dir, `.compact-${process.pid}`)
  for (const leftover of [dead, live]) {
    fs.mkdirSync(leftover)
    fs.writeFileSync(path.join(leftover, 'data.mdb'), 'partial copy')
  }
  const done = await cli(['compact', dir])
  assert.equal(done.code, 0, done.stderr)
  assert.equal(fs.existsSync(dead), false, "a dead process's copy is removed")
  assert.equal(fs.readFileSync(path.join(live, 'data.mdb'), 'utf8'), 'partial copy', "a running process's copy is left alone")
  fs.rmSync(live, { recursive: true })
})

test("dump --out never writes over or beside a cache's files, and replaces a file only with --force", async () => {
  const dir = path.join(work, 'dump-guard')
  await fillCache(dir)
  const other = path.join(work, 'dump-guard-other')
  await fillCache(other)
  const untouched = fingerprint(dir)
  const otherUntouched = fingerprint(other)
  const link = path.join(work, 'dump-guard-link.jsonl')
  fs.symlinkSync(path.join(dir, 'data.mdb'), link)
  for (const [out, what] of [
    [path.join(dir, 'data.mdb'), 'its own data.mdb'],
    [path.join(dir, 'lock.mdb'), 'its own lock.mdb'],
    [path.join(dir, 'dump.jsonl'), 'a new file inside the cache directory'],
    [path.join(other, 'data.mdb'), "another cache's data.mdb"],
    [path.join(other, 'dump.jsonl'), 'a file in another cache directory'],
    [link, 'a symlink to data.mdb'],
  ]) {
    for (const force of [[], ['--force']]) {
      const result = await cli(['dump', dir, '--out', out, ...force])
      assertUserError(result, 1, /refusing to write .*outside the cache directory/, `dump --out ${what} ${force}`)
    }
  }
  assert.deepEqual(fingerprint(dir), untouched, 'the cache directory is unchanged')
  assert.deepEqual(fingerprint(other), otherUntouched, 'the other cache directory is unchanged')
  await withCache(dir, async (cache) => assert.equal(await cache.get('plain'), 'text ✓'))

  const existing = path.join(work, 'dump-guard-existing.jsonl')
  fs.writeFileSync(existing, 'keep me\n')
  assertUserError(await cli(['dump', dir, '--out', existing]), 1, /exists; pass --force to replace it/, 'existing --out')
  assert.equal(fs.readFileSync(existing, 'utf8'), 'keep me\n')
  const forced = await cli(['dump', dir, '--out', existing, '--force'])
  assert.equal(forced.code, 0, forced.stderr)
  assert.match(fs.readFileSync(existing, 'utf8'), /^\{"key":/)
  assertUserError(await cli(['dump', dir, '--force']), 2, /--force needs --out/, '--force without --out')
})

test('compactCacheTo refuses a destination in a cache directory (ERR_DESTINATION_IN_CACHE)', async () => {
  const dir = path.join(work, 'compact-to-guard')
  await fillCache(dir)
  const untouched = fingerprint(dir)
  await withCache(dir, async (cache) => {
    for (const dest of [path.join(dir, 'data.mdb'), path.join(dir, 'copy.mdb'), path.join(dir, 'lock.mdb')]) {
      await assert.rejects(compactCacheTo(cache, dest), { code: 'ERR_DESTINATION_IN_CACHE' }, dest)
    }
    // Outside, a copy is made as before.
    await compactCacheTo(cache, path.join(work, 'compact-to-guard.mdb'))
  })
  assert.deepEqual(Object.keys(fingerprint(dir)).sort(), Object.keys(untouched).sort())
  assert.ok(fs.statSync(path.join(work, 'compact-to-guard.mdb')).size > 0)
})

test('the leftovers of a killed compaction are removed by the next open and by stats, not those of a live one', async () => {
  const dir = path.join(work, 'compact-leftovers-open')
  await withCache(dir, (cache) => cache.set('k', 1))
  const gone = Number((await run(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'])).stdout)
  const gone2 = Number((await run(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'])).stdout)
  const here = { host: os.hostname(), pidNamespace: pidNamespace() }
  const leftover = (pid, owner) => {
    const work = path.join(dir, `.compact-${pid}`)
    fs.mkdirSync(work)
    fs.writeFileSync(path.join(work, 'data.mdb'), 'partial copy')
    if (owner) fs.writeFileSync(path.join(work, 'owner'), JSON.stringify({ pid, ...owner }))
    return work
  }
  const dead = leftover(gone, here)
  const live = leftover(process.pid, here)
  // A compaction run in another container: its pid means nothing here.
  const gone3 = Number((await run(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'])).stdout)
  const foreign = leftover(gone3, { ...here, pidNamespace: 'pid:[1]' })
  await withCache(dir, async (cache) => assert.equal(await cache.get('k'), 1))
  assert.equal(fs.existsSync(dead), false, "a dead compaction's copy is removed at open")
  assert.equal(fs.existsSync(live), true, "a running compaction's copy is left alone")
  assert.equal(fs.existsSync(foreign), true, 'a compaction of another pid namespace is left alone')
  const viaStats = leftover(gone2, here)
  const stats = await cli(['stats', dir])
  assert.equal(stats.code, 0, stats.stderr)
  assert.equal(fs.existsSync(viaStats), false, 'stats removes it too')
  fs.rmSync(live, { recursive: true })
  fs.rmSync(foreign, { recursive: true })
})

function pidNamespace() {
  try {
    return fs.readlinkSync('/proc/self/ns/pid')
  } catch {
    return null
  }
}
