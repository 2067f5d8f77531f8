// Under jest, which loads the package afresh for every test file (a module registry and a
// vm context per file), a loaded copy must keep nothing alive once its file is done: jest is
// run here on generated test files that load the package.
//
// - 120 tiny files in band, each opening a cache, writing, reading and closing it: the heap
//   jest reports after the last file (--logHeapUsage, after a forced GC) stays within 8 MB of
//   the same run with files that do not load the package (measured: +2 to +4 MB; a copy kept
//   per file costs ~2.5 MB, so 120 of them ~300 MB);
// - --detectLeaks passes a file that only requires the package, and one that uses a cache;
// - --detectOpenHandles reports nothing once every cache is closed.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const JEST = path.join(ROOT, 'node_modules', 'jest', 'bin', 'jest.js')
const PACKAGE = path.join(ROOT, 'index.cjs')

let work
before(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-jest-'))
})
after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

// A cache's whole life in one test: open, write, read, close.
const USE_CACHE = `
const { openLmdbCache } = require(${JSON.stringify(PACKAGE)})
const fs = require('node:fs'), os = require('node:os'), path = require('node:path')
test('a cache', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-jest-file-'))
  const cache = await openLmdbCache({ path: dir })
  await cache.set('k', { n: 1, text: 'x'.repeat(100) })
  expect(await cache.get('k')).toEqual({ n: 1, text: 'x'.repeat(100) })
  await cache.close()
  fs.rmSync(dir, { recursive: true, force: true })
})
`
const ONLY_REQUIRE = `
const lmdbCache = require(${JSON.stringify(PACKAGE)})
test('loads', () => {
  expect(typeof lmdbCache.openLmdbCache).toBe('function')
})
`
const NOTHING = `
test('nothing', () => {
  expect(1 + 1).toBe(2)
})
`

/** Writes `files` ({ name: source }) into a fresh directory and runs jest there in band. */
function runJest(name, files, flags, { exposeGc = false } = {}) {
  const dir = path.join(work, name)
  fs.mkdirSync(dir)
  for (const [file, source] of Object.entries(files)) fs.writeFileSync(path.join(dir, file), source)
  const config = JSON.stringify({ rootDir: dir, transform: {}, testEnvironment: 'node', cacheDirectory: path.join(work, 'jest-cache') })
  const args = [...(exposeGc ? ['--expose-gc'] : []), JEST, '--runInBand', '--ci', '--config', config, ...flags]
  const result = spawnSync(process.execPath, args, { cwd: dir, encoding: 'utf8', timeout: 120_000 })
  return { status: result.status, output: `${result.stdout}\n${result.stderr}` }
}

/** The heap jest reports after each file, in MB. */
function heapSizes(output) {
  return [...output.matchAll(/\((\d+) MB heap size\)/g)].map((m) => Number(m[1]))
}

test('120 test files loading the package keep no more heap than 120 that do not', { timeout: 180_000 }, () => {
  const files = (source) => Object.fromEntries(Array.from({ length: 120 }, (_, i) => [`t${String(i).padStart(3, '0')}.test.js`, source]))
  const without = runJest('without', files(NOTHING), ['--logHeapUsage'], { exposeGc: true })
  assert.equal(without.status, 0, without.output)
  const loading = runJest('with', files(USE_CACHE), ['--logHeapUsage'], { exposeGc: true })
  assert.equal(loading.status, 0, loading.output)
  const [base, used] = [heapSizes(without.output), heapSizes(loading.output)]
  assert.equal(base.length, 120, without.output)
  assert.equal(used.length, 120, loading.output)
  const last = (sizes) => Math.max(...sizes.slice(-10))
  console.log(`# heap after the last 10 files: ${last(base)} MB without the package, ${last(used)} MB with it`)
  assert.ok(last(used) - last(base) <= 8, `heap ${last(used)} MB with the package, ${last(base)} MB without`)
})

test('--detectLeaks passes a file that only requires the package and one that uses a cache', { timeout: 120_000 }, () => {
  const result = runJest('leaks', { 'only-require.test.js': ONLY_REQUIRE, 'use-cache.test.js': USE_CACHE }, ['--detectLeaks'], { exposeGc: true })
  assert.doesNotMatch(result.output, /leaking memory/)
  assert.equal(result.status, 0, result.output)
})

test('--detectOpenHandles reports nothing once every cache is closed', { timeout: 120_000 }, () => {
  const result = runJest('handles', { 'only-require.test.js': ONLY_REQUIRE, 'use-cache.test.js': USE_CACHE }, ['--detectOpenHandles'])
  assert.equal(result.status, 0, result.output)
  assert.doesNotMatch(result.output, /open handle|lmdb-cache completions/i)
})
