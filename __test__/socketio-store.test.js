// The MessageStore of examples/socketio-chat: one suite, run against the LMDB store and the
// SQLite store, which must behave the same: every operation, the pagination edge cases, and
// the create-then-get race of the seed design.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { DEFAULT_AGENTS, messageKey, openMessageStore, uuidV7 } from '../examples/socketio-chat/message-store.js'

// Message uuids are UUIDv7 (time-ordered); session and agent ids stay v4.
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/

const uuids = (page) => page.messages.map((m) => m.message_uuid)

for (const kind of ['lmdb', 'sqlite']) {
  describe(`MessageStore (${kind})`, () => {
    /** @type {import('../examples/socketio-chat/message-store.js').MessageStore} */
    let store
    let dir
    let counter = 0
    const newSession = async (extra = {}) => store.createSession({ title: `t${counter++}`, ...extra })
    /** Creates n messages one after another; returns them in creation order. */
    const fill = async (sessionId, n, extra = {}) => {
      const out = []
      for (let i = 0; i < n; i++) out.push(await store.createMessage({ session_id: sessionId, content: `m${i}`, ...extra }))
      return out
    }
    /** Every message of a session, following cursors. */
    const all = async (sessionId, opts) => {
      const got = []
      let cursor = null
      for (let pages = 0; pages < 1000; pages++) {
        const page = await store.getSessionMessages(sessionId, { ...opts, cursor })
        got.push(...page.messages)
        if (page.nextCursor === null) return got
        cursor = page.nextCursor
      }
      throw new Error('paging did not end')
    }

    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), `socketio-store-${kind}-`))
      store = await openMessageStore(kind, dir)
    })
    after(async () => {
      await store.close()
      fs.rmSync(dir, { recursive: true, force: true })
    })

    test('initDatabase creates the default agents and one default session, once', async () => {
      const { defaultSessionId } = await store.initDatabase()
      const session = await store.getSession(defaultSessionId)
      assert.equal(session.id, defaultSessionId)
      assert.equal(session.title, 'Default Session')
      for (const agent of DEFAULT_AGENTS) {
        const card = await store.getAgentCard(agent.id)
        assert.equal(card.name, agent.name)
        assert.deepEqual(card.capabilities, agent.capabilities)
        assert.match(card.created_at, TIMESTAMP)
      }
      assert.deepEqual(await store.initDatabase(), { defaultSessionId })
      const [a, b] = await Promise.all([store.initDatabase(), store.initDatabase()])
      assert.equal(a.defaultSessionId, defaultSessionId)
      assert.equal(b.defaultSessionId, defaultSessionId)
    })

    test('sessions: create with generated or given id, get, refuse duplicates and bad ids', async () => {
      const s = await store.createSession({ title: 'Hello', session_metadata: { topic: 'x', when: new Date(0) } })
      assert.match(s.id, UUID)
      assert.match(s.created_at, TIMESTAMP)
      assert.deepEqual(s.session_metadata, { topic: 'x', when: '1970-01-01T00:00:00.000Z' })
      assert.deepEqual(await store.getSession(s.id), s)
      const untitled = await store.createSession()
      assert.equal(untitled.title, `Chat Session ${untitled.created_at}`)
      const named = await store.createSession({ id: `named-${kind}` })
      assert.equal(named.id, `named-${kind}`)
      await assert.rejects(store.createSession({ id: `named-${kind}` }), { code: 'ERR_SESSION_EXISTS' })
      // Two creations of one id in the same tick: exactly one wins.
      const race = await Promise.allSettled([store.createSession({ id: `race-${kind}` }), store.createSession({ id: `race-${kind}` })])
      assert.deepEqual(race.map((r) => r.status).sort(), ['fulfilled', 'rejected'])
      assert.equal(race.find((r) => r.status === 'rejected').reason.code, 'ERR_SESSION_EXISTS')
      assert.equal(await store.getSession('no-such-session'), null)
      const wide = await store.createSession({ id: `${'é'.repeat(63)}${kind.slice(0, 2)}` }) // 128 bytes
      assert.equal(Buffer.byteLength(wide.id), 128)
      // Its keys still order by time (they stay short enough for exact byte order).
      const wideMessages = await fill(wide.id, 5, { agent_id: 'ü'.repeat(64) })
      assert.deepEqual(
        uuids(await store.getSessionMessages(wide.id, { direction: 'asc' })),
        wideMessages.map((m) => m.message_uuid),
      )
      assert.deepEqual(
        uuids(await store.getMessagesByAgent('ü'.repeat(64), { direction: 'asc' })),
        wideMessages.map((m) => m.message_uuid),
      )
      for (const id of ['a:b', '', 'x'.repeat(129), 'é'.repeat(65), 'tab\t', 42]) {
        await assert.rejects(store.createSession({ id }), { code: 'ERR_INVALID_ARGUMENT' }, String(id))
      }
      await assert.rejects(store.getSession('a:b'), { code: 'ERR_INVALID_ARGUMENT' })
      await assert.rejects(store.createSession({ title: 5 }), { code: 'ERR_INVALID_ARGUMENT' })
    })

    test('createMessage fills uuid and created_at, returns the stored message, refuses a missing session', async () => {
      const s = await newSession()
      const m = await store.createMessage({
        session_id: s.id,
        content: 'hi ☃ 😀',
        role: 'assistant',
        agent_id: 'chloe',
        metadata: { n: 1, nested: { ok: true }, skipped: undefined },
        message_uuid: 'ignored',
        created_at: 'ignored',
        extra: 'not stored',
      })
      assert.match(m.message_uuid, UUID_V7)
      assert.match(m.created_at, TIMESTAMP)
      assert.deepEqual(m, {
        message_uuid: m.message_uuid,
        session_id: s.id,
        created_at: m.created_at,
        role: 'assistant',
        content: 'hi ☃ 😀',
        agent_id: 'chloe',
        metadata: { n: 1, nested: { ok: true } },
      })
      assert.deepEqual(await store.getMessageByUuid(m.message_uuid), m)
      const plain = await store.createMessage({ session_id: s.id, content: '' })
      assert.equal(plain.role, 'user')
      assert.equal(plain.agent_id, null)
      assert.deepEqual(plain.metadata, {})

      await assert.rejects(store.createMessage({ session_id: 'missing', content: 'x' }), (error) => {
        assert.equal(error.code, 'ERR_SESSION_NOT_FOUND')
        assert.ok(error instanceof Error)
        assert.match(error.message, /missing/)
        return true
      })
      for (const bad of [
        null,
        { content: 'no session' },
        { session_id: s.id },
        { session_id: s.id, content: 5 },
        { session_id: s.id, content: 'x', agent_id: 'a:b' },
        { session_id: s.id, content: 'x', role: 7 },
        { session_id: s.id, content: 'x', metadata: [] },
        { session_id: s.id, content: 'x', metadata: { big: 1n } },
      ]) {
        await assert.rejects(
          store.createMessage(bad),
          { code: 'ERR_INVALID_ARGUMENT' },
          JSON.stringify(bad, (_k, v) => (typeof v === 'bigint' ? 'bigint' : v)),
        )
      }
      // Nothing of the refused messages was written.
      assert.equal((await store.getSessionMessages(s.id, { includeTotal: true })).total, 2)
    })

    test('a created message is retrievable as soon as createMessage resolves (the seed race)', async () => {
      const s = await newSession()
      const failures = []
      await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          const m = await store.createMessage({ session_id: s.id, content: `race ${i}`, agent_id: i % 2 ? 'chloe' : null })
          // No await between the resolution and these reads.
          const byUuid = store.getMessageByUuid(m.message_uuid)
          const newest = store.getSessionMessages(s.id, { limit: 1000, direction: 'desc' })
          const got = await byUuid
          if (got === null || got.content !== m.content) failures.push(`get ${i}`)
          if (!uuids(await newest).includes(m.message_uuid)) failures.push(`history ${i}`)
        }),
      )
      assert.deepEqual(failures, [])
      const page = await store.getSessionMessages(s.id, { limit: 1000, direction: 'asc', includeTotal: true })
      assert.equal(page.total, 200)
      // Calls made in one order are stored in that order (the clock is strictly increasing).
      assert.deepEqual(
        page.messages.map((m) => m.content),
        Array.from({ length: 200 }, (_, i) => `race ${i}`),
      )
    })

    test('getMessageByUuid: unknown is null, a malformed id is refused', async () => {
      assert.equal(await store.getMessageByUuid('00000000-0000-4000-8000-000000000000'), null)
      await assert.rejects(store.getMessageByUuid(''), { code: 'ERR_INVALID_ARGUMENT' })
      await assert.rejects(store.getMessageByUuid(undefined), { code: 'ERR_INVALID_ARGUMENT' })
    })

    test('pagination: empty session, missing session, bad options', async () => {
      const s = await newSession()
      for (const direction of ['asc', 'desc']) {
        assert.deepEqual(await store.getSessionMessages(s.id, { direction }), { messages: [], nextCursor: null })
        assert.deepEqual(await store.getSessionMessages(s.id, { direction, includeTotal: true, skip: 3 }), { messages: [], nextCursor: null, total: 0 })
      }
      await assert.rejects(store.getSessionMessages('missing'), { code: 'ERR_SESSION_NOT_FOUND' })
      for (const opts of [{ limit: 0 }, { limit: 1001 }, { limit: 1.5 }, { limit: '10' }, { skip: -1 }, { direction: 'up' }, 'x']) {
        await assert.rejects(store.getSessionMessages(s.id, opts), { code: 'ERR_INVALID_ARGUMENT' }, JSON.stringify(opts))
      }
      const other = await newSession()
      const [m] = await fill(other.id, 1)
      for (const cursor of [messageKey(m), 'garbage', `${s.id}:`, `${s.id}:2024-01-01T00:00:00.000000Z:`, `${s.id}:2024-01-01:x`, 5]) {
        await assert.rejects(store.getSessionMessages(s.id, { cursor }), { code: 'ERR_INVALID_CURSOR' }, String(cursor))
      }
    })

    test('pagination: exact page boundaries, both directions, skip, total', async () => {
      const s = await newSession()
      const made = await fill(s.id, 20)
      const asc = made.map((m) => m.message_uuid)
      const desc = [...asc].reverse()
      // Default: newest first, 100 per page.
      assert.deepEqual(uuids(await store.getSessionMessages(s.id)), desc)
      for (const limit of [1, 5, 7, 10, 19, 20, 21]) {
        for (const [direction, expected] of [
          ['asc', asc],
          ['desc', desc],
        ]) {
          const pages = []
          let cursor = null
          do {
            const page = await store.getSessionMessages(s.id, { limit, direction, cursor, includeTotal: true })
            assert.equal(page.total, 20)
            pages.push(uuids(page))
            cursor = page.nextCursor
            if (cursor !== null) assert.equal(cursor, messageKey(page.messages.at(-1)))
          } while (cursor !== null)
          // A full last page is not followed by an empty one: nextCursor is null at the end.
          assert.equal(pages.length, Math.ceil(20 / limit), `${direction} ${limit}`)
          assert.deepEqual(pages.flat(), expected, `${direction} ${limit}`)
        }
      }
      const page = await store.getSessionMessages(s.id, { direction: 'asc', skip: 5, limit: 5 })
      assert.deepEqual(uuids(page), asc.slice(5, 10))
      assert.equal(page.nextCursor, messageKey(made[9]))
      assert.deepEqual(uuids(await store.getSessionMessages(s.id, { direction: 'asc', skip: 15, limit: 5 })), asc.slice(15))
      assert.equal((await store.getSessionMessages(s.id, { direction: 'asc', skip: 15, limit: 5 })).nextCursor, null)
      assert.deepEqual(await store.getSessionMessages(s.id, { skip: 20 }), { messages: [], nextCursor: null })
      assert.deepEqual(uuids(await store.getSessionMessages(s.id, { direction: 'desc', skip: 2, limit: 3, cursor: messageKey(made[10]) })), [
        asc[7],
        asc[6],
        asc[5],
      ])
    })

    test('pagination: cursor at the first and the last message', async () => {
      const s = await newSession()
      const made = await fill(s.id, 12)
      const asc = made.map((m) => m.message_uuid)
      const first = messageKey(made[0])
      const last = messageKey(made.at(-1))
      assert.deepEqual(await store.getSessionMessages(s.id, { direction: 'asc', cursor: last }), { messages: [], nextCursor: null })
      assert.deepEqual(await store.getSessionMessages(s.id, { direction: 'desc', cursor: first }), { messages: [], nextCursor: null })
      assert.deepEqual(uuids(await store.getSessionMessages(s.id, { direction: 'asc', cursor: first })), asc.slice(1))
      assert.deepEqual(uuids(await store.getSessionMessages(s.id, { direction: 'desc', cursor: last })), asc.slice(0, -1).reverse())
      const p = await store.getSessionMessages(s.id, { direction: 'asc', cursor: first, limit: 11 })
      assert.equal(p.messages.length, 11)
      assert.equal(p.nextCursor, null)
      // A cursor need not be a stored message: it is a position in the session's time order.
      const between = `${s.id}:${made[5].created_at}:~`
      assert.deepEqual(uuids(await store.getSessionMessages(s.id, { direction: 'asc', cursor: between })), asc.slice(6))
    })

    test('pagination: sessions whose ids share a prefix do not leak into each other', async () => {
      // Ids sorting just around the key separator ':' and the range end ';'.
      const ids = ['q', 'q0', 'q-', 'qa', 'q;', 'q9', 'q;x'].map((id) => `${kind}${id}`)
      for (const id of ids) await store.createSession({ id })
      for (const id of ids) await fill(id, 3, { content: id })
      for (const id of ids) {
        for (const direction of ['asc', 'desc']) {
          const page = await store.getSessionMessages(id, { direction, includeTotal: true })
          assert.equal(page.total, 3, id)
          assert.deepEqual(
            page.messages.map((m) => m.content),
            [id, id, id],
            id,
          )
        }
      }
    })

    test('pagination: concurrent inserts while paging neither duplicate nor skip existing messages', async () => {
      const s = await newSession()
      const existing = (await fill(s.id, 40)).map((m) => m.message_uuid)
      const inserts = []
      const insertSome = (n) => {
        for (let i = 0; i < n; i++) inserts.push(store.createMessage({ session_id: s.id, content: 'new' }))
      }
      // Ascending: every existing message once, in order; new ones only after them.
      const ascSeen = []
      let cursor = null
      do {
        insertSome(3) // in flight while the page is read
        const page = await store.getSessionMessages(s.id, { direction: 'asc', limit: 7, cursor })
        await Promise.all(inserts)
        insertSome(2)
        ascSeen.push(...uuids(page))
        cursor = page.nextCursor
      } while (cursor !== null)
      await Promise.all(inserts)
      assert.equal(new Set(ascSeen).size, ascSeen.length, 'no duplicates')
      assert.deepEqual(ascSeen.slice(0, 40), existing)
      assert.ok(ascSeen.length > 40)
      // Descending from the newest message at the start: exactly what existed then, newest first.
      const before = uuids(await store.getSessionMessages(s.id, { direction: 'asc', limit: 1000 }))
      const descSeen = []
      cursor = null
      do {
        const page = await store.getSessionMessages(s.id, { direction: 'desc', limit: 9, cursor })
        insertSome(4)
        await Promise.all(inserts)
        descSeen.push(...uuids(page))
        cursor = page.nextCursor
      } while (cursor !== null)
      assert.deepEqual(descSeen, [...before].reverse())
      const total = (await store.getSessionMessages(s.id, { includeTotal: true, limit: 1 })).total
      assert.equal(total, 40 + inserts.length)
      assert.equal((await all(s.id, { direction: 'asc', limit: 50 })).length, total)
    })

    test('messages by agent: time order across sessions, pages, total', async () => {
      const agent = `agent-${kind}-${counter++}`
      const s1 = await newSession()
      const s2 = await newSession()
      const expected = []
      for (let i = 0; i < 9; i++) {
        const m = await store.createMessage({ session_id: i % 2 ? s1.id : s2.id, content: `a${i}`, agent_id: agent })
        expected.push(m.message_uuid)
        await store.createMessage({ session_id: s1.id, content: 'other agent', agent_id: 'chloe' })
        await store.createMessage({ session_id: s2.id, content: 'no agent' })
      }
      const page = await store.getMessagesByAgent(agent, { direction: 'asc', limit: 4, includeTotal: true })
      assert.equal(page.total, 9)
      assert.deepEqual(uuids(page), expected.slice(0, 4))
      assert.equal(page.nextCursor, `${agent}:${page.messages[3].created_at}:${page.messages[3].message_uuid}`)
      const rest = await store.getMessagesByAgent(agent, { direction: 'asc', limit: 10, cursor: page.nextCursor })
      assert.deepEqual(uuids(rest), expected.slice(4))
      assert.equal(rest.nextCursor, null)
      assert.deepEqual(uuids(await store.getMessagesByAgent(agent)), [...expected].reverse())
      assert.deepEqual(await store.getMessagesByAgent(`${agent}-none`, { includeTotal: true }), { messages: [], nextCursor: null, total: 0 })
      assert.ok(page.messages.every((m) => m.agent_id === agent))
      await assert.rejects(store.getMessagesByAgent(agent, { cursor: messageKey(page.messages[0]) }), { code: 'ERR_INVALID_CURSOR' })
      await assert.rejects(store.getMessagesByAgent('a:b'), { code: 'ERR_INVALID_ARGUMENT' })
    })

    test('agent cards: put, get, list in id order, update keeps created_at', async () => {
      await store.initDatabase()
      const card = await store.putAgentCard({ id: 'zed', name: 'Zed', capabilities: ['x'], created_at: 'ignored' })
      assert.equal(card.created_at, card.updated_at)
      assert.match(card.created_at, TIMESTAMP)
      assert.deepEqual(await store.getAgentCard('zed'), card)
      const updated = await store.putAgentCard({ id: 'zed', name: 'Zed 2', is_active: false })
      assert.equal(updated.created_at, card.created_at)
      assert.ok(updated.updated_at > card.updated_at)
      assert.deepEqual(await store.getAgentCard('zed'), updated)
      assert.equal(updated.capabilities, undefined) // a put replaces the card's fields
      await store.putAgentCard({ id: 'aaron', name: 'Aaron' })
      const list = await store.listAgentCards()
      const ids = list.map((c) => c.id)
      assert.deepEqual(
        ids,
        [...ids].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
      )
      for (const id of ['aaron', 'chloe', 'phil_connors', 'zed']) assert.ok(ids.includes(id), id)
      assert.equal(await store.getAgentCard('nobody'), null)
      await assert.rejects(store.putAgentCard({ id: 'x' }), { code: 'ERR_INVALID_ARGUMENT' })
      await assert.rejects(store.putAgentCard({ id: 'x:y', name: 'X' }), { code: 'ERR_INVALID_ARGUMENT' })
      await assert.rejects(store.putAgentCard(null), { code: 'ERR_INVALID_ARGUMENT' })
    })

    test('shared contexts: put, update, list by session in creation order', async () => {
      const s = await newSession()
      const other = await newSession()
      const a = await store.putSharedContext({ session_id: s.id, context_type: 'notes', content: { text: 'a' }, agent_id: 'chloe' })
      assert.match(a.id, UUID)
      const b = await store.putSharedContext({ id: `ctx-b-${kind}`, session_id: s.id, content: ['b'] })
      assert.equal(b.context_type, 'generic')
      assert.equal(b.agent_id, null)
      await store.putSharedContext({ session_id: other.id, content: 'elsewhere' })
      const a2 = await store.putSharedContext({ id: a.id, session_id: s.id, context_type: 'notes', content: { text: 'a2' } })
      assert.equal(a2.created_at, a.created_at)
      assert.ok(a2.updated_at > a.updated_at)
      assert.deepEqual(await store.getSharedContext(a.id), a2)
      const list = await store.listSharedContexts(s.id)
      assert.deepEqual(
        list.map((c) => [c.id, c.content]),
        [
          [a.id, { text: 'a2' }],
          [b.id, ['b']],
        ],
      )
      assert.deepEqual(await store.listSharedContexts(`empty-${kind}`), [])
      await assert.rejects(store.putSharedContext({ id: a.id, session_id: other.id, content: 1 }), { code: 'ERR_INVALID_ARGUMENT' })
      await assert.rejects(store.putSharedContext({ session_id: 'missing', content: 1 }), { code: 'ERR_SESSION_NOT_FOUND' })
      await assert.rejects(store.putSharedContext({ content: 1 }), { code: 'ERR_INVALID_ARGUMENT' })
      assert.equal(await store.getSharedContext('none'), null)
      // Concurrent updates of one context keep one index entry.
      await Promise.all([1, 2, 3].map((n) => store.putSharedContext({ id: b.id, session_id: s.id, content: n })))
      assert.equal((await store.listSharedContexts(s.id)).length, 2)
    })

    test('agent-to-agent tasks: put, get, update keeps created_at', async () => {
      const s = await newSession()
      const t = await store.putA2ATask({ from_agent: 'chloe', to_agent: 'phil_connors', session_id: s.id, payload: { do: 'plan' } })
      assert.match(t.id, UUID)
      assert.equal(t.status, 'pending')
      assert.equal(t.result, null)
      assert.deepEqual(await store.getA2ATask(t.id), t)
      const done = await store.putA2ATask({ ...t, status: 'done', result: { ok: true } })
      assert.equal(done.created_at, t.created_at)
      assert.equal(done.status, 'done')
      assert.deepEqual(await store.getA2ATask(t.id), done)
      const loose = await store.putA2ATask({ id: `task-${kind}`, from_agent: 'a', to_agent: 'b' })
      assert.equal(loose.session_id, null)
      assert.equal(await store.getA2ATask('none'), null)
      await assert.rejects(store.putA2ATask({ from_agent: 'a', to_agent: 'b', session_id: 'missing' }), { code: 'ERR_SESSION_NOT_FOUND' })
      await assert.rejects(store.putA2ATask({ from_agent: 'a' }), { code: 'ERR_INVALID_ARGUMENT' })
      await assert.rejects(store.putA2ATask({ from_agent: 'a', to_agent: 'b', status: 1 }), { code: 'ERR_INVALID_ARGUMENT' })
    })

    test('everything persists across close and reopen', async () => {
      const reopenDir = fs.mkdtempSync(path.join(os.tmpdir(), `socketio-store-reopen-${kind}-`))
      try {
        const s1 = await openMessageStore(kind, reopenDir)
        const { defaultSessionId } = await s1.initDatabase()
        const m = await s1.createMessage({ session_id: defaultSessionId, content: 'kept', agent_id: 'chloe' })
        const ctx = await s1.putSharedContext({ session_id: defaultSessionId, content: 1 })
        await s1.close()
        const s2 = await openMessageStore(kind, reopenDir)
        try {
          assert.deepEqual(await s2.initDatabase(), { defaultSessionId })
          assert.deepEqual(await s2.getMessageByUuid(m.message_uuid), m)
          assert.deepEqual(uuids(await s2.getSessionMessages(defaultSessionId)), [m.message_uuid])
          assert.deepEqual(uuids(await s2.getMessagesByAgent('chloe')), [m.message_uuid])
          assert.deepEqual(await s2.listSharedContexts(defaultSessionId), [ctx])
        } finally {
          await s2.close()
        }
      } finally {
        fs.rmSync(reopenDir, { recursive: true, force: true })
      }
    })
  })
}

test('uuidV7: unique, version 7, in creation order even within one millisecond, time in the first 48 bits', () => {
  const before = Date.now()
  const ids = Array.from({ length: 10_000 }, () => uuidV7())
  const after = Date.now()
  assert.equal(new Set(ids).size, ids.length)
  for (const id of ids) assert.match(id, UUID_V7)
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1] < ids[i], `${ids[i - 1]} < ${ids[i]}`)
  const ms = parseInt(ids[0].slice(0, 8) + ids[0].slice(9, 13), 16)
  assert.ok(ms >= before && ms <= after + 3, `${ms} within ${before}..${after}`)
})
