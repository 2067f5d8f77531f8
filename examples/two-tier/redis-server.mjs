// Starts a throwaway local redis-server (Debian's `redis-server` package) on 127.0.0.1 and a
// free port, without persistence, in a temporary directory; used by the two-tier example,
// its test (__test__/two-tier.test.js) and the Keyv benchmark. `stop()` ends it and removes
// the directory.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

/** The path of redis-server, or null when it is not installed. */
export function findRedisServer() {
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' })
  const bin = found.status === 0 ? found.stdout.trim() : ''
  return bin === '' ? null : bin
}

async function freePort() {
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Resolves once something accepts connections on the port, or rejects after `ms`. */
async function waitForPort(port, ms, exited) {
  const deadline = Date.now() + ms
  for (;;) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1')
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (ok) return
    if (exited.value !== null) throw new Error(`redis-server exited (${exited.value}) before accepting connections`)
    if (Date.now() > deadline) throw new Error(`redis-server did not accept connections on port ${port} within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Starts redis-server; resolves with { url, port, stop }. Throws when it is not installed. */
export async function startRedisServer() {
  const bin = findRedisServer()
  if (bin === null) {
    throw new Error('redis-server is not installed (Debian/Ubuntu: apt-get install -y redis-server; .ci/run installs it)')
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-redis-'))
  const port = await freePort()
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no']
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'inherit'] })
  const exited = { value: null }
  const gone = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      exited.value = signal ?? code
      resolve()
    }),
  )
  try {
    await waitForPort(port, 10_000, exited)
  } catch (error) {
    child.kill('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
    throw error
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      if (exited.value === null) child.kill('SIGTERM')
      await gone
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}
