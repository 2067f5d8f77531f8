// @ts-check
// A small client for server.js: creates a session, sends a few messages (each acknowledged
// with the stored message), then prints the session's history, oldest first.
//
//   node examples/socketio-chat/client.js [--url http://127.0.0.1:3000] [--messages 3]
//
// --url defaults to env CHAT_URL, else http://127.0.0.1:$PORT (PORT defaults to 3000).

import { parseArgs } from 'node:util'
import { io } from 'socket.io-client'

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: process.env.CHAT_URL ?? `http://127.0.0.1:${process.env.PORT ?? 3000}` },
    messages: { type: 'string', default: '3' },
  },
})

/** Emits and waits for the acknowledgement; a reply { error } becomes a thrown Error. */
async function call(socket, event, payload) {
  const reply = await socket.timeout(5000).emitWithAck(event, payload)
  if (reply !== null && typeof reply === 'object' && 'error' in reply) {
    throw Object.assign(new Error(`${event}: ${reply.error.message}`), { code: reply.error.code })
  }
  return reply
}

const socket = io(values.url, { transports: ['websocket'], reconnection: false })
try {
  await new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(undefined))
    socket.once('connect_error', reject)
  })
  const session = await call(socket, 'session:create', { title: `client.js ${new Date().toISOString()}` })
  console.log(`session ${session.id} (${session.title})`)
  for (let i = 1; i <= Number(values.messages); i++) {
    const message = await call(socket, 'message:send', { session_id: session.id, content: `hello #${i}`, role: 'user' })
    console.log(`sent     ${message.created_at} ${message.message_uuid} ${JSON.stringify(message.content)}`)
  }
  const page = await call(socket, 'history:fetch', { session_id: session.id, direction: 'asc', limit: 50, includeTotal: true })
  console.log(`history (${page.total} messages):`)
  for (const m of page.messages) console.log(`  ${m.created_at} [${m.role}] ${m.content}`)
} catch (error) {
  console.error(`client: ${error.message}`)
  process.exitCode = 1
} finally {
  socket.close()
}
