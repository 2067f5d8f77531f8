// Writes not awaited when the process exits: level-cache (LevelDB) keeps them, so code written
// for it may end with `process.exit()` right after a burst of `set()`s. Each exit path runs in
// a real child process: process.exit(), the end of the script, an uncaught exception. The
// level-cache baseline runs the same script as the reference.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { after, before, test } from 'node:test'
import { openLevelBackedCache } from '../benchmark/backends/level-cache.js'
import { openLmdbCache } from '../index.js'
import { ROOT, run, tempDir } from './support/cli-helpers.js'

const WRITES = 100
const BACKENDS = {
  lmdb: { module: pathToFileURL(path.join(ROOT, 'index.js')).href, open: 'openLmdbCache' },
  level: { module: pathToFileURL(path.join(ROOT, 'benchmark/backends/level-cache.js')).href, open: 'openLevelBackedCache' },
}

// How the child ends right after queueing the writes (none of them awaited).
const ENDINGS = {
  'process.exit()': 'process.exit(0)',
  'the end of the script': '',
  'an uncaught exception': "throw new Error('boom')",
}

let work
before(() => {
  work = tempDir('lmdb-cache-exit-')
})
after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

function childScript(backend, dir, ending) {
  const { module, open } = BACKENDS[backend]
  // The writes and the ending run in a timer callback, so the exception is a real uncaught
  // one (not a rejected top-level await).
  return `
    import { ${open} as open } from ${JSON.stringify(module)}
    const cache = await open({ path: ${JSON.stringify(dir)} })
    setTimeout(() => {
      for (let i = 0; i < ${WRITES}; i++) cache.set('k' + i, { i, pad: 'x'.repeat(200) })
      ${ending}
    }, 0)
  `
}

async function countKept(backend, dir) {
  const cache = backend === 'lmdb' ? await openLmdbCache({ path: dir }) : await openLevelBackedCache({ path: dir })
  try {
    let kept = 0
    for (let i = 0; i < WRITES; i++) if ((await cache.get(`k${i}`))?.i === i) kept++
    return kept
  } finally {
    await cache.close()
  }
}

for (const [name, ending] of Object.entries(ENDINGS)) {
  for (const backend of ['level', 'lmdb']) {
    test(`${backend}: ${WRITES} un-awaited sets survive ${name}`, { timeout: 30_000 }, async () => {
      const dir = path.join(work, `${backend}-${name.replace(/\W+/g, '-')}`)
      const child = await run(process.execPath, ['--input-type=module', '-e', childScript(backend, dir, ending)])
      if (ending.startsWith('throw')) {
        assert.equal(child.code, 1, child.stderr)
        assert.match(child.stderr, /Error: boom/)
      } else {
        assert.equal(child.code, 0, child.stderr)
      }
      assert.equal(await countKept(backend, dir), WRITES, `writes kept after ${name}`)
    })
  }
}

test('a worker that calls process.exit() after un-awaited sets keeps them too', { timeout: 30_000 }, async () => {
  const dir = path.join(work, 'worker-exit')
  const code = childScript('lmdb', dir, 'process.exit(0)')
  const script = `
    import { Worker } from 'node:worker_threads'
    const worker = new Worker(new URL('data:text/javascript,' + encodeURIComponent(${JSON.stringify(code)})))
    worker.on('error', (e) => { console.error(e); process.exitCode = 2 })
    worker.on('exit', (c) => { if (c !== 0) process.exitCode = 3 })
  `
  const child = await run(process.execPath, ['--input-type=module', '-e', script])
  assert.equal(child.code, 0, child.stderr)
  assert.equal(await countKept('lmdb', dir), WRITES)
})
