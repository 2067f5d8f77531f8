// Helpers of the CLI, migration and packaging tests: running commands as child processes,
// fingerprinting directories, building level-cache (LevelDB) directories.
import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const CLI = path.join(ROOT, 'bin', 'lmdb-cache.js')
export const SEP = '\u241F'

export function tempDir(prefix = 'lmdb-cache-cli-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix))
}

/**
 * Runs a command; resolves { code, signal, stdout, stderr } (never rejects on a non-zero
 * exit). Killed after `timeout` ms.
 */
export function run(command, args, { cwd = ROOT, env, input, timeout = 30_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout)
    child.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
    child.stdin.end(input)
  })
}

/** Runs `node bin/lmdb-cache.js ...args`. */
export function cli(args, options) {
  return run(process.execPath, [CLI, ...args], options)
}

/** Name, size, mtime and SHA-256 of every file under `dir`: equal fingerprints, unchanged files. */
export function fingerprint(dir) {
  const out = {}
  for (const name of fs.readdirSync(dir).sort()) {
    const file = path.join(dir, name)
    const stat = fs.statSync(file)
    if (stat.isDirectory()) {
      out[`${name}/`] = fingerprint(file)
      continue
    }
    const hash = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')
    out[name] = { size: stat.size, mtimeMs: stat.mtimeMs, ino: stat.ino, hash }
  }
  return out
}

/** The files of a cache directory after an open (`flush-state` where the OS names its boot). */
export const CACHE_DIR_FILES = ['data.mdb', 'disk-reserve', ...(process.platform === 'linux' ? ['flush-state'] : []), 'lock.mdb']
