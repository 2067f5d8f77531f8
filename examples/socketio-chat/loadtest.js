// @ts-check
// Load test of the chat example: LMDB store vs SQLite store, at the store level and end to
// end through Socket.IO over loopback. Checks as it goes that no acknowledged message is
// lost: every acked message must be in its session's history, in order, and fetching it by
// uuid right after its ack must succeed.
//
//   node examples/socketio-chat/loadtest.js [--clients 50] [--messages 200] [--sessions 10]
//       [--readers 4] [--reader-interval 10] [--rounds 3] [--concurrency 50,500]
//       [--time-limit 150] [--out examples/socketio-chat/results.md | --no-write]
//
// First, a socket.io echo server (no store) gives the transport's own ceiling. Then each
// round runs, for each store (the order alternating between rounds), in fresh directories
// under the OS temp dir:
//   1. store level (a child process): for each concurrency C, C concurrent callers create
//      clients*messages messages in total by direct store calls, each awaiting its
//      createMessage and then reading the message back by uuid; then once more at the first
//      C with the other durability setting (LMDB 'nosync'; SQLite synchronous=FULL, fewer
//      messages), for context;
//   2. end to end: the server (server.js, a child process) and `clients` socket.io clients in
//      this process, each sending `messages` messages one after another (the next once the
//      previous is acked; after each ack the client also fetches the message by uuid), while
//      `readers` more clients, in a process of their own (so that their round trips are not
//      held up by the senders' event loop: real readers are other machines), fetch a
//      50-message history page every `reader-interval` ms.
// After every run, each session's history is read back and checked against the acks.
// Throughputs and latencies are the median over the rounds. Exit code 1 if any message was
// lost or any check failed.

import { fork } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { io } from 'socket.io-client'
import { SQLITE_PRAGMAS, openMessageStore } from './message-store.js'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const SELF = fileURLToPath(import.meta.url)
const KINDS = /** @type {const} */ (['lmdb', 'sqlite'])
const PAGE = 50

const { values: args } = parseArgs({
  options: {
    clients: { type: 'string', default: '50' },
    messages: { type: 'string', default: '200' },
    sessions: { type: 'string', default: '10' },
    readers: { type: 'string', default: '4' },
    'reader-interval': { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '50,500' },
    'time-limit': { type: 'string', default: '150' },
    out: { type: 'string', default: path.join(HERE, 'results.md') },
    'no-write': { type: 'boolean', default: false },
    // internal: the store-level and the readers' phases, run in child processes
    phase: { type: 'string' },
    url: { type: 'string' },
    'session-ids': { type: 'string' },
    kind: { type: 'string' },
    dir: { type: 'string' },
  },
})

const int = (name, min, max) => {
  const n = Number(args[name])
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer in ${min}..${max}, got ${args[name]}`)
  return n
}
const CLIENTS = int('clients', 1, 1000)
const MESSAGES = int('messages', 1, 100_000)
const SESSIONS = Math.min(int('sessions', 1, 1000), CLIENTS)
const READERS = int('readers', 0, 100)
const READER_INTERVAL = int('reader-interval', 0, 10_000)
const ROUNDS = int('rounds', 1, 20)
const TIME_LIMIT_MS = int('time-limit', 5, 3600) * 1000
const CONCURRENCY = String(args.concurrency)
  .split(',')
  .map((c) => Number(c))
if (CONCURRENCY.some((c) => !Number.isInteger(c) || c < 1 || c > CLIENTS * MESSAGES)) throw new Error(`bad --concurrency ${args.concurrency}`)
const TOTAL = CLIENTS * MESSAGES

// ---------------------------------------------------------------------------------------
// Helpers

/** Nearest-rank percentile of unsorted samples. */
function percentile(samples, q) {
  if (samples.length === 0) return NaN
  const sorted = Float64Array.from(samples).sort()
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]
}
const median = (xs) => percentile(xs, 0.5)

class Deadline {
  constructor(ms) {
    this.at = Date.now() + ms
  }
  check(what) {
    if (Date.now() > this.at) throw new Error(`time limit exceeded during ${what}`)
  }
  get left() {
    return Math.max(0, this.at - Date.now())
  }
}

/**
 * Checks a session's history against what was acked: same set, no duplicates, strictly
 * increasing created_at, and each sender's messages in the order they were sent.
 * @param {any[]} history ascending
 * @param {Map<string, any[]>} ackedBySender sender -> messages acked for this session, in send order
 */
function verifyHistory(history, ackedBySender, total) {
  const problems = { lost: 0, duplicates: 0, unexpected: 0, orderViolations: 0, totalMismatch: 0 }
  const seen = new Set()
  for (let i = 0; i < history.length; i++) {
    if (seen.has(history[i].message_uuid)) problems.duplicates++
    seen.add(history[i].message_uuid)
    if (i > 0 && !(history[i - 1].created_at < history[i].created_at)) problems.orderViolations++
  }
  const position = new Map(history.map((m, i) => [m.message_uuid, i]))
  let ackedCount = 0
  for (const messages of ackedBySender.values()) {
    let last = -1
    for (const m of messages) {
      ackedCount++
      const at = position.get(m.message_uuid)
      if (at === undefined) {
        problems.lost++
        continue
      }
      if (JSON.stringify(history[at]) !== JSON.stringify(m)) problems.unexpected++
      if (at <= last) problems.orderViolations++
      last = at
    }
  }
  problems.unexpected += Math.max(0, seen.size - (ackedCount - problems.lost))
  if (total !== history.length) problems.totalMismatch++
  return problems
}

const addProblems = (a, b) => {
  for (const [k, v] of Object.entries(b)) a[k] = (a[k] ?? 0) + v
  return a
}

// ---------------------------------------------------------------------------------------
// Phase 1: the store level (in a child process)

/**
 * The store-level runs of a store: each concurrency, then one more at the first concurrency
 * with the other durability setting (LMDB without fsync; SQLite with an fsync per commit,
 * fewer messages as it is slow), for context.
 */
function storeRuns(kind) {
  const runs = CONCURRENCY.map((concurrency) => ({ id: `c${concurrency}`, concurrency, total: TOTAL, options: {} }))
  const concurrency = CONCURRENCY[0]
  if (kind === 'lmdb') runs.push({ id: 'variant', concurrency, total: TOTAL, options: { durability: 'nosync' } })
  else runs.push({ id: 'variant', concurrency, total: Math.max(concurrency, Math.ceil(TOTAL / 20)), options: { synchronous: 'FULL' } })
  return runs
}

async function storePhase(kind, dir) {
  /** @type {Record<string, any>} */
  const results = {}
  for (const run of storeRuns(kind)) {
    const { concurrency, total } = run
    const phaseDir = path.join(dir, run.id)
    const store = await openMessageStore(kind, phaseDir, /** @type {any} */ (run.options))
    await store.initDatabase()
    const sessions = []
    for (let i = 0; i < SESSIONS; i++) sessions.push((await store.createSession({ title: `load ${i}` })).id)
    const perWorker = Math.floor(total / concurrency)
    const extra = total - perWorker * concurrency
    let getFailures = 0
    let createFailures = 0
    /** @type {Map<string, Map<string, any[]>>} session -> worker -> acked */
    const acked = new Map(sessions.map((s) => [s, new Map()]))
    const started = performance.now()
    await Promise.all(
      Array.from({ length: concurrency }, async (_, w) => {
        const sessionId = sessions[w % sessions.length]
        const mine = []
        acked.get(sessionId)?.set(String(w), mine)
        const count = perWorker + (w < extra ? 1 : 0)
        for (let i = 0; i < count; i++) {
          let m
          try {
            m = await store.createMessage({
              session_id: sessionId,
              content: `worker ${w} message ${i} ${'x'.repeat(80)}`,
              agent_id: w % 5 === 0 ? 'chloe' : null,
            })
          } catch {
            createFailures++
            continue
          }
          mine.push(m)
          const back = await store.getMessageByUuid(m.message_uuid)
          if (back === null || JSON.stringify(back) !== JSON.stringify(m)) getFailures++
        }
      }),
    )
    const elapsedMs = performance.now() - started
    const problems = { lost: 0, duplicates: 0, unexpected: 0, orderViolations: 0, totalMismatch: 0 }
    for (const sessionId of sessions) {
      const history = []
      let cursor = null
      do {
        const page = await store.getSessionMessages(sessionId, { direction: 'asc', limit: 1000, cursor })
        history.push(...page.messages)
        cursor = page.nextCursor
      } while (cursor !== null)
      const { total } = await store.getSessionMessages(sessionId, { limit: 1, includeTotal: true })
      addProblems(problems, verifyHistory(history, /** @type {Map<string, any[]>} */ (acked.get(sessionId)), total))
    }
    await store.close()
    fs.rmSync(phaseDir, { recursive: true, force: true })
    const created = total - createFailures
    results[run.id] = {
      concurrency,
      options: run.options,
      created,
      elapsedMs,
      perSecond: (created / elapsedMs) * 1000,
      createFailures,
      getFailures,
      ...problems,
    }
  }
  return results
}

function runStorePhase(kind, dir, deadline) {
  return new Promise((resolve, reject) => {
    const child = fork(SELF, [...process.argv.slice(2), '--phase', 'store', '--kind', kind, '--dir', dir], { stdio: 'inherit' })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`store phase (${kind}) exceeded the time limit`))
    }, deadline.left)
    let result = null
    child.on('message', (msg) => (result = msg))
    child.once('exit', (code) => {
      clearTimeout(timer)
      if (code === 0 && result !== null) resolve(result)
      else reject(new Error(`store phase (${kind}) exited with ${code}`))
    })
  })
}

// ---------------------------------------------------------------------------------------
// Phase 2: end to end through Socket.IO

function startServerProcess(kind, dir, deadline) {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(HERE, 'server.js'), ['--store', kind, '--db', dir, '--port', '0', '--timings'], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    })
    const timer = setTimeout(() => reject(new Error('server did not start')), Math.min(15_000, deadline.left))
    child.once('message', (/** @type {any} */ msg) => {
      clearTimeout(timer)
      if (msg?.type === 'listening') resolve({ child, port: msg.port })
      else reject(new Error(`unexpected message from server: ${JSON.stringify(msg)}`))
    })
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)))
  })
}

async function connect(url) {
  const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true })
  await new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(undefined))
    socket.once('connect_error', reject)
  })
  return socket
}

async function call(socket, event, payload) {
  const reply = await socket.timeout(10_000).emitWithAck(event, payload)
  if (reply !== null && typeof reply === 'object' && 'error' in reply) {
    throw Object.assign(new Error(`${event}: ${reply.error.message}`), { code: reply.error.code })
  }
  return reply
}

async function e2ePhase(kind, dir, deadline) {
  const { child, port } = await startServerProcess(kind, dir, deadline)
  const url = `http://127.0.0.1:${port}`
  const sockets = []
  /** @type {{ stop(): Promise<{ roundTrips: number[], failures: number }>, kill(): void } | undefined} */
  let readers
  try {
    const setup = await connect(url)
    sockets.push(setup)
    const sessions = []
    for (let i = 0; i < SESSIONS; i++) sessions.push((await call(setup, 'session:create', { title: `load ${i}` })).id)
    const writers = await Promise.all(Array.from({ length: CLIENTS }, () => connect(url)))
    sockets.push(...writers)
    readers = await startReaders(url, sessions, deadline)

    /** @type {Map<string, Map<string, any[]>>} */
    const acked = new Map(sessions.map((s) => [s, new Map()]))
    let sendFailures = 0
    let getFailures = 0
    const started = performance.now()
    const gets = []
    await Promise.all(
      writers.map(async (socket, c) => {
        const sessionId = sessions[c % sessions.length]
        const mine = []
        acked.get(sessionId)?.set(String(c), mine)
        for (let i = 0; i < MESSAGES; i++) {
          if ((i & 15) === 0) deadline.check(`the end-to-end phase (${kind})`)
          let m
          try {
            m = await call(socket, 'message:send', {
              session_id: sessionId,
              content: `client ${c} message ${i} ${'x'.repeat(80)}`,
              agent_id: c % 5 === 0 ? 'chloe' : null,
            })
          } catch {
            sendFailures++
            continue
          }
          mine.push(m)
          // Create-then-get: fetched by uuid as soon as the ack arrives (not awaited before
          // the next send, so it checks the race without halving the send rate).
          gets.push(
            call(socket, 'message:get', { message_uuid: m.message_uuid }).then(
              (back) => {
                if (JSON.stringify(back) !== JSON.stringify(m)) getFailures++
              },
              () => getFailures++,
            ),
          )
        }
      }),
    )
    const sendElapsedMs = performance.now() - started
    await Promise.all(gets)
    const elapsedMs = performance.now() - started
    const { roundTrips, failures: readerFailures } = await readers.stop()
    // The server's store-call timings so far: the readers' pages, not the verification below.
    /** @type {Record<string, number[]>} */
    const durations = await new Promise((resolve) => {
      child.once('message', (/** @type {any} */ msg) => resolve(msg.durations))
      child.send({ type: 'durations' })
    })

    const problems = { lost: 0, duplicates: 0, unexpected: 0, orderViolations: 0, totalMismatch: 0 }
    for (const sessionId of sessions) {
      const history = []
      let cursor = null
      do {
        const page = await call(setup, 'history:fetch', { session_id: sessionId, direction: 'asc', limit: 1000, cursor })
        history.push(...page.messages)
        cursor = page.nextCursor
      } while (cursor !== null)
      const { total } = await call(setup, 'history:fetch', { session_id: sessionId, limit: 1, includeTotal: true })
      addProblems(problems, verifyHistory(history, /** @type {Map<string, any[]>} */ (acked.get(sessionId)), total))
    }

    // Round trips of a history page with the senders done (the server otherwise idle).
    const idleTrips = []
    for (let i = 0; i < 200; i++) {
      const t = performance.now()
      await call(setup, 'history:fetch', { session_id: sessions[i % sessions.length], limit: PAGE, direction: 'desc' })
      idleTrips.push(performance.now() - t)
    }
    const created = TOTAL - sendFailures
    return {
      created,
      elapsedMs,
      sendElapsedMs,
      // Creation throughput: acks per second over the sending (the gets by uuid run alongside).
      perSecond: (created / sendElapsedMs) * 1000,
      sendFailures,
      getFailures,
      readerFailures,
      ...problems,
      pageRoundTrip: summarize(roundTrips, (d) => d),
      pageIdleRoundTrip: summarize(idleTrips, (d) => d),
      pageStore: summarize(durations['history:fetch'] ?? [], (d) => d),
      sendStore: summarize(durations['message:send'] ?? [], (d) => d),
    }
  } finally {
    for (const socket of sockets) socket.close()
    readers?.kill()
    const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', resolve))
    if (child.connected) child.send({ type: 'close' })
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }
}

/**
 * The history readers' phase (a child process): READERS clients each fetch a PAGE-message
 * page every READER_INTERVAL ms until told to stop, then report their round trips.
 */
async function readersPhase() {
  const sessions = String(args['session-ids']).split(',')
  const sockets = await Promise.all(Array.from({ length: READERS }, () => connect(String(args.url))))
  let reading = true
  const stopped = new Promise((resolve) => {
    process.on('message', (/** @type {any} */ msg) => {
      if (msg?.type !== 'stop') return
      reading = false
      resolve(undefined)
    })
  })
  /** @type {number[]} */
  const roundTrips = []
  let failures = 0
  process.send?.({ type: 'ready' })
  await Promise.all(
    sockets.map(async (socket, r) => {
      let n = 0
      while (reading) {
        const sessionId = sessions[(r + n++) % sessions.length]
        const t = performance.now()
        try {
          const page = await call(socket, 'history:fetch', { session_id: sessionId, limit: PAGE, direction: 'desc' })
          roundTrips.push(performance.now() - t)
          if (page.messages.length > PAGE) failures++
        } catch {
          failures++
        }
        if (READER_INTERVAL > 0) await new Promise((resolve) => setTimeout(resolve, READER_INTERVAL))
      }
    }),
  )
  await stopped
  for (const socket of sockets) socket.close()
  process.send?.({ type: 'done', roundTrips, failures }, () => process.disconnect())
}

/** Starts the readers' process; resolves once its clients are connected and reading. */
function startReaders(url, sessions, deadline) {
  const child = fork(SELF, [...process.argv.slice(2), '--phase', 'readers', '--url', url, '--session-ids', sessions.join(',')], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  const messageOfType = (type) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the readers' process sent no "${type}"`)), Math.min(30_000, deadline.left))
      const onMessage = (/** @type {any} */ msg) => {
        if (msg?.type !== type) return
        clearTimeout(timer)
        child.off('message', onMessage)
        resolve(msg)
      }
      child.on('message', onMessage)
      exited.then(() => {
        clearTimeout(timer)
        reject(new Error(`the readers' process exited before "${type}"`))
      })
    })
  return messageOfType('ready').then(() => ({
    async stop() {
      const done = messageOfType('done')
      child.send({ type: 'stop' })
      const { roundTrips, failures } = /** @type {any} */ (await done)
      await exited
      return { roundTrips, failures }
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    },
  }))
}

function summarize(samples, f) {
  const xs = samples.map(f)
  return { n: xs.length, p50: percentile(xs, 0.5), p99: percentile(xs, 0.99) }
}

// ---------------------------------------------------------------------------------------
// Baseline: what socket.io itself sustains here (an echo server, no store)

async function echoServer() {
  const { createServer } = await import('node:http')
  const { Server } = await import('socket.io')
  const httpServer = createServer()
  const ioServer = new Server(httpServer, { serveClient: false })
  ioServer.on('connection', (socket) => socket.on('echo', (payload, ack) => ack(payload)))
  httpServer.listen(0, '127.0.0.1', () => process.send?.({ type: 'listening', port: /** @type {any} */ (httpServer.address()).port }))
  process.on('disconnect', () => process.exit(0))
}

async function echoPhase(deadline) {
  const child = fork(SELF, ['--phase', 'echo'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const sockets = []
  try {
    const port = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('echo server did not start')), Math.min(15_000, deadline.left))
      child.once('message', (/** @type {any} */ msg) => {
        clearTimeout(timer)
        resolve(msg.port)
      })
    })
    sockets.push(...(await Promise.all(Array.from({ length: CLIENTS }, () => connect(`http://127.0.0.1:${port}`)))))
    const each = Math.max(1, Math.floor(MESSAGES / 2))
    const payload = { session_id: '00000000-0000-4000-8000-000000000000', content: `client 0 message 0 ${'x'.repeat(80)}`, agent_id: null }
    const started = performance.now()
    await Promise.all(
      sockets.map(async (socket) => {
        for (let i = 0; i < each; i++) await socket.timeout(10_000).emitWithAck('echo', payload)
      }),
    )
    return { perSecond: ((each * CLIENTS) / (performance.now() - started)) * 1000 }
  } finally {
    for (const socket of sockets) socket.close()
    child.disconnect()
  }
}

// ---------------------------------------------------------------------------------------
// Report

const fmtInt = (n) => Math.round(n).toLocaleString('en-US')
const fmtMs = (n) => (Number.isNaN(n) ? '-' : n < 1 ? n.toFixed(3) : n.toFixed(2))
const ratio = (a, b) => `${(a / b).toFixed(2)}x`

function machine() {
  const cpus = os.cpus()
  return `${cpus.length} × ${cpus[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, ${os.type()} ${os.release()}, Node ${process.version}`
}

function report(rounds, echo, startedAt, wallMs) {
  const by = (kind, pick) => rounds.map((r) => pick(r[kind]))
  const med = (kind, pick) => median(by(kind, pick))
  const sum = (kind, pick) => by(kind, pick).reduce((a, b) => a + b, 0)
  const pair = (kind, pick) => `${fmtMs(med(kind, (r) => pick(r).p50))} / ${fmtMs(med(kind, (r) => pick(r).p99))}`
  /** @type {string[][]} */
  const rows = []
  const targets = []
  const c0 = CONCURRENCY[0]
  for (const c of CONCURRENCY) {
    const l = med('lmdb', (r) => r.store[`c${c}`].perSecond)
    const s = med('sqlite', (r) => r.store[`c${c}`].perSecond)
    const main = c === c0
    rows.push([
      `store level, ${c} concurrent callers: messages/s`,
      fmtInt(l),
      fmtInt(s),
      ratio(l, s),
      main ? '>= 3x' : '',
      main ? (l >= 3 * s ? 'yes' : 'no') : '',
    ])
    if (main) targets.push({ name: `store-level throughput >= 3x SQLite (${c} concurrent callers)`, met: l >= 3 * s, value: ratio(l, s) })
  }
  const lMain = med('lmdb', (r) => r.store[`c${c0}`].perSecond)
  const sMain = med('sqlite', (r) => r.store[`c${c0}`].perSecond)
  const lNosync = med('lmdb', (r) => r.store.variant.perSecond)
  const sFull = med('sqlite', (r) => r.store.variant.perSecond)
  rows.push([`  same, ${c0} callers, LMDB durability 'nosync' vs SQLite as above`, fmtInt(lNosync), fmtInt(sMain), ratio(lNosync, sMain), '', ''])
  rows.push([`  same, ${c0} callers, LMDB as above vs SQLite synchronous=FULL`, fmtInt(lMain), fmtInt(sFull), ratio(lMain, sFull), '', ''])
  const le = med('lmdb', (r) => r.e2e.perSecond)
  const se = med('sqlite', (r) => r.e2e.perSecond)
  rows.push([`end to end via socket.io, ${CLIENTS} clients: messages acked/s`, fmtInt(le), fmtInt(se), ratio(le, se), '>= 3x', le >= 3 * se ? 'yes' : 'no'])
  targets.push({ name: 'end-to-end throughput >= 3x SQLite', met: le >= 3 * se, value: ratio(le, se) })
  rows.push([`  socket.io alone (echo, no store), ${CLIENTS} clients: round trips/s`, fmtInt(echo.perSecond), '', '', '', ''])
  const lp99 = med('lmdb', (r) => r.e2e.pageStore.p99)
  rows.push([
    `history page of ${PAGE}, store call in the server under load: p50 / p99 ms`,
    pair('lmdb', (r) => r.e2e.pageStore),
    pair('sqlite', (r) => r.e2e.pageStore),
    '',
    'p99 < 10 ms',
    lp99 < 10 ? 'yes' : 'no',
  ])
  targets.push({ name: `history page p99 < 10 ms (store call in the server, under load)`, met: lp99 < 10, value: `${fmtMs(lp99)} ms` })
  const lrt = med('lmdb', (r) => r.e2e.pageRoundTrip.p99)
  rows.push([
    `history page of ${PAGE}, socket.io round trip under load: p50 / p99 ms`,
    pair('lmdb', (r) => r.e2e.pageRoundTrip),
    pair('sqlite', (r) => r.e2e.pageRoundTrip),
    '',
    '(p99 < 10 ms)',
    lrt < 10 ? 'yes' : 'no',
  ])
  targets.push({ name: `history page p99 < 10 ms (socket.io round trip, under load)`, met: lrt < 10, value: `${fmtMs(lrt)} ms` })
  rows.push([
    `history page of ${PAGE}, socket.io round trip after the load: p50 / p99 ms`,
    pair('lmdb', (r) => r.e2e.pageIdleRoundTrip),
    pair('sqlite', (r) => r.e2e.pageIdleRoundTrip),
    '',
    '',
    '',
  ])
  rows.push([
    'message:send store call in the server under load: p50 / p99 ms',
    pair('lmdb', (r) => r.e2e.sendStore),
    pair('sqlite', (r) => r.e2e.sendStore),
    '',
    '',
    '',
  ])
  const lossOf = (kind) => {
    const phases = [(r) => r.e2e, ...Object.keys(rounds[0][kind].store).map((id) => (r) => r.store[id])]
    const total = (pick) => phases.reduce((a, phase) => a + sum(kind, (r) => pick(phase(r))), 0)
    return {
      acked: total((p) => p.created),
      lost: total((p) => p.lost),
      getFailures: total((p) => p.getFailures),
      other:
        total((p) => p.duplicates + p.unexpected + p.orderViolations + p.totalMismatch + (p.createFailures ?? 0) + (p.sendFailures ?? 0)) +
        sum(kind, (r) => r.e2e.readerFailures),
    }
  }
  const ll = lossOf('lmdb')
  const sl = lossOf('sqlite')
  rows.push([
    'acked / lost / other failed checks (all runs)',
    `${fmtInt(ll.acked)} / ${ll.lost} / ${ll.other}`,
    `${fmtInt(sl.acked)} / ${sl.lost} / ${sl.other}`,
    '',
    '0 lost',
    ll.lost + ll.other + sl.lost + sl.other === 0 ? 'yes' : 'no',
  ])
  rows.push([
    'create-then-get by uuid: failed / done',
    `${ll.getFailures} / ${fmtInt(ll.acked)}`,
    `${sl.getFailures} / ${fmtInt(sl.acked)}`,
    '',
    '0 failed',
    ll.getFailures + sl.getFailures === 0 ? 'yes' : 'no',
  ])
  const clean = ll.lost + ll.other + sl.lost + sl.other + ll.getFailures + sl.getFailures === 0
  targets.push({
    name: 'zero loss, order kept, every create-then-get succeeded',
    met: clean,
    value: `${ll.lost + sl.lost} lost, ${ll.getFailures + sl.getFailures} failed gets`,
  })

  const header = ['', 'LMDB', 'SQLite', 'LMDB/SQLite', 'target', 'met']
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`
  const table = [line(header), `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n')

  const runIds = Object.keys(rounds[0].lmdb.store)
  const runLabel = (id) => (id === 'variant' ? `store ${c0}, LMDB nosync / SQLite FULL,` : `store ${id.slice(1)},`)
  const perRoundHeader =
    `| round | order |${runIds.map((id) => ` ${runLabel(id)} msg/s |`).join('')} e2e msg/s | page p99, store ms | page p99, round trip ms | page samples |\n` +
    `|---|---|${runIds.map(() => '---:|').join('')}---:|---:|---:|---:|`
  const perRound = rounds
    .map(
      (r, i) =>
        `| ${i + 1} | ${r.order.join(', ')} |` +
        runIds.map((id) => ` ${fmtInt(r.lmdb.store[id].perSecond)} / ${fmtInt(r.sqlite.store[id].perSecond)} |`).join('') +
        ` ${fmtInt(r.lmdb.e2e.perSecond)} / ${fmtInt(r.sqlite.e2e.perSecond)} |` +
        ` ${fmtMs(r.lmdb.e2e.pageStore.p99)} / ${fmtMs(r.sqlite.e2e.pageStore.p99)} |` +
        ` ${fmtMs(r.lmdb.e2e.pageRoundTrip.p99)} / ${fmtMs(r.sqlite.e2e.pageRoundTrip.p99)} |` +
        ` ${r.lmdb.e2e.pageStore.n} / ${r.sqlite.e2e.pageStore.n} |`,
    )
    .join('\n')

  const sqliteFullCount = rounds[0].sqlite.store.variant.created
  const setup = [
    `- End to end: the server (server.js) in one process, ${CLIENTS} socket.io clients in another (loopback, websocket transport), ${SESSIONS} sessions ` +
      `(${Math.round(CLIENTS / SESSIONS)} clients each). Each client sends ${MESSAGES} messages (${fmtInt(TOTAL)} in all), the next once the previous is acked ` +
      `with the stored message; right after each ack it fetches that message by uuid (\`message:get\`) and compares. Throughput = acks per second over the sending.`,
    `- Meanwhile ${READERS} more clients, in a process of their own (real readers are other machines; in the senders' process their round trips would wait behind the senders' work), ` +
      `each fetch a ${PAGE}-message history page (newest first) every ${READER_INTERVAL} ms: the server times the store call ` +
      `(from the call to its result, in the event loop, so other requests' work interleaved with it counts), the client the round trip. ` +
      `After the load, 200 more pages are fetched one at a time ("after the load").`,
    `- Store level: direct calls in one process, ${CONCURRENCY.join(' or ')} concurrent callers creating ${fmtInt(TOTAL)} messages, each awaiting createMessage then ` +
      `getMessageByUuid. The two "same" rows change one store's durability setting (SQLite synchronous=FULL creates only ${fmtInt(sqliteFullCount)} messages, as it is slow).`,
    `- After every run each session's history is read back (cursor paging) and checked against the acks: every acked message present once, identical, in send order per sender, ` +
      `created_at strictly increasing, \`total\` equal to the count.`,
    `- LMDB store: @promethean/lmdb-cache, default durability 'durable' (data fsynced at each commit; concurrent writes share a commit); ` +
      `one atomic batch per message across three namespaces (message, uuid index, agent index).`,
    `- SQLite store: better-sqlite3, SQLite ${SQLITE_VERSION}, ${Object.entries(SQLITE_PRAGMAS)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}; prepared statements; one INSERT … SELECT … WHERE EXISTS per message (session check and insert in one implicit transaction); ` +
      `indexes (session_id, created_at, message_uuid) and (agent_id, created_at, message_uuid). synchronous=NORMAL in WAL mode does not fsync at commit ` +
      `(only at checkpoints): a power loss may undo the last commits, as with LMDB 'durable'.`,
    `- ${ROUNDS} round(s), the order of the stores alternating; the table shows the median over the rounds (sums for the counts).`,
  ].join('\n')

  const targetLines = targets.map((t) => `- ${t.met ? 'met' : '**not met**'}: ${t.name}: ${t.value}`).join('\n')
  const markdown = `# Chat message store load test: LMDB vs SQLite

Run ${startedAt.toISOString()} on ${machine()}, a shared and noisy VM (other jobs may run at
the same time; disk fsync latency varies), in ${(wallMs / 1000).toFixed(0)} s: \`npm run bench:messages\`
(\`node examples/socketio-chat/loadtest.js${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}\`).

${table}

Targets:

${targetLines}

Setup:

${setup}

Per round (LMDB / SQLite):

${perRoundHeader}
${perRound}
`
  return { table, markdown, targets }
}

let SQLITE_VERSION = 'unknown'

// ---------------------------------------------------------------------------------------

async function main() {
  if (args.phase === 'store') {
    const result = await storePhase(args.kind, args.dir)
    process.send?.(result)
    return
  }
  if (args.phase === 'echo') return echoServer()
  if (args.phase === 'readers') return readersPhase()
  const { default: Database } = await import('better-sqlite3')
  const db = new Database(':memory:')
  SQLITE_VERSION = db.prepare('select sqlite_version()').pluck().get()
  db.close()

  const startedAt = new Date()
  const deadline = new Deadline(TIME_LIMIT_MS)
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-loadtest-'))
  const rounds = []
  let echo
  try {
    echo = await echoPhase(deadline)
    console.error(`socket.io echo baseline: ${fmtInt(echo.perSecond)} round trips/s with ${CLIENTS} clients`)
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? KINDS : [...KINDS].reverse()
      const result = { order }
      for (const kind of order) {
        const dir = path.join(base, `r${round}-${kind}`)
        const store = await runStorePhase(kind, path.join(dir, 'store'), deadline)
        const e2e = await e2ePhase(kind, path.join(dir, 'e2e'), deadline)
        result[kind] = { store, e2e }
        fs.rmSync(dir, { recursive: true, force: true })
        const runs = Object.values(store)
        const s = runs
          .map((x) => `${fmtInt(x.perSecond)}/s at ${x.concurrency}${Object.keys(x.options).length ? ` ${JSON.stringify(x.options)}` : ''}`)
          .join(', ')
        console.error(
          `round ${round + 1}/${ROUNDS} ${kind}: store ${s}; e2e ${fmtInt(e2e.perSecond)}/s; page p99 ${fmtMs(e2e.pageStore.p99)} ms (store), ${fmtMs(e2e.pageRoundTrip.p99)} ms (round trip); lost ${e2e.lost + runs.reduce((a, x) => a + x.lost, 0)}`,
        )
      }
      rounds.push(result)
    }
  } finally {
    fs.rmSync(base, { recursive: true, force: true })
  }
  const wallMs = Date.now() - startedAt.getTime()
  const { table, markdown, targets } = report(rounds, echo, startedAt, wallMs)
  console.log(table)
  for (const t of targets) console.log(`${t.met ? 'met    ' : 'NOT met'}  ${t.name} (${t.value})`)
  if (!args['no-write']) {
    fs.writeFileSync(String(args.out), markdown)
    console.log(`wrote ${path.relative(process.cwd(), String(args.out))}`)
  }
  const lossTarget = targets.at(-1)
  if (lossTarget !== undefined && !lossTarget.met) process.exitCode = 1
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
