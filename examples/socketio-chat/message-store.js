// @ts-check
// Message persistence for the Socket.IO chat example: one `MessageStore` interface, two
// implementations with the same semantics, so that the server, the tests and the load test
// can run against either:
//
// - `LmdbMessageStore`: @promethean/lmdb-cache (LMDB), one namespace per collection, ordered
//   keys for time-ordered ranges, and one atomic batch across namespaces for a record and
//   its index entries.
// - `SqliteMessageStore`: better-sqlite3 in WAL mode with synchronous=NORMAL, prepared
//   statements, indexes matching every query, and a transaction per multi-statement write.
//
// Data model (LMDB namespaces; the SQLite tables hold the same rows):
//
//   sessions            <session_id>                             -> Session
//   messages            <session_id>:<created_at>:<message_uuid> -> Message   (session index = key order)
//   message-by-uuid     <message_uuid>                           -> message key
//   message-by-agent    <agent_id>:<created_at>:<message_uuid>   -> message key
//   agent-cards         <agent_id>                               -> AgentCard
//   shared-contexts     <context_id>                             -> SharedContext
//   context-by-session  <session_id>:<created_at>:<context_id>   -> context id
//   a2a-tasks           <task_id>                                -> A2ATask
//   meta                default_session_id                       -> session id
//
// `created_at` is an ISO-8601 UTC timestamp with microseconds, always 27 characters
// (`2025-01-02T03:04:05.123456Z`), so byte order is time order. It comes from a clock that is
// strictly increasing within the process, so messages created one after another (in one
// process) sort in creation order even within one millisecond. Session and agent ids may not
// contain ':' (the key separator), so the range `<id>:` .. `<id>;` holds exactly one id's keys.

import { randomFillSync, randomUUID } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import Database from 'better-sqlite3'
import { openLmdbCache } from '../../index.js'

// ---------------------------------------------------------------------------------------
// Types

/**
 * @typedef {{ [key: string]: unknown }} JsonObject
 *
 * @typedef {object} Session
 * @property {string} id
 * @property {string} title
 * @property {string} created_at
 * @property {JsonObject} session_metadata
 *
 * @typedef {object} NewSession
 * @property {string} [id] defaults to a random UUID; an existing id is refused (ERR_SESSION_EXISTS)
 * @property {string} [title] defaults to `Chat Session <created_at>`
 * @property {JsonObject} [session_metadata]
 *
 * @typedef {object} Message
 * @property {string} message_uuid
 * @property {string} session_id
 * @property {string} created_at
 * @property {string} role
 * @property {string} content
 * @property {string | null} agent_id
 * @property {JsonObject} metadata
 *
 * @typedef {object} NewMessage `message_uuid` and `created_at` are always set by the store.
 * @property {string} session_id
 * @property {string} content
 * @property {string} [role] defaults to 'user'
 * @property {string | null} [agent_id]
 * @property {JsonObject} [metadata]
 *
 * @typedef {object} PageOptions
 * @property {number} [skip] entries to skip after the cursor (default 0)
 * @property {number} [limit] page size, 1..1000 (default 100)
 * @property {string | null} [cursor] a `nextCursor` of a previous page: continue after it
 * @property {'asc' | 'desc'} [direction] default 'desc' (newest first)
 * @property {boolean} [includeTotal] also count all of the session's (agent's) messages
 *
 * @typedef {object} MessagePage
 * @property {Message[]} messages
 * @property {string | null} nextCursor null when nothing follows the page (at query time)
 * @property {number} [total] with `includeTotal`
 *
 * @typedef {object} AgentCard
 * @property {string} id
 * @property {string} name
 * @property {string} created_at kept from the first put
 * @property {string} updated_at
 *
 * @typedef {object} SharedContext
 * @property {string} id
 * @property {string} session_id
 * @property {string | null} agent_id
 * @property {string} context_type
 * @property {unknown} content
 * @property {string} created_at kept from the first put
 * @property {string} updated_at
 *
 * @typedef {object} A2ATask
 * @property {string} id
 * @property {string | null} session_id
 * @property {string} from_agent
 * @property {string} to_agent
 * @property {string} status
 * @property {unknown} payload
 * @property {unknown} result
 * @property {string} created_at kept from the first put
 * @property {string} updated_at
 *
 * @typedef {object} MessageStore
 * @property {'lmdb' | 'sqlite'} kind
 * @property {() => Promise<{ defaultSessionId: string }>} initDatabase
 *   Creates the default agents and a default session, once; later calls return the same id.
 * @property {(input?: NewSession) => Promise<Session>} createSession
 * @property {(id: string) => Promise<Session | null>} getSession
 * @property {(input: NewMessage) => Promise<Message>} createMessage
 *   Rejects with code ERR_SESSION_NOT_FOUND for a missing session. Resolves once the message
 *   and its index entries are committed (atomically), so it is immediately retrievable.
 * @property {(uuid: string) => Promise<Message | null>} getMessageByUuid
 * @property {(sessionId: string, opts?: PageOptions) => Promise<MessagePage>} getSessionMessages
 *   Rejects with ERR_SESSION_NOT_FOUND for a missing session, ERR_INVALID_CURSOR for a cursor
 *   that is not a message key of this session.
 * @property {(agentId: string, opts?: PageOptions) => Promise<MessagePage>} getMessagesByAgent
 * @property {(id: string) => Promise<AgentCard | null>} getAgentCard
 * @property {() => Promise<AgentCard[]>} listAgentCards in id order
 * @property {(card: JsonObject & { id: string, name: string }) => Promise<AgentCard>} putAgentCard
 * @property {(input: JsonObject & { session_id: string }) => Promise<SharedContext>} putSharedContext
 *   Creates or updates (by `id`); the session must exist and cannot change on update.
 * @property {(id: string) => Promise<SharedContext | null>} getSharedContext
 * @property {(sessionId: string) => Promise<SharedContext[]>} listSharedContexts in creation order
 * @property {(input: JsonObject & { from_agent: string, to_agent: string }) => Promise<A2ATask>} putA2ATask
 * @property {(id: string) => Promise<A2ATask | null>} getA2ATask
 * @property {() => Promise<void>} close
 */

// ---------------------------------------------------------------------------------------
// Shared rules: validation, timestamps, keys, paging options. Both implementations use them,
// so that they accept, refuse and order exactly the same things.

/** An Error with a stable `code`. */
export class MessageStoreError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message)
    this.name = 'MessageStoreError'
    this.code = code
  }
}

/** @param {string} message */
const invalid = (message) => new MessageStoreError('ERR_INVALID_ARGUMENT', message)
/** @param {string} id */
const sessionNotFound = (id) => new MessageStoreError('ERR_SESSION_NOT_FOUND', `session ${JSON.stringify(id)} does not exist`)

// Ids are at most 128 bytes of UTF-8, so that every key (at most two ids, a timestamp and a
// namespace) stays within the 480 bytes that lmdb-cache orders exactly by bytes; longer keys
// sharing their first 480 bytes would come back in hash order.
const MAX_ID_BYTES = 128
const MAX_NAMESPACE_BYTES = 64
const MAX_PAGE = 1000
const MAX_SKIP = 100_000
export const DEFAULT_PAGE_LIMIT = 100

/** Ids of sessions, agents, messages, contexts and tasks: non-empty, no ':' or control chars. */
function checkId(name, value) {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ids must not hold control characters
  if (typeof value !== 'string' || value.length === 0 || Buffer.byteLength(value) > MAX_ID_BYTES || /[:\u0000-\u001f\u007f]/.test(value)) {
    throw invalid(`${name} must be a non-empty string of at most ${MAX_ID_BYTES} UTF-8 bytes without ':' or control characters, got ${describe(value)}`)
  }
  return value
}

function describe(value) {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value)
  if (typeof value === 'bigint') return `${value}n`
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : String(value)
}

/** `value` as JSON would return it; refuses what JSON cannot encode. */
function jsonCopy(name, value) {
  let text
  try {
    text = JSON.stringify(value)
  } catch (error) {
    throw invalid(`${name} must be JSON-encodable: ${/** @type {Error} */ (error).message}`)
  }
  return text === undefined ? null : JSON.parse(text)
}

function plainObject(name, value, fallback) {
  if (value === undefined || value === null) return fallback
  if (typeof value !== 'object' || Array.isArray(value)) throw invalid(`${name} must be an object, got ${describe(value)}`)
  return jsonCopy(name, value)
}

function optionalString(name, value, fallback) {
  if (value === undefined || value === null) return fallback
  if (typeof value !== 'string') throw invalid(`${name} must be a string, got ${describe(value)}`)
  return value
}

let lastMicros = 0
/**
 * Now, as a 27-character ISO-8601 UTC timestamp with microseconds, strictly increasing within
 * the process (if the clock stalls or steps back, the previous value plus 1 µs is used).
 */
export function nextTimestamp() {
  let micros = Date.now() * 1000
  if (micros <= lastMicros) micros = lastMicros + 1
  lastMicros = micros
  const ms = Math.floor(micros / 1000)
  const iso = new Date(ms).toISOString() // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, 23)}${String(micros - ms * 1000).padStart(3, '0')}Z`
}

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/
const TIMESTAMP_LENGTH = 27

/** `<owner>:<created_at>:<id>`: a message key (owner = session) or an index key. */
export const timeKey = (owner, createdAt, id) => `${owner}:${createdAt}:${id}`

/** The message key of a message: `<session_id>:<created_at>:<message_uuid>`. */
export const messageKey = (/** @type {Message} */ m) => timeKey(m.session_id, m.created_at, m.message_uuid)

/**
 * Checks a cursor against the owner (session or agent) it pages; returns its time and id.
 * @param {string} owner @param {unknown} cursor
 */
function parseCursor(owner, cursor) {
  const prefix = `${owner}:`
  const fail = () => new MessageStoreError('ERR_INVALID_CURSOR', `cursor ${describe(cursor)} is not a key of ${JSON.stringify(owner)}`)
  if (typeof cursor !== 'string' || !cursor.startsWith(prefix)) throw fail()
  const createdAt = cursor.slice(prefix.length, prefix.length + TIMESTAMP_LENGTH)
  const id = cursor.slice(prefix.length + TIMESTAMP_LENGTH + 1)
  if (!TIMESTAMP.test(createdAt) || cursor[prefix.length + TIMESTAMP_LENGTH] !== ':' || id.length === 0) throw fail()
  return { key: cursor, createdAt, id }
}

/** @param {string} owner @param {PageOptions | undefined} opts */
function pageOptions(owner, opts) {
  const o = opts ?? {}
  if (typeof o !== 'object') throw invalid(`page options must be an object, got ${describe(o)}`)
  const skip = o.skip ?? 0
  const limit = o.limit ?? DEFAULT_PAGE_LIMIT
  const direction = o.direction ?? 'desc'
  if (!Number.isInteger(skip) || skip < 0 || skip > MAX_SKIP) throw invalid(`skip must be an integer in 0..${MAX_SKIP}, got ${describe(skip)}`)
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) throw invalid(`limit must be an integer in 1..${MAX_PAGE}, got ${describe(limit)}`)
  if (direction !== 'asc' && direction !== 'desc') throw invalid(`direction must be 'asc' or 'desc', got ${describe(direction)}`)
  const cursor = o.cursor === undefined || o.cursor === null || o.cursor === '' ? null : parseCursor(owner, o.cursor)
  return { skip, limit, direction, cursor, includeTotal: o.includeTotal === true }
}

// Message uuids are UUIDv7 (RFC 9562): the first 48 bits are the creation time in ms and the
// next 12 a counter within the millisecond, so uuids made by one process sort in creation
// order. The uuid index is a B-tree keyed by uuid: time-ordered uuids make each commit's
// index inserts land on the same few pages at its end instead of one random page per
// message, which is what an fsync pays for (one disk write per scattered page).
const uuidBytes = new Uint8Array(16)
// Random bits are drawn 8 KiB at a time: one randomFillSync per uuid costs more than the rest.
const randomPool = new Uint8Array(8192)
let randomPoolUsed = randomPool.length
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))
let uuidMs = 0
let uuidSeq = 0
export function uuidV7() {
  const now = Date.now()
  if (now > uuidMs) {
    uuidMs = now
    uuidSeq = 0
  } else if (++uuidSeq > 0xfff) {
    // 4,096 uuids in one millisecond: borrow the next millisecond to stay ordered.
    uuidMs += 1
    uuidSeq = 0
  }
  if (randomPoolUsed === randomPool.length) {
    randomFillSync(randomPool)
    randomPoolUsed = 0
  }
  const b = uuidBytes
  b.set(randomPool.subarray(randomPoolUsed, randomPoolUsed + 8), 8)
  randomPoolUsed += 8
  const hi = Math.floor(uuidMs / 0x1000000) // top 24 of 48 bits
  const lo = uuidMs % 0x1000000
  b[0] = hi >>> 16
  b[1] = (hi >>> 8) & 0xff
  b[2] = hi & 0xff
  b[3] = lo >>> 16
  b[4] = (lo >>> 8) & 0xff
  b[5] = lo & 0xff
  b[6] = 0x70 | (uuidSeq >>> 8)
  b[7] = uuidSeq & 0xff
  b[8] = 0x80 | (b[8] & 0x3f)
  return (
    HEX[b[0]] +
    HEX[b[1]] +
    HEX[b[2]] +
    HEX[b[3]] +
    '-' +
    HEX[b[4]] +
    HEX[b[5]] +
    '-' +
    HEX[b[6]] +
    HEX[b[7]] +
    '-' +
    HEX[b[8]] +
    HEX[b[9]] +
    '-' +
    HEX[b[10]] +
    HEX[b[11]] +
    HEX[b[12]] +
    HEX[b[13]] +
    HEX[b[14]] +
    HEX[b[15]]
  )
}

/** A new message (validated, uuid and timestamp filled), as it will be stored and read back. */
function newMessage(input) {
  if (input === null || typeof input !== 'object') throw invalid(`a message must be an object, got ${describe(input)}`)
  const sessionId = checkId('session_id', input.session_id)
  if (typeof input.content !== 'string') throw invalid(`content must be a string, got ${describe(input.content)}`)
  const role = optionalString('role', input.role, 'user')
  const agentId = input.agent_id === undefined || input.agent_id === null ? null : checkId('agent_id', input.agent_id)
  const metadata = plainObject('metadata', input.metadata, {})
  /** @type {Message} */
  const message = {
    message_uuid: uuidV7(),
    session_id: sessionId,
    created_at: nextTimestamp(),
    role,
    content: input.content,
    agent_id: agentId,
    metadata,
  }
  return message
}

function newSession(input) {
  const i = input ?? {}
  if (typeof i !== 'object') throw invalid(`session options must be an object, got ${describe(i)}`)
  const id = i.id === undefined || i.id === null ? randomUUID() : checkId('id', i.id)
  const createdAt = nextTimestamp()
  /** @type {Session} */
  const session = {
    id,
    title: optionalString('title', i.title, `Chat Session ${createdAt}`),
    created_at: createdAt,
    session_metadata: plainObject('session_metadata', i.session_metadata, {}),
  }
  return session
}

/** An upserted record: `created_at` kept from `existing`, `updated_at` now. */
function upserted(fields, existing) {
  const now = nextTimestamp()
  return { ...fields, created_at: existing?.created_at ?? now, updated_at: now }
}

function agentCardOf(card, existing) {
  if (card === null || typeof card !== 'object' || Array.isArray(card)) throw invalid(`an agent card must be an object, got ${describe(card)}`)
  checkId('id', card.id)
  if (typeof card.name !== 'string') throw invalid(`an agent card needs a string name, got ${describe(card.name)}`)
  const { created_at: _c, updated_at: _u, ...fields } = jsonCopy('agent card', card)
  return /** @type {AgentCard} */ (upserted(fields, existing))
}

function checkContextInput(input) {
  if (input === null || typeof input !== 'object') throw invalid(`a shared context must be an object, got ${describe(input)}`)
  return {
    id: input.id === undefined || input.id === null ? randomUUID() : checkId('id', input.id),
    session_id: checkId('session_id', input.session_id),
  }
}

function sharedContextOf(input, id, existing) {
  if (existing !== null && existing.session_id !== input.session_id) {
    throw invalid(`shared context ${id} belongs to session ${existing.session_id}; its session cannot change`)
  }
  const fields = {
    id,
    session_id: input.session_id,
    agent_id: input.agent_id === undefined || input.agent_id === null ? null : checkId('agent_id', input.agent_id),
    context_type: optionalString('context_type', input.context_type, 'generic'),
    content: jsonCopy('content', input.content ?? null),
  }
  return /** @type {SharedContext} */ (upserted(fields, existing))
}

function checkTaskInput(input) {
  if (input === null || typeof input !== 'object') throw invalid(`a task must be an object, got ${describe(input)}`)
  return {
    id: input.id === undefined || input.id === null ? randomUUID() : checkId('id', input.id),
    session_id: input.session_id === undefined || input.session_id === null ? null : checkId('session_id', input.session_id),
  }
}

function taskOf(input, ids, existing) {
  const fields = {
    id: ids.id,
    session_id: ids.session_id,
    from_agent: checkId('from_agent', input.from_agent),
    to_agent: checkId('to_agent', input.to_agent),
    status: optionalString('status', input.status, 'pending'),
    payload: jsonCopy('payload', input.payload ?? null),
    result: jsonCopy('result', input.result ?? null),
  }
  return /** @type {A2ATask} */ (upserted(fields, existing))
}

/** The agents `initDatabase()` creates (from the seed design). */
export const DEFAULT_AGENTS = Object.freeze([
  {
    id: 'chloe',
    name: 'Chloe',
    description: 'Git operations and general help',
    color: 'rgb(34, 197, 94)',
    icon_path: 'agents/chloe/src/assets/chloe.svg',
    capabilities: ['git', 'search', 'explain'],
    is_active: true,
  },
  {
    id: 'phil_connors',
    name: 'Phil Connors',
    description: 'Task management and coordination',
    color: 'rgb(249, 115, 22)',
    icon_path: 'agents/phil_connors/src/assets/phil.svg',
    capabilities: ['task', 'coordinate', 'plan'],
    is_active: true,
  },
])

/**
 * Runs async `fn`s one at a time per key (for check-then-write sequences within this
 * process: an upsert keeping `created_at`, a session id that must be new).
 */
class KeyedQueue {
  /** @type {Map<string, Promise<unknown>>} */
  #tails = new Map()
  /** @template T @param {string} key @param {() => Promise<T>} fn @returns {Promise<T>} */
  run(key, fn) {
    const previous = this.#tails.get(key)
    const result = previous === undefined ? fn() : previous.then(fn, fn)
    const tail = result.catch(() => {})
    this.#tails.set(key, tail)
    tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    })
    return result
  }
}

// ---------------------------------------------------------------------------------------
// LMDB (@promethean/lmdb-cache)

/** The end of the range of keys starting with `<owner>:` (';' follows ':' in byte order). */
const rangeOf = (owner) => ({ gte: `${owner}:`, lt: `${owner};` })

/**
 * One page of an index ordered by `<owner>:<created_at>:<id>` keys, as [key, value] entries.
 * @param {import('../../index.js').LmdbCache<any>} view
 * @param {string} owner
 * @param {ReturnType<typeof pageOptions>} o
 */
async function lmdbPage(view, owner, o) {
  const { gte, lt } = rangeOf(owner)
  /** @type {import('../../index.js').EntriesOptions} */
  let range
  if (o.direction === 'asc') range = o.cursor === null ? { gte, lt } : { gt: o.cursor.key, lt }
  else range = { gte, lt: o.cursor === null ? lt : o.cursor.key, reverse: true }
  /** @type {[string, any][]} */
  const page = []
  let seen = 0
  // One entry past the page tells whether anything follows it.
  for await (const entry of view.entries({ ...range, limit: o.skip + o.limit + 1 })) {
    if (seen++ >= o.skip) page.push(entry)
  }
  const more = page.length > o.limit
  if (more) page.length = o.limit
  return { page, nextCursor: more ? page[page.length - 1][0] : null }
}

/** Counts the keys of `owner`: natively, without reading the messages out. */
function lmdbCount(view, owner) {
  return view.count(rangeOf(owner))
}

/** @implements {MessageStore} */
export class LmdbMessageStore {
  /** @type {'lmdb'} */
  kind = 'lmdb'
  #root
  #sessions
  #messages
  #byUuid
  #byAgent
  #agents
  #contexts
  #contextsBySession
  #tasks
  #meta
  #queue = new KeyedQueue()

  /**
   * Opens (creating) the store in the LMDB directory `path`.
   * @param {{ path: string, durability?: 'durable' | 'strict' | 'nosync', namespace?: string }} opts
   */
  static async open(opts) {
    if (opts.namespace !== undefined && (typeof opts.namespace !== 'string' || Buffer.byteLength(opts.namespace) > MAX_NAMESPACE_BYTES)) {
      throw invalid(`namespace must be a string of at most ${MAX_NAMESPACE_BYTES} UTF-8 bytes, got ${describe(opts.namespace)}`)
    }
    const root = await openLmdbCache({ path: opts.path, durability: opts.durability, namespace: opts.namespace })
    return new LmdbMessageStore(root)
  }

  /** @param {import('../../index.js').LmdbCache<any>} root */
  constructor(root) {
    this.#root = root
    this.#sessions = root.withNamespace('sessions')
    this.#messages = root.withNamespace('messages')
    this.#byUuid = root.withNamespace('message-by-uuid')
    this.#byAgent = root.withNamespace('message-by-agent')
    this.#agents = root.withNamespace('agent-cards')
    this.#contexts = root.withNamespace('shared-contexts')
    this.#contextsBySession = root.withNamespace('context-by-session')
    this.#tasks = root.withNamespace('a2a-tasks')
    this.#meta = root.withNamespace('meta')
  }

  async initDatabase() {
    return this.#queue.run('meta:init', async () => {
      const existing = await this.#meta.get('default_session_id')
      if (existing !== undefined) return { defaultSessionId: existing }
      const session = newSession({ title: 'Default Session' })
      /** @type {import('../../index.js').BatchOperation<any>[]} */
      const ops = [{ type: 'put', key: session.id, value: session }]
      for (const agent of DEFAULT_AGENTS) {
        if (!(await this.#agents.has(agent.id))) ops.push({ type: 'put', view: this.#agents, key: agent.id, value: agentCardOf(agent, null) })
      }
      ops.push({ type: 'put', view: this.#meta, key: 'default_session_id', value: session.id })
      await this.#sessions.batch(ops) // agents, default session and marker: all or nothing
      return { defaultSessionId: session.id }
    })
  }

  /** @param {NewSession} [input] */
  async createSession(input) {
    const session = newSession(input)
    return this.#queue.run(`session:${session.id}`, async () => {
      if (await this.#sessions.has(session.id)) {
        throw new MessageStoreError('ERR_SESSION_EXISTS', `session ${JSON.stringify(session.id)} already exists`)
      }
      await this.#sessions.set(session.id, session)
      return session
    })
  }

  /** @param {string} id */
  async getSession(id) {
    checkId('session id', id)
    return (await this.#sessions.get(id)) ?? null
  }

  /** @param {NewMessage} input */
  async createMessage(input) {
    // Validated and timestamped synchronously: messages are ordered as the calls were made.
    const message = newMessage(input)
    // Sessions are never deleted, so a session seen here still exists at the commit.
    if (!(await this.#sessions.has(message.session_id))) throw sessionNotFound(message.session_id)
    const key = messageKey(message)
    /** @type {import('../../index.js').BatchOperation<any>[]} */
    const ops = [
      { type: 'put', key, value: message },
      { type: 'put', view: this.#byUuid, key: message.message_uuid, value: key },
    ]
    if (message.agent_id !== null) {
      ops.push({ type: 'put', view: this.#byAgent, key: timeKey(message.agent_id, message.created_at, message.message_uuid), value: key })
    }
    await this.#messages.batch(ops) // resolves after the commit: readable from here on
    return message
  }

  /** @param {string} uuid */
  async getMessageByUuid(uuid) {
    checkId('message uuid', uuid)
    const key = await this.#byUuid.get(uuid)
    if (key === undefined) return null
    return (await this.#messages.get(key)) ?? null
  }

  /** @param {string} sessionId @param {PageOptions} [opts] */
  async getSessionMessages(sessionId, opts) {
    checkId('session id', sessionId)
    const o = pageOptions(sessionId, opts)
    if (!(await this.#sessions.has(sessionId))) throw sessionNotFound(sessionId)
    const { page, nextCursor } = await lmdbPage(this.#messages, sessionId, o)
    /** @type {MessagePage} */
    const result = { messages: page.map(([, m]) => m), nextCursor }
    if (o.includeTotal) result.total = await lmdbCount(this.#messages, sessionId)
    return result
  }

  /** @param {string} agentId @param {PageOptions} [opts] */
  async getMessagesByAgent(agentId, opts) {
    checkId('agent id', agentId)
    const o = pageOptions(agentId, opts)
    const { page, nextCursor } = await lmdbPage(this.#byAgent, agentId, o)
    /** @type {Message[]} */
    const messages = []
    for (const [, key] of page) {
      const m = await this.#messages.get(key) // written with its index entry, never deleted
      if (m !== undefined) messages.push(m)
    }
    /** @type {MessagePage} */
    const result = { messages, nextCursor }
    if (o.includeTotal) result.total = await lmdbCount(this.#byAgent, agentId)
    return result
  }

  /** @param {string} id */
  async getAgentCard(id) {
    checkId('agent id', id)
    return (await this.#agents.get(id)) ?? null
  }

  async listAgentCards() {
    const cards = []
    for await (const [, card] of this.#agents.entries()) cards.push(card)
    return cards
  }

  /** @param {JsonObject & { id: string, name: string }} card */
  async putAgentCard(card) {
    agentCardOf(card, null) // validate before queueing
    return this.#queue.run(`agent:${card.id}`, async () => {
      const stored = agentCardOf(card, (await this.#agents.get(card.id)) ?? null)
      await this.#agents.set(stored.id, stored)
      return stored
    })
  }

  /** @param {JsonObject & { session_id: string }} input */
  async putSharedContext(input) {
    const { id, session_id: sessionId } = checkContextInput(input)
    return this.#queue.run(`context:${id}`, async () => {
      if (!(await this.#sessions.has(sessionId))) throw sessionNotFound(sessionId)
      const context = sharedContextOf(input, id, (await this.#contexts.get(id)) ?? null)
      await this.#contexts.batch([
        { type: 'put', key: id, value: context },
        { type: 'put', view: this.#contextsBySession, key: timeKey(sessionId, context.created_at, id), value: id },
      ])
      return context
    })
  }

  /** @param {string} id */
  async getSharedContext(id) {
    checkId('context id', id)
    return (await this.#contexts.get(id)) ?? null
  }

  /** @param {string} sessionId */
  async listSharedContexts(sessionId) {
    checkId('session id', sessionId)
    const contexts = []
    for await (const [, id] of this.#contextsBySession.entries(rangeOf(sessionId))) {
      const context = await this.#contexts.get(id)
      if (context !== undefined) contexts.push(context)
    }
    return contexts
  }

  /** @param {JsonObject & { from_agent: string, to_agent: string }} input */
  async putA2ATask(input) {
    const ids = checkTaskInput(input)
    taskOf(input, ids, null) // validate before queueing
    return this.#queue.run(`task:${ids.id}`, async () => {
      if (ids.session_id !== null && !(await this.#sessions.has(ids.session_id))) throw sessionNotFound(ids.session_id)
      const task = taskOf(input, ids, (await this.#tasks.get(ids.id)) ?? null)
      await this.#tasks.set(ids.id, task)
      return task
    })
  }

  /** @param {string} id */
  async getA2ATask(id) {
    checkId('task id', id)
    return (await this.#tasks.get(id)) ?? null
  }

  async close() {
    await this.#root.close()
  }
}

// ---------------------------------------------------------------------------------------
// SQLite (better-sqlite3)

/** The pragmas the SQLite store runs with (reported by the load test). */
export const SQLITE_PRAGMAS = Object.freeze({
  journal_mode: 'WAL',
  synchronous: 'NORMAL',
  busy_timeout: 5000,
  cache_size: -65536, // 64 MiB page cache
  temp_store: 'MEMORY',
})

const SQLITE_SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
  message_uuid TEXT PRIMARY KEY,
  session_id TEXT NOT NULL,
  created_at TEXT NOT NULL,
  agent_id TEXT,
  data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_session ON messages (session_id, created_at, message_uuid);
CREATE INDEX IF NOT EXISTS messages_by_agent ON messages (agent_id, created_at, message_uuid) WHERE agent_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS agent_cards (id TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shared_contexts (
  id TEXT PRIMARY KEY,
  session_id TEXT NOT NULL,
  created_at TEXT NOT NULL,
  data TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS shared_contexts_by_session ON shared_contexts (session_id, created_at, id);
CREATE TABLE IF NOT EXISTS a2a_tasks (id TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID;
`

/**
 * The page queries of one time-ordered index: `(owner, created_at, id)` compared as a row
 * value, which orders exactly as the LMDB key `<owner>:<created_at>:<id>` (BINARY collation
 * is UTF-8 byte order, and created_at has a fixed width).
 */
function pageStatements(db, table, ownerColumn, idColumn, select) {
  const base = `SELECT ${select} FROM ${table} WHERE ${ownerColumn} = @owner`
  const order = (dir) => `ORDER BY created_at ${dir}, ${idColumn} ${dir} LIMIT @limit OFFSET @skip`
  return {
    asc: db.prepare(`${base} ${order('ASC')}`).pluck(),
    ascAfter: db.prepare(`${base} AND (created_at, ${idColumn}) > (@createdAt, @id) ${order('ASC')}`).pluck(),
    desc: db.prepare(`${base} ${order('DESC')}`).pluck(),
    descBefore: db.prepare(`${base} AND (created_at, ${idColumn}) < (@createdAt, @id) ${order('DESC')}`).pluck(),
    count: db.prepare(`SELECT count(*) FROM ${table} WHERE ${ownerColumn} = ?`).pluck(),
  }
}

/** One page of messages (JSON rows) and the next cursor; see lmdbPage. */
function sqlitePage(statements, owner, o, keyOf) {
  const params = { owner, limit: o.limit + 1, skip: o.skip, createdAt: o.cursor?.createdAt, id: o.cursor?.id }
  const statement =
    o.direction === 'asc' ? (o.cursor === null ? statements.asc : statements.ascAfter) : o.cursor === null ? statements.desc : statements.descBefore
  if (o.cursor === null) {
    delete params.createdAt
    delete params.id
  }
  const messages = statement.all(params).map((json) => JSON.parse(json))
  const more = messages.length > o.limit
  if (more) messages.length = o.limit
  return { messages, nextCursor: more ? keyOf(messages[messages.length - 1]) : null }
}

/** @implements {MessageStore} */
export class SqliteMessageStore {
  /** @type {'sqlite'} */
  kind = 'sqlite'
  #db
  #s
  #initTx

  /**
   * Opens (creating) the store in the SQLite database file `path`. `synchronous` overrides
   * SQLITE_PRAGMAS.synchronous (the load test compares 'FULL': an fsync at every commit).
   * @param {{ path: string, synchronous?: 'OFF' | 'NORMAL' | 'FULL' }} opts
   */
  static async open(opts) {
    /** @type {Record<string, string | number>} */
    const pragmas = { ...SQLITE_PRAGMAS }
    if (opts.synchronous !== undefined) {
      if (!['OFF', 'NORMAL', 'FULL'].includes(opts.synchronous)) throw invalid(`synchronous must be OFF, NORMAL or FULL, got ${describe(opts.synchronous)}`)
      pragmas.synchronous = opts.synchronous
    }
    return new SqliteMessageStore(new Database(opts.path), pragmas)
  }

  /**
   * @param {import('better-sqlite3').Database} db
   * @param {Record<string, string | number>} [pragmas]
   */
  constructor(db, pragmas = SQLITE_PRAGMAS) {
    this.#db = db
    for (const [name, value] of Object.entries(pragmas)) db.pragma(`${name} = ${value}`)
    db.exec(SQLITE_SCHEMA)
    const p = (sql) => db.prepare(sql)
    this.#s = {
      getMeta: p('SELECT value FROM meta WHERE key = ?').pluck(),
      putMeta: p('INSERT INTO meta (key, value) VALUES (?, ?)'),
      sessionExists: p('SELECT 1 FROM sessions WHERE id = ?').pluck(),
      getSession: p('SELECT data FROM sessions WHERE id = ?').pluck(),
      insertSession: p('INSERT INTO sessions (id, data) VALUES (?, ?)'),
      // One statement, so one implicit transaction: the session check and the insert (with
      // its three index entries) commit together, or nothing is written.
      insertMessage: p(
        'INSERT INTO messages (message_uuid, session_id, created_at, agent_id, data) SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM sessions WHERE id = ?)',
      ),
      messageByUuid: p('SELECT data FROM messages WHERE message_uuid = ?').pluck(),
      sessionPage: pageStatements(db, 'messages', 'session_id', 'message_uuid', 'data'),
      agentPage: pageStatements(db, 'messages', 'agent_id', 'message_uuid', 'data'),
      getAgent: p('SELECT data FROM agent_cards WHERE id = ?').pluck(),
      listAgents: p('SELECT data FROM agent_cards ORDER BY id').pluck(),
      putAgent: p('INSERT INTO agent_cards (id, data) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data'),
      getContext: p('SELECT data FROM shared_contexts WHERE id = ?').pluck(),
      putContext: p('INSERT INTO shared_contexts (id, session_id, created_at, data) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data'),
      listContexts: p('SELECT data FROM shared_contexts WHERE session_id = ? ORDER BY created_at, id').pluck(),
      getTask: p('SELECT data FROM a2a_tasks WHERE id = ?').pluck(),
      putTask: p('INSERT INTO a2a_tasks (id, data) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data'),
    }
    const s = this.#s
    this.#initTx = db.transaction(() => {
      const existing = s.getMeta.get('default_session_id')
      if (existing !== undefined) return { defaultSessionId: /** @type {string} */ (existing) }
      for (const agent of DEFAULT_AGENTS) {
        if (s.getAgent.get(agent.id) === undefined) s.putAgent.run(agent.id, JSON.stringify(agentCardOf(agent, null)))
      }
      const session = newSession({ title: 'Default Session' })
      s.insertSession.run(session.id, JSON.stringify(session))
      s.putMeta.run('default_session_id', session.id)
      return { defaultSessionId: session.id }
    })
  }

  #json(text) {
    return text === undefined ? null : JSON.parse(text)
  }

  async initDatabase() {
    return this.#initTx()
  }

  /** @param {NewSession} [input] */
  async createSession(input) {
    const session = newSession(input)
    if (this.#s.sessionExists.get(session.id) !== undefined) {
      throw new MessageStoreError('ERR_SESSION_EXISTS', `session ${JSON.stringify(session.id)} already exists`)
    }
    this.#s.insertSession.run(session.id, JSON.stringify(session))
    return session
  }

  /** @param {string} id */
  async getSession(id) {
    checkId('session id', id)
    return this.#json(this.#s.getSession.get(id))
  }

  /** @param {NewMessage} input */
  async createMessage(input) {
    const message = newMessage(input)
    const m = message
    const { changes } = this.#s.insertMessage.run(m.message_uuid, m.session_id, m.created_at, m.agent_id, JSON.stringify(m), m.session_id)
    if (changes !== 1) throw sessionNotFound(m.session_id)
    return message
  }

  /** @param {string} uuid */
  async getMessageByUuid(uuid) {
    checkId('message uuid', uuid)
    return this.#json(this.#s.messageByUuid.get(uuid))
  }

  /** @param {string} sessionId @param {PageOptions} [opts] */
  async getSessionMessages(sessionId, opts) {
    checkId('session id', sessionId)
    const o = pageOptions(sessionId, opts)
    if (this.#s.sessionExists.get(sessionId) === undefined) throw sessionNotFound(sessionId)
    /** @type {MessagePage} */
    const result = sqlitePage(this.#s.sessionPage, sessionId, o, messageKey)
    if (o.includeTotal) result.total = /** @type {number} */ (this.#s.sessionPage.count.get(sessionId))
    return result
  }

  /** @param {string} agentId @param {PageOptions} [opts] */
  async getMessagesByAgent(agentId, opts) {
    checkId('agent id', agentId)
    const o = pageOptions(agentId, opts)
    /** @type {MessagePage} */
    const result = sqlitePage(this.#s.agentPage, agentId, o, (/** @type {Message} */ m) => timeKey(agentId, m.created_at, m.message_uuid))
    if (o.includeTotal) result.total = /** @type {number} */ (this.#s.agentPage.count.get(agentId))
    return result
  }

  /** @param {string} id */
  async getAgentCard(id) {
    checkId('agent id', id)
    return this.#json(this.#s.getAgent.get(id))
  }

  async listAgentCards() {
    return this.#s.listAgents.all().map((json) => JSON.parse(json))
  }

  /** @param {JsonObject & { id: string, name: string }} card */
  async putAgentCard(card) {
    agentCardOf(card, null)
    const stored = agentCardOf(card, this.#json(this.#s.getAgent.get(card.id)))
    this.#s.putAgent.run(stored.id, JSON.stringify(stored))
    return stored
  }

  /** @param {JsonObject & { session_id: string }} input */
  async putSharedContext(input) {
    // Synchronous from the read to the write: nothing of this process runs in between.
    const { id, session_id: sessionId } = checkContextInput(input)
    if (this.#s.sessionExists.get(sessionId) === undefined) throw sessionNotFound(sessionId)
    const context = sharedContextOf(input, id, this.#json(this.#s.getContext.get(id)))
    this.#s.putContext.run(id, sessionId, context.created_at, JSON.stringify(context))
    return context
  }

  /** @param {string} id */
  async getSharedContext(id) {
    checkId('context id', id)
    return this.#json(this.#s.getContext.get(id))
  }

  /** @param {string} sessionId */
  async listSharedContexts(sessionId) {
    checkId('session id', sessionId)
    return this.#s.listContexts.all(sessionId).map((json) => JSON.parse(json))
  }

  /** @param {JsonObject & { from_agent: string, to_agent: string }} input */
  async putA2ATask(input) {
    const ids = checkTaskInput(input)
    taskOf(input, ids, null)
    if (ids.session_id !== null && this.#s.sessionExists.get(ids.session_id) === undefined) throw sessionNotFound(ids.session_id)
    const task = taskOf(input, ids, this.#json(this.#s.getTask.get(ids.id)))
    this.#s.putTask.run(ids.id, JSON.stringify(task))
    return task
  }

  /** @param {string} id */
  async getA2ATask(id) {
    checkId('task id', id)
    return this.#json(this.#s.getTask.get(id))
  }

  async close() {
    if (this.#db.open) this.#db.close()
  }
}

// ---------------------------------------------------------------------------------------

/**
 * Opens a store of `kind` in directory `dir` (created if needed): LMDB in `dir` itself,
 * SQLite in `dir/chat.sqlite`. `options` go to the store's `open` (LMDB: `durability`;
 * SQLite: `synchronous`).
 * @param {'lmdb' | 'sqlite'} kind
 * @param {string} dir
 * @param {{ durability?: 'durable' | 'strict' | 'nosync', synchronous?: 'OFF' | 'NORMAL' | 'FULL' }} [options]
 * @returns {Promise<MessageStore>}
 */
export async function openMessageStore(kind, dir, options = {}) {
  fs.mkdirSync(dir, { recursive: true })
  if (kind === 'lmdb') return LmdbMessageStore.open({ path: dir, durability: options.durability })
  if (kind === 'sqlite') return SqliteMessageStore.open({ path: path.join(dir, 'chat.sqlite'), synchronous: options.synchronous })
  throw invalid(`store kind must be 'lmdb' or 'sqlite', got ${describe(kind)}`)
}
