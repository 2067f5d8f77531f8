// The package as a user meets it: the tarballs `npm run package` makes (scripts/package.js,
// over the release binary the test run already has) — the main package and the linux-x64-gnu
// platform package —, both installed into a fresh project, which then imports the
// cache from ESM, requires it from CommonJS, type-checks a TypeScript consumer written against
// level-cache's API with `tsc --strict` (module NodeNext), and runs the `lmdb-cache` bin.
// The main package's dependency (msgpackr) comes from npm's cache where `npm ci` left it, else
// from the registry: `npm ci` caches tarballs but not the package documents an install that
// resolves a range needs, so a strictly offline install fails on a fresh machine.
// Also: the error when no native binary fits, and NAPI_RS_NATIVE_LIBRARY_PATH.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { ROOT, run, tempDir } from './support/cli-helpers.js'

const PLATFORM = 'linux-x64-gnu'
const NATIVE = path.join(ROOT, `lmdb-cache.${PLATFORM}.node`)
const glibc = Boolean(process.report?.getReport()?.header?.glibcVersionRuntime)
const supported = process.platform === 'linux' && process.arch === 'x64' && glibc && fs.existsSync(NATIVE)
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm'

// npm run by `npm test` passes its configuration down in npm_* variables; the user's npm
// would not have them.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)))
const npm = (args, cwd) => run(NPM, args, { cwd, env: { ...env, npm_config_update_notifier: 'false' }, timeout: 60_000 })

let work
let project
let tarballs // [main, platform], as scripts/package.js printed them
let packedFiles // the main tarball's files

before(async () => {
  if (!supported) return
  work = tempDir('lmdb-cache-pack-')
  const out = path.join(work, 'tarballs')

  const packaged = await run(process.execPath, [path.join(ROOT, 'scripts', 'package.js'), '--out-dir', out], { cwd: ROOT, env, timeout: 60_000 })
  assert.equal(packaged.code, 0, packaged.stderr)
  tarballs = packaged.stdout
    .trim()
    .split('\n')
    .map((line) => path.resolve(ROOT, line))
  assert.deepEqual(
    tarballs.map((t) => path.relative(out, t)),
    ['promethean-lmdb-cache-0.1.0.tgz', `promethean-lmdb-cache-${PLATFORM}-0.1.0.tgz`],
  )
  const list = async (tarball) => {
    const tar = await run('tar', ['-tzf', tarball])
    assert.equal(tar.code, 0, tar.stderr)
    return tar.stdout
      .trim()
      .split('\n')
      .map((f) => f.replace(/^package\//, ''))
      .sort()
  }
  packedFiles = await list(tarballs[0])
  assert.deepEqual(await list(tarballs[1]), ['README.md', `lmdb-cache.${PLATFORM}.node`, 'package.json'])

  // A fresh project; both tarballs in one install, so the main package's optional
  // dependency on the platform package is met by the local tarball (the other platforms'
  // packages are optional and skipped).
  project = path.join(work, 'consumer')
  fs.mkdirSync(project)
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }))
  const install = await npm(['install', '--prefer-offline', '--no-audit', '--no-fund', ...tarballs], project)
  assert.equal(install.code, 0, install.stdout + install.stderr)
  assert.doesNotMatch(install.stderr, /EBADENGINE|prepare/, install.stderr)
})

after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

const skip = supported ? false : `needs ${PLATFORM} and its built binary`

test('the tarball holds the runtime files only; its manifest is the published one', { skip }, () => {
  assert.deepEqual(packedFiles, [
    'README.md',
    'bin/lmdb-cache.js',
    'binding.cjs',
    'index.cjs',
    'index.d.cts',
    'index.d.ts',
    'index.js',
    'lib/cache.cjs',
    'lib/cli/dirs.cjs',
    'lib/cli/dump.cjs',
    'lib/cli/errors.cjs',
    'lib/cli/format.cjs',
    'lib/cli/help.cjs',
    'lib/cli/stats.cjs',
    'lib/cli/verify.cjs',
    'lib/codec.cjs',
    'lib/compact.cjs',
    'lib/destinations.cjs',
    'lib/entries.cjs',
    'lib/errors.cjs',
    'lib/level-source.cjs',
    'lib/locks.cjs',
    'lib/migrate.cjs',
    'lib/msgpack-encode.cjs',
    'lib/native.cjs',
    'lib/open.cjs',
    'lib/reads.cjs',
    'lib/tools.cjs',
    'lib/verify-child.cjs',
    'lib/write-queue.cjs',
    'package.json',
  ])
  const source = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
  const pkg = JSON.parse(fs.readFileSync(path.join(project, 'node_modules', '@promethean', 'lmdb-cache', 'package.json'), 'utf8'))
  assert.equal(pkg.bin['lmdb-cache'], './bin/lmdb-cache.js')
  assert.equal(pkg.peerDependenciesMeta.level.optional, true)
  assert.deepEqual(pkg.dependencies, source.dependencies)
  assert.deepEqual(pkg.publishConfig, { access: 'public' })
  // No source build for users (no `prepare`), nothing of the development set-up.
  for (const field of ['scripts', 'devDependencies', 'overrides']) assert.equal(pkg[field], undefined, field)
  // The source package.json names no platform package (they are not on the registry, so
  // `npm ci` could not lock them); the packed one names all of them, as napi pre-publish does.
  assert.equal(source.optionalDependencies, undefined)
  const platforms = fs.readdirSync(path.join(ROOT, 'npm'))
  assert.equal(platforms.length, source.napi.targets.length)
  assert.equal(Object.keys(pkg.optionalDependencies).length, platforms.length)
  for (const dir of platforms) {
    const platformPkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'npm', dir, 'package.json'), 'utf8'))
    assert.equal(pkg.optionalDependencies[platformPkg.name], pkg.version, `optional dependency on ${platformPkg.name}`)
    assert.deepEqual(platformPkg.publishConfig, { access: 'public' }, platformPkg.name)
  }
})

test('installed from the tarballs: ESM import, CommonJS require, the platform package supplies the binary', { skip }, async () => {
  const installed = path.join(project, 'node_modules', '@promethean')
  assert.deepEqual(fs.readdirSync(installed).sort(), ['lmdb-cache', `lmdb-cache-${PLATFORM}`])
  assert.equal(fs.existsSync(path.join(installed, 'lmdb-cache', path.basename(NATIVE))), false, 'no binary in the main package')

  fs.writeFileSync(
    path.join(project, 'esm.mjs'),
    `import { openLevelCache, openLmdbCache, cacheStats } from '@promethean/lmdb-cache'
     const cache = await openLevelCache({ path: './db', namespace: 'esm' })
     await cache.set('k', { from: 'esm' }, { ttlMs: 60000 })
     console.log(JSON.stringify([await cache.get('k'), openLevelCache === openLmdbCache, (await cacheStats(cache)).entries]))
     await cache.close()`,
  )
  fs.writeFileSync(
    path.join(project, 'cjs.cjs'),
    `const { openLevelCache } = require('@promethean/lmdb-cache')
     openLevelCache({ path: './db' }).then(async (cache) => {
       const seen = []
       for await (const entry of cache.entries()) seen.push(entry)
       console.log(JSON.stringify(seen))
       await cache.close()
     })`,
  )
  const esm = await run(process.execPath, ['esm.mjs'], { cwd: project })
  assert.equal(esm.code, 0, esm.stderr)
  assert.deepEqual(JSON.parse(esm.stdout), [{ from: 'esm' }, true, 1])
  const cjs = await run(process.execPath, ['cjs.cjs'], { cwd: project })
  assert.equal(cjs.code, 0, cjs.stderr)
  assert.deepEqual(JSON.parse(cjs.stdout), [['esm\u241Fk', { from: 'esm' }]])
})

test('a TypeScript consumer of the level-cache API type-checks unchanged (tsc --strict, NodeNext), ESM and CommonJS', { skip, timeout: 60_000 }, async () => {
  // Written against @promethean/level-cache; only the module specifier differs.
  fs.writeFileSync(
    path.join(project, 'consumer.ts'),
    `import { openLevelCache, type Cache, type CacheOptions, type PutOptions, type Millis } from '@promethean/lmdb-cache'

type User = { name: string; tags: string[] }
function logged<V>(inner: Cache<V>): Cache<V> {
  return Object.freeze({ ...inner, get: async (key: string) => inner.get(key) })
}
const ttl: Millis = 60_000
const options: CacheOptions = { path: './db', defaultTtlMs: ttl, namespace: 'app' }
const put: PutOptions = { ttlMs: 1_000 }

export async function main(): Promise<void> {
  const cache: Cache<User> = await openLevelCache<User>(options)
  await cache.set('u1', { name: 'Ada', tags: [] }, put)
  const user: User | undefined = await cache.get('u1')
  const present: boolean = await cache.has('u1')
  await cache.batch([
    { type: 'put', key: 'u2', value: { name: 'Bob', tags: ['x'] }, ttlMs: 5 },
    { type: 'del', key: 'u1' },
  ])
  // The opened cache's variable also takes a wrapped level-cache Cache, and a wrapper can
  // implement the opener's type.
  let inferred = await openLevelCache<User>({ path: './db' })
  inferred = logged(inferred)
  const openLogged: typeof openLevelCache = async <V,>(o: CacheOptions) => logged(await openLevelCache<V>(o))
  await (await openLogged<number>({ path: './db2' })).close()
  await inferred.close()
  const sessions: Cache<User> = cache.withNamespace('sessions')
  for await (const [key, value] of sessions.entries({ limit: 10 })) console.log(key.length, value.name)
  const swept: number = await cache.sweepExpired()
  await cache.del('u2')
  await cache.close()
  console.log(user?.name, present, swept)
}
`,
  )
  fs.writeFileSync(
    path.join(project, 'consumer.cts'),
    `import { openLevelCache, migrateFromLevel, type Cache } from '@promethean/lmdb-cache'

export async function open(): Promise<Cache<number>> {
  const cache = await openLevelCache<number>({ path: './db' })
  await cache.set('n', 1, { ttlMs: 10 })
  const summary = await migrateFromLevel({ from: './old', to: './db', onProgress: (p) => console.log(p.done, p.total) })
  console.log(summary.copied + summary.skippedExpired)
  return cache
}
`,
  )
  // A misuse must fail: the check is real.
  fs.writeFileSync(
    path.join(project, 'wrong.ts'),
    `import { openLevelCache } from '@promethean/lmdb-cache'
const cache = await openLevelCache<number>({ path: './db' })
await cache.set('k', 'not a number')
`,
  )
  const tsc = path.join(ROOT, 'node_modules', '.bin', 'tsc')
  const flags = ['--strict', '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--noEmit']
  // One run (tsc's start-up is most of its time): the consumers pass, the misuse is reported.
  const result = await run(tsc, [...flags, '--explainFiles', 'consumer.ts', 'consumer.cts', 'wrong.ts'], { cwd: project, timeout: 60_000 })
  const errors = result.stdout.split('\n').filter((line) => /error TS\d+/.test(line))
  assert.deepEqual(
    errors.map((e) => e.replace(/:.*/, '')),
    ['wrong.ts(3,22)'],
    result.stdout + result.stderr,
  )
  assert.match(errors[0], /error TS2345: Argument of type 'string' is not assignable to parameter of type 'number'/)
  assert.equal(result.code, 2)
  // ESM resolves index.d.ts, CommonJS index.d.cts.
  assert.match(result.stdout, /node_modules\/@promethean\/lmdb-cache\/index\.d\.ts\n {2}Imported via '@promethean\/lmdb-cache' from file 'consumer\.ts'/)
  assert.match(result.stdout, /node_modules\/@promethean\/lmdb-cache\/index\.d\.cts\n {2}Imported via '@promethean\/lmdb-cache' from file 'consumer\.cts'/)
})

test('index.d.cts, written by the build from index.d.ts, declares exactly the same', () => {
  assert.equal(fs.readFileSync(path.join(ROOT, 'index.d.cts'), 'utf8'), fs.readFileSync(path.join(ROOT, 'index.d.ts'), 'utf8'))
})

test('the lmdb-cache bin; migrate without the optional `level` peer says what to install', { skip }, async () => {
  const bin = path.join(project, 'node_modules', '.bin', 'lmdb-cache')
  const help = await run(bin, ['--help'], { cwd: project })
  assert.equal(help.code, 0, help.stderr)
  assert.match(help.stdout, /^Usage: lmdb-cache <command>/)
  const stats = await run(bin, ['stats', 'db', '--json'], { cwd: project })
  assert.equal(stats.code, 0, stats.stderr)
  assert.equal(JSON.parse(stats.stdout).namespaces.esm, 1)

  const old = path.join(project, 'old-level-cache')
  fs.mkdirSync(old)
  fs.writeFileSync(path.join(old, 'CURRENT'), 'MANIFEST-000002\n')
  const migrate = await run(bin, ['migrate', '--from', old, '--to', 'migrated'], { cwd: project })
  assert.equal(migrate.code, 1)
  assert.equal(
    migrate.stderr,
    'lmdb-cache migrate: migrating from level-cache needs the `level` package (an optional peer dependency of @promethean/lmdb-cache): npm install level [ERR_LEVEL_MISSING]\n',
  )
  assert.equal(fs.existsSync(path.join(project, 'migrated')), false)
})

test('no fitting native binary: a clear error; NAPI_RS_NATIVE_LIBRARY_PATH overrides', { skip }, async () => {
  const platformPkg = path.join(project, 'node_modules', '@promethean', `lmdb-cache-${PLATFORM}`)
  const aside = path.join(work, 'platform-package-aside')
  fs.renameSync(platformPkg, aside)
  try {
    const failed = await run(process.execPath, ['esm.mjs'], { cwd: project })
    assert.equal(failed.code, 1)
    assert.match(failed.stderr, /no native binary could be loaded for this platform \(linux-x64-gnu\)/)
    assert.match(failed.stderr, /Install its platform package: npm install @promethean\/lmdb-cache-linux-x64-gnu/)
    assert.match(failed.stderr, /NAPI_RS_NATIVE_LIBRARY_PATH/)
    assert.match(
      failed.stderr,
      /Tried:\n {2}- Cannot find module '\.\/lmdb-cache\.linux-x64-gnu\.node'\n {2}- Cannot find module '@promethean\/lmdb-cache-linux-x64-gnu'\n {4}at /,
    )
    // Only packages that exist: napi-rs's loader also tries a WASI build this package has not.
    assert.doesNotMatch(failed.stderr, /wasi|wasm/i)
    assert.match(failed.stderr, /code: 'ERR_NATIVE_BINARY_MISSING'/)

    const viaCli = await run(process.execPath, [path.join(project, 'node_modules', '.bin', 'lmdb-cache'), 'stats', 'db'], { cwd: project })
    assert.equal(viaCli.code, 1)
    assert.match(viaCli.stderr, /^lmdb-cache stats: @promethean\/lmdb-cache: no native binary could be loaded/)
    assert.match(viaCli.stderr, /npm install @promethean\/lmdb-cache-linux-x64-gnu/)
    assert.doesNotMatch(viaCli.stderr, /\n\s+at /)

    const overridden = await run(process.execPath, ['cjs.cjs'], { cwd: project, env: { NAPI_RS_NATIVE_LIBRARY_PATH: NATIVE } })
    assert.equal(overridden.code, 0, overridden.stderr)
    assert.deepEqual(JSON.parse(overridden.stdout), [['esm\u241Fk', { from: 'esm' }]])

    const wrongPath = await run(process.execPath, ['cjs.cjs'], { cwd: project, env: { NAPI_RS_NATIVE_LIBRARY_PATH: path.join(work, 'nope.node') } })
    assert.equal(wrongPath.code, 1)
    assert.match(wrongPath.stderr, /NAPI_RS_NATIVE_LIBRARY_PATH=.*nope\.node could not be loaded as the native binary/)
  } finally {
    fs.renameSync(aside, platformPkg)
  }
})
