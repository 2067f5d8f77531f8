// @ts-check
// A Socket.IO chat server persisting sessions and messages in a MessageStore (LMDB by
// default, SQLite with --store sqlite). It listens on 127.0.0.1 only.
//
//   node examples/socketio-chat/server.js [--store lmdb|sqlite] [--port N] [--db DIR] [--timings]
//
// --port (or env PORT; default 3000; 0 picks a free port, printed), --store (or env
// CHAT_STORE), --db (or env CHAT_DB; default examples/socketio-chat/data/<store>).
//
// Events (every reply is one acknowledgement argument: the result, or { error: { code, message } }):
//   session:create  { title?, id?, session_metadata? }           -> Session
//   session:get     { session_id }                               -> Session
//   session:join    { session_id }                               -> { joined }  (then receives message:new)
//   message:send    { session_id, content, role?, agent_id?, metadata? } -> Message (stored, committed)
//   message:get     { message_uuid }                             -> Message
//   history:fetch   { session_id, skip?, limit?, cursor?, direction?, includeTotal? } -> { messages, nextCursor, total? }
//   agents:list     -                                            -> AgentCard[]
// A stored message is also emitted as message:new to the other sockets that joined its session.

import http from 'node:http'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { Server } from 'socket.io'
import { MessageStoreError, openMessageStore } from './message-store.js'

const HERE = path.dirname(fileURLToPath(import.meta.url))

/** @param {unknown} payload */
const fields = (payload) => /** @type {Record<string, any>} */ (payload !== null && typeof payload === 'object' ? payload : {})

const room = (/** @type {string} */ sessionId) => `session:${sessionId}`

/** The error object sent back: the store's coded errors as they are, anything else hidden. */
function errorReply(error) {
  if (error instanceof MessageStoreError) return { error: { code: error.code, message: error.message } }
  console.error('chat server: internal error:', error)
  return { error: { code: 'ERR_INTERNAL', message: 'internal error' } }
}

/**
 * Starts the server on `host:port` (port 0: any free port) over an open store.
 * @param {{ store: import('./message-store.js').MessageStore, port?: number, host?: string, timings?: boolean }} opts
 */
export async function startServer({ store, port = 0, host = '127.0.0.1', timings = false }) {
  const httpServer = http.createServer((_req, res) => {
    res.writeHead(404).end()
  })
  const io = new Server(httpServer, { serveClient: false })
  /** Store-call durations (ms) per event, when `timings` is on. @type {Map<string, number[]>} */
  const durations = new Map()

  /**
   * @param {import('socket.io').Socket} socket
   * @param {string} event
   * @param {(payload: Record<string, any>) => Promise<unknown>} handler
   */
  const on = (socket, event, handler) => {
    socket.on(event, async (payload, ack) => {
      if (typeof payload === 'function' && ack === undefined) [payload, ack] = [undefined, payload]
      const reply = typeof ack === 'function' ? ack : () => {}
      const started = timings ? performance.now() : 0
      let result
      try {
        result = await handler(fields(payload))
      } catch (error) {
        reply(errorReply(error))
        return
      }
      if (timings) {
        let list = durations.get(event)
        if (list === undefined) {
          list = []
          durations.set(event, list)
        }
        list.push(performance.now() - started)
      }
      reply(result)
    })
  }

  const notFound = (code, what) => new MessageStoreError(code, `${what} does not exist`)

  io.on('connection', (socket) => {
    on(socket, 'session:create', (p) => store.createSession({ id: p.id, title: p.title, session_metadata: p.session_metadata }))
    on(socket, 'session:get', async (p) => {
      const session = await store.getSession(p.session_id)
      if (session === null) throw notFound('ERR_SESSION_NOT_FOUND', `session ${JSON.stringify(p.session_id)}`)
      return session
    })
    on(socket, 'session:join', async (p) => {
      if ((await store.getSession(p.session_id)) === null) throw notFound('ERR_SESSION_NOT_FOUND', `session ${JSON.stringify(p.session_id)}`)
      await socket.join(room(p.session_id))
      return { joined: p.session_id }
    })
    on(socket, 'message:send', async (p) => {
      const message = await store.createMessage({
        session_id: p.session_id,
        content: p.content,
        role: p.role,
        agent_id: p.agent_id,
        metadata: p.metadata,
      })
      socket.to(room(message.session_id)).emit('message:new', message)
      return message
    })
    on(socket, 'message:get', async (p) => {
      const message = await store.getMessageByUuid(p.message_uuid)
      if (message === null) throw notFound('ERR_MESSAGE_NOT_FOUND', `message ${JSON.stringify(p.message_uuid)}`)
      return message
    })
    on(socket, 'history:fetch', (p) =>
      store.getSessionMessages(p.session_id, {
        skip: p.skip,
        limit: p.limit,
        cursor: p.cursor,
        direction: p.direction,
        includeTotal: p.includeTotal,
      }),
    )
    on(socket, 'agents:list', () => store.listAgentCards())
  })

  await new Promise((resolve, reject) => {
    httpServer.once('error', reject)
    httpServer.listen(port, host, () => {
      httpServer.off('error', reject)
      resolve(undefined)
    })
  })
  const address = /** @type {import('node:net').AddressInfo} */ (httpServer.address())
  return {
    port: address.port,
    url: `http://${host}:${address.port}`,
    io,
    /** Store-call durations in ms per event (with `timings`). */
    durations,
    /** Stops accepting, disconnects every client; the store stays open (its owner closes it). */
    close: () => io.close(),
  }
}

// ---------------------------------------------------------------------------------------
// Command line

async function main() {
  const { values } = parseArgs({
    options: {
      store: { type: 'string', default: process.env.CHAT_STORE ?? 'lmdb' },
      port: { type: 'string', default: process.env.PORT ?? '3000' },
      db: { type: 'string', default: process.env.CHAT_DB },
      timings: { type: 'boolean', default: false },
    },
  })
  const kind = values.store
  if (kind !== 'lmdb' && kind !== 'sqlite') throw new Error(`--store must be lmdb or sqlite, got ${kind}`)
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be a port number, got ${values.port}`)
  const dir = path.resolve(values.db ?? path.join(HERE, 'data', kind))
  const store = await openMessageStore(kind, dir)
  const { defaultSessionId } = await store.initDatabase()
  const server = await startServer({ store, port, timings: values.timings })
  console.log(`chat server listening on ${server.url} (store: ${kind} in ${dir})`)
  console.log(`default session: ${defaultSessionId}`)

  let closing = false
  const shutdown = async () => {
    if (closing) return
    closing = true
    await server.close()
    await store.close()
    process.exit(0)
  }
  process.on('SIGINT', shutdown)
  process.on('SIGTERM', shutdown)
  // Under a parent's fork() (the load test): report the port, answer stats requests.
  if (process.send !== undefined) {
    process.send({ type: 'listening', port: server.port, defaultSessionId })
    process.on('message', (/** @type {any} */ msg) => {
      if (msg?.type === 'durations') {
        process.send?.({ type: 'durations', durations: Object.fromEntries(server.durations) })
        server.durations.clear()
      } else if (msg?.type === 'close') {
        shutdown()
      }
    })
    process.on('disconnect', shutdown)
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((error) => {
    console.error(error)
    process.exit(1)
  })
}
