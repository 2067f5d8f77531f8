// level-cache's semantics (see /work/shared/docs/level-cache-contract.md) over SQLite,
// through better-sqlite3, set up the way its documentation recommends for speed with safety:
//
//   journal_mode = WAL, synchronous = NORMAL    (commits survive a process crash; in WAL
//                                                mode NORMAL fsyncs only at checkpoints, so
//                                                the latest commits may be lost on power loss)
//   CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT, expires INTEGER) WITHOUT ROWID
//
// `key` is the stored key (namespace + '\u241F' + key, as level-cache does), `value` the
// JSON text of the value (NULL for `undefined`, which reads back as absent, as in
// level-cache), `expires` the absolute expiry in epoch ms or NULL. Every statement is
// prepared once. better-sqlite3 is synchronous; the async Cache API wraps it. A `set` is one
// autocommit statement (one transaction), `batch` one explicit transaction.
//
// entries(): a prefix range `key >= prefix AND key < prefixEnd(prefix)` ordered by key.
// The column uses SQLite's default BINARY collation, which compares TEXT with memcmp over
// the UTF-8 bytes: byte order, which equals code point order, so the upper bound is the
// prefix with its last code point incremented. Rows are read in pages (keyset pagination):
// better-sqlite3 forbids other statements on the connection while an iterator is open, and a
// consumer may call get()/set() between two yielded entries.

import Database from 'better-sqlite3'

const NS_SEP = '\u241F'
const PAGE = 1000

/** The smallest string greater than every string that starts with `prefix` (code point order), or null. */
function prefixEnd(prefix) {
  if (!prefix) return null
  const last = prefix.codePointAt(prefix.length - 1)
  // codePointAt on a trailing low surrogate gives the low surrogate; find the real last one.
  const lastIsPair = prefix.length >= 2 && last >= 0xdc00 && last <= 0xdfff
  const cp = lastIsPair ? prefix.codePointAt(prefix.length - 2) : last
  const lastLen = cp > 0xffff ? 2 : 1
  const head = prefix.slice(0, prefix.length - lastLen)
  if (cp === 0x10ffff) return prefixEnd(head) // cannot increment: carry into the previous one
  const next = cp === 0xd7ff ? 0xe000 : cp + 1 // skip the surrogate block
  return head + String.fromCodePoint(next)
}

function checkKey(key) {
  if (typeof key !== 'string') throw new TypeError(`cache key must be a string, got ${typeof key}`)
}

const encode = (value) => (value === undefined ? null : JSON.stringify(value))
const expiryOf = (ttlMs) => (typeof ttlMs === 'number' ? Date.now() + ttlMs : null)

export async function openSqliteBackedCache(opts) {
  if (!opts || typeof opts.path !== 'string') throw new TypeError('openSqliteBackedCache: opts.path (string) is required')
  const { mkdirSync } = await import('node:fs')
  mkdirSync(opts.path, { recursive: true })
  const db = new Database(`${opts.path}/cache.sqlite`)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = NORMAL')
  db.exec('CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT, expires INTEGER) WITHOUT ROWID')

  const sGet = db.prepare('SELECT value, expires FROM kv WHERE key = ?')
  const sPut = db.prepare('INSERT OR REPLACE INTO kv (key, value, expires) VALUES (?, ?, ?)')
  const sDel = db.prepare('DELETE FROM kv WHERE key = ?')
  const sDelIfExpired = db.prepare('DELETE FROM kv WHERE key = ? AND expires IS NOT NULL AND expires <= ?')
  const sRange = db.prepare('SELECT key, value, expires FROM kv WHERE key > ? AND key < ? ORDER BY key LIMIT ?')
  const sRangeFirst = db.prepare('SELECT key, value, expires FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?')
  const sOpen = db.prepare('SELECT key, value, expires FROM kv WHERE key > ? ORDER BY key LIMIT ?')
  const sOpenFirst = db.prepare('SELECT key, value, expires FROM kv WHERE key >= ? ORDER BY key LIMIT ?')
  const sSweep = db.prepare('DELETE FROM kv WHERE expires IS NOT NULL AND expires <= ?')
  const runBatch = db.transaction((prefix, ops, defaultTtlMs) => {
    for (const op of ops) {
      if (op.type === 'put') sPut.run(prefix + op.key, encode(op.value), expiryOf(op.ttlMs ?? defaultTtlMs))
      else sDel.run(prefix + op.key)
    }
  })
  const defaultTtlMs = opts.defaultTtlMs
  let closed = false

  function makeView(ns) {
    const prefix = ns ? ns + NS_SEP : ''
    const end = prefixEnd(prefix)

    async function get(key) {
      checkKey(key)
      const row = sGet.get(prefix + key)
      if (row === undefined) return undefined
      if (row.expires !== null && row.expires <= Date.now()) {
        sDelIfExpired.run(prefix + key, Date.now()) // re-checked in the statement itself
        return undefined
      }
      return row.value === null ? undefined : JSON.parse(row.value)
    }

    async function has(key) {
      return (await get(key)) !== undefined
    }

    async function set(key, value, putOpts) {
      checkKey(key)
      sPut.run(prefix + key, encode(value), expiryOf(putOpts?.ttlMs ?? defaultTtlMs))
    }

    async function del(key) {
      checkKey(key)
      sDel.run(prefix + key)
    }

    async function batch(ops) {
      for (const op of ops) {
        if (op.type !== 'put' && op.type !== 'del') throw new TypeError(`batch: unknown op type ${op.type}`)
        checkKey(op.key)
      }
      if (ops.length) runBatch(prefix, ops, defaultTtlMs)
    }

    async function* entries(entryOpts) {
      let remaining = entryOpts?.limit ?? Infinity
      if (remaining <= 0) return
      let after = null // last key seen (keyset pagination)
      for (;;) {
        const n = Math.min(PAGE, remaining) // skipped (expired) rows may need another page
        let rows
        if (end === null) rows = after === null ? sOpenFirst.all(prefix, n) : sOpen.all(after, n)
        else rows = after === null ? sRangeFirst.all(prefix, end, n) : sRange.all(after, end, n)
        if (!rows.length) return
        after = rows[rows.length - 1].key
        const now = Date.now()
        for (const row of rows) {
          if (row.expires !== null && row.expires <= now) {
            sDelIfExpired.run(row.key, now)
            continue
          }
          if (row.value === null) continue // a stored `undefined` is absent
          yield [row.key.slice(prefix.length), JSON.parse(row.value)]
          if (--remaining <= 0) return
        }
        if (rows.length < n) return
      }
    }

    async function sweepExpired() {
      return sSweep.run(Date.now()).changes
    }

    function withNamespace(child) {
      if (!child) return view
      return makeView(ns ? `${ns}/${child}` : child)
    }

    async function close() {
      if (closed) return
      closed = true
      db.close()
    }

    const view = Object.freeze({ get, has, set, del, batch, entries, sweepExpired, withNamespace, close })
    return view
  }

  return makeView(opts.namespace || '')
}
