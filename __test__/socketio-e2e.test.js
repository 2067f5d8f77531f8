// End to end over loopback: the Socket.IO chat server of examples/socketio-chat with real
// socket.io-client connections, in process for both stores, and as a child process with the
// example client script.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, test } from 'node:test'
import { io } from 'socket.io-client'
import { openMessageStore } from '../examples/socketio-chat/message-store.js'
import { startServer } from '../examples/socketio-chat/server.js'

const EXAMPLE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'socketio-chat')

async function connect(url) {
  const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true })
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('connect_error', reject)
  })
  return socket
}

const call = (socket, event, payload) => socket.timeout(5000).emitWithAck(event, payload)

for (const kind of ['lmdb', 'sqlite']) {
  describe(`Socket.IO chat server (${kind} store)`, () => {
    let dir
    let store
    let server
    let defaultSessionId
    const sockets = []
    const client = async () => {
      const socket = await connect(server.url)
      sockets.push(socket)
      return socket
    }

    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), `socketio-e2e-${kind}-`))
      store = await openMessageStore(kind, dir)
      ;({ defaultSessionId } = await store.initDatabase())
      server = await startServer({ store, port: 0 })
      assert.ok(server.port > 0)
      assert.equal(server.url, `http://127.0.0.1:${server.port}`)
    })
    after(async () => {
      for (const socket of sockets) socket.close()
      await server.close()
      await store.close()
      fs.rmSync(dir, { recursive: true, force: true })
    })

    test('create a session, send (acked with the stored message), receive, fetch history pages', async () => {
      const alice = await client()
      const bob = await client()
      const session = await call(alice, 'session:create', { title: 'e2e' })
      assert.equal(session.title, 'e2e')
      assert.deepEqual(await call(bob, 'session:get', { session_id: session.id }), session)
      assert.deepEqual(await call(bob, 'session:join', { session_id: session.id }), { joined: session.id })
      const received = []
      const allReceived = new Promise((resolve) => {
        bob.on('message:new', (m) => {
          received.push(m)
          if (received.length === 5) resolve()
        })
      })
      const sent = []
      for (let i = 0; i < 5; i++) {
        const m = await call(alice, 'message:send', { session_id: session.id, content: `hello ${i}`, agent_id: i === 2 ? 'chloe' : undefined })
        assert.equal(m.content, `hello ${i}`)
        assert.equal(m.session_id, session.id)
        // Acked after the commit: retrievable at once, by another connection too.
        assert.deepEqual(await call(bob, 'message:get', { message_uuid: m.message_uuid }), m)
        sent.push(m)
      }
      await allReceived
      assert.deepEqual(received, sent)
      assert.equal(sent[2].agent_id, 'chloe')

      const first = await call(bob, 'history:fetch', { session_id: session.id, direction: 'asc', limit: 2, includeTotal: true })
      assert.equal(first.total, 5)
      assert.deepEqual(first.messages, sent.slice(0, 2))
      const second = await call(bob, 'history:fetch', { session_id: session.id, direction: 'asc', limit: 2, cursor: first.nextCursor })
      assert.deepEqual(second.messages, sent.slice(2, 4))
      const third = await call(bob, 'history:fetch', { session_id: session.id, direction: 'asc', limit: 2, cursor: second.nextCursor })
      assert.deepEqual(third, { messages: sent.slice(4), nextCursor: null })
      const newest = await call(bob, 'history:fetch', { session_id: session.id, limit: 3 })
      assert.deepEqual(newest.messages, sent.slice(2).reverse())

      const agents = await call(alice, 'agents:list')
      assert.deepEqual(
        agents.map((a) => a.id),
        ['chloe', 'phil_connors'],
      )
      const defaultHistory = await call(alice, 'history:fetch', { session_id: defaultSessionId })
      assert.deepEqual(defaultHistory, { messages: [], nextCursor: null })
    })

    test('errors come back as { error: { code, message } } and leave the connection usable', async () => {
      const socket = await client()
      const session = await call(socket, 'session:create', {})
      const cases = [
        ['message:send', { session_id: 'missing', content: 'x' }, 'ERR_SESSION_NOT_FOUND'],
        ['message:send', { session_id: session.id }, 'ERR_INVALID_ARGUMENT'],
        ['message:send', 'not an object', 'ERR_INVALID_ARGUMENT'],
        ['message:get', { message_uuid: '00000000-0000-4000-8000-000000000000' }, 'ERR_MESSAGE_NOT_FOUND'],
        ['history:fetch', { session_id: session.id, cursor: 'bogus' }, 'ERR_INVALID_CURSOR'],
        ['history:fetch', { session_id: session.id, limit: 5000 }, 'ERR_INVALID_ARGUMENT'],
        ['history:fetch', { session_id: 'missing' }, 'ERR_SESSION_NOT_FOUND'],
        ['session:create', { id: session.id }, 'ERR_SESSION_EXISTS'],
        ['session:get', { session_id: 'missing' }, 'ERR_SESSION_NOT_FOUND'],
        ['session:join', { session_id: 'missing' }, 'ERR_SESSION_NOT_FOUND'],
      ]
      for (const [event, payload, code] of cases) {
        const reply = await call(socket, event, payload)
        assert.equal(reply.error?.code, code, `${event} ${JSON.stringify(payload)}`)
        assert.equal(typeof reply.error.message, 'string')
      }
      // Without an acknowledgement callback the message is still stored, and nothing breaks.
      socket.emit('message:send', { session_id: session.id, content: 'fire and forget' })
      socket.emit('history:fetch')
      const deadline = Date.now() + 5000
      let page
      do {
        page = await call(socket, 'history:fetch', { session_id: session.id })
      } while (page.messages.length === 0 && Date.now() < deadline)
      assert.deepEqual(
        page.messages.map((m) => m.content),
        ['fire and forget'],
      )
    })

    test("concurrent clients: every acked message is in the history, in each sender's order", async () => {
      const session = await call(await client(), 'session:create', { title: 'busy' })
      const clients = await Promise.all(Array.from({ length: 8 }, () => client()))
      const acked = await Promise.all(
        clients.map(async (socket, c) => {
          const mine = []
          for (let i = 0; i < 25; i++) {
            const m = await call(socket, 'message:send', { session_id: session.id, content: `${c}/${i}` })
            assert.equal(m.error, undefined)
            mine.push(m)
          }
          return mine
        }),
      )
      const history = []
      let cursor = null
      do {
        const page = await call(clients[0], 'history:fetch', { session_id: session.id, direction: 'asc', limit: 64, cursor })
        history.push(...page.messages)
        cursor = page.nextCursor
      } while (cursor !== null)
      assert.equal(history.length, 200)
      assert.deepEqual(new Set(history.map((m) => m.message_uuid)), new Set(acked.flat().map((m) => m.message_uuid)))
      for (let c = 0; c < clients.length; c++) {
        const order = history.filter((m) => m.content.startsWith(`${c}/`)).map((m) => m.content)
        assert.deepEqual(
          order,
          acked[c].map((m) => m.content),
        )
      }
      for (let i = 1; i < history.length; i++) assert.ok(history[i - 1].created_at < history[i].created_at)
    })
  })
}

test('server.js and client.js as processes: port 0 printed, client round trip, clean shutdown', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'socketio-e2e-cli-'))
  const server = spawn(process.execPath, [path.join(EXAMPLE, 'server.js'), '--port', '0', '--db', dir], { stdio: ['ignore', 'pipe', 'pipe'] })
  try {
    let out = ''
    server.stdout.setEncoding('utf8')
    const port = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 10_000)
      server.stdout.on('data', (chunk) => {
        out += chunk
        const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out)
        if (match !== null) {
          clearTimeout(timer)
          resolve(Number(match[1]))
        }
      })
      server.once('exit', (code) => reject(new Error(`server exited with ${code}: ${out}`)))
    })
    assert.ok(port > 0)
    const clientOut = await new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(EXAMPLE, 'client.js'), '--url', `http://127.0.0.1:${port}`, '--messages', '3'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      let text = ''
      child.stdout.setEncoding('utf8')
      child.stdout.on('data', (chunk) => (text += chunk))
      child.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`client exited with ${code}: ${text}`))))
    })
    assert.match(clientOut, /history \(3 messages\):/)
    assert.match(clientOut, /\[user\] hello #1\n.*\[user\] hello #2\n.*\[user\] hello #3/)
    const exited = new Promise((resolve) => server.once('exit', (code, signal) => resolve({ code, signal })))
    server.kill('SIGTERM')
    assert.deepEqual(await exited, { code: 0, signal: null })
  } finally {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
