// The fixture of tests that need another process on a cache directory's LMDB environment,
// outside this package: fixtures/hold_write_txn.rs, built with cargo, holds its writer lock.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** Builds the fixture; its path, or the reason it cannot be built here. */
export function buildHolder() {
  const built = spawnSync('cargo', ['build', '--quiet', '--example', 'hold-write-txn'], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 })
  if (built.error) return { skip: `cargo is not available (${built.error.code}): the fixture cannot be built` }
  assert.equal(built.status, 0, `cargo build --example hold-write-txn failed:\n${built.stderr}`)
  const exe = path.join(ROOT, 'target', 'debug', 'examples', process.platform === 'win32' ? 'hold-write-txn.exe' : 'hold-write-txn')
  assert.ok(fs.existsSync(exe), `${exe} was not built`)
  return { exe }
}

/** Starts the holder on `dir`; resolves once it holds the writer lock. */
export function holdWriterLock(exe, dir) {
  const child = spawn(exe, [dir], { stdio: ['pipe', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.setEncoding('utf8')
  const holding = new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      out += chunk
      if (out.includes('holding')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`the holder exited with ${code} before holding the lock`)))
  })
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)))
  return { holding, release: () => child.stdin.end('release\n'), exited, output: () => out }
}
