// level-cache's semantics (see /work/shared/docs/level-cache-contract.md) over lmdb-js.
//
// This is the competitor the native package has to beat, so it uses lmdb-js the way its
// documentation recommends: synchronous reads (`db.get`), writes queued into lmdb-js's
// event-turn batches (`db.put` / `db.remove` return promises that resolve once committed),
// `db.batch` for an atomic multi-key write (executed on lmdb-js's write thread, no main-thread
// transaction callback), and `db.getRange` for a lazy, prefix-bounded scan. Values are stored
// with `encoding: 'json'` as the envelope `{ v, x }` (`x` = absolute expiry in epoch ms,
// omitted when the entry never expires); keys are plain strings (lmdb-js's default key encoding).
//
// Options: everything in level-cache's CacheOptions, plus `noSync: true`, which is passed to
// lmdb-js `open` (its no-fsync mode), and `encoding: 'msgpack'`, lmdb-js's own default
// (msgpackr with shared record structures), which a user who picks lmdb-js gets by default.
// Everything else is left at lmdb-js's defaults.

import { open } from 'lmdb'

const NS_SEP = '\u241F'

/** The smallest string greater than every string that starts with `prefix` (code point order). */
function prefixEnd(prefix) {
  // Incrementing the last code point gives the immediate successor of the prefix family;
  // UTF-8 byte order (what LMDB compares) agrees with code point order.
  const last = prefix.codePointAt(prefix.length - 1)
  const lastLen = last > 0xffff ? 2 : 1
  const head = prefix.slice(0, prefix.length - lastLen)
  if (last === 0x10ffff) return prefixEnd(head) // cannot increment: carry into the previous one
  const next = last === 0xd7ff ? 0xe000 : last + 1 // skip the surrogate block
  return head + String.fromCodePoint(next)
}

function isExpired(entry, now) {
  return typeof entry?.x === 'number' && entry.x <= now
}

function envelope(value, ttlMs) {
  if (ttlMs === undefined || ttlMs === null) return { v: value }
  return { v: value, x: Date.now() + ttlMs }
}

function checkKey(key) {
  if (typeof key !== 'string') throw new TypeError(`cache key must be a string, got ${typeof key}`)
}

export async function openLmdbJsBackedCache(opts) {
  if (!opts || typeof opts.path !== 'string') throw new TypeError('openLmdbJsBackedCache: opts.path (string) is required')
  const openOptions = { path: opts.path, encoding: opts.encoding ?? 'json' }
  if (opts.noSync) openOptions.noSync = true
  const db = open(openOptions)
  const defaultTtlMs = opts.defaultTtlMs
  let closed = false

  // Delete `storedKey` only if it is (still) expired when the write transaction runs, so a
  // concurrent fresh `set` is never lost. Fire-and-forget, like level-cache's read-path delete.
  function deleteIfExpired(storedKey) {
    if (closed) return
    db.transaction(() => {
      const cur = db.get(storedKey)
      if (cur !== undefined && isExpired(cur, Date.now())) db.remove(storedKey)
    }).catch(() => {})
  }

  function makeView(ns) {
    const prefix = ns ? ns + NS_SEP : ''

    async function get(key) {
      checkKey(key)
      const storedKey = prefix + key
      const entry = db.get(storedKey)
      if (entry === undefined) return undefined
      if (typeof entry.x === 'number' && entry.x <= Date.now()) {
        deleteIfExpired(storedKey)
        return undefined
      }
      return entry.v
    }

    async function has(key) {
      return (await get(key)) !== undefined
    }

    async function set(key, value, putOpts) {
      checkKey(key)
      const ttlMs = putOpts?.ttlMs ?? defaultTtlMs
      await db.put(prefix + key, envelope(value, ttlMs))
    }

    async function del(key) {
      checkKey(key)
      await db.remove(prefix + key)
    }

    async function batch(ops) {
      // Validate everything first: an exception inside lmdb-js's batch callback would leave
      // the operations queued before it in the commit.
      const n = ops.length
      for (let i = 0; i < n; i++) {
        const op = ops[i]
        if (op.type !== 'put' && op.type !== 'del') throw new TypeError(`batch: unknown op type ${op.type}`)
        checkKey(op.key)
      }
      if (n === 0) return
      await db.batch(() => {
        for (let i = 0; i < n; i++) {
          const op = ops[i]
          if (op.type === 'put') db.put(prefix + op.key, envelope(op.value, op.ttlMs ?? defaultTtlMs))
          else db.remove(prefix + op.key)
        }
      })
    }

    async function* entries(entryOpts) {
      const limit = entryOpts?.limit ?? Infinity
      if (limit <= 0) return
      const range = prefix ? db.getRange({ start: prefix, end: prefixEnd(prefix) }) : db.getRange({})
      let yielded = 0
      const now = Date.now()
      for (const { key, value } of range) {
        // Keys are strings here (we only ever write strings); the startsWith guard is a no-op
        // for a correct range and protects against lmdb-js's escape bytes for control chars.
        if (typeof key !== 'string' || !key.startsWith(prefix)) continue
        if (isExpired(value, now)) {
          deleteIfExpired(key)
          continue
        }
        if (value?.v === undefined) continue // a stored `undefined` is absent
        yield [key.slice(prefix.length), value.v]
        if (++yielded >= limit) return
      }
    }

    async function sweepExpired() {
      // Whole database, from any view. Collect first (one read snapshot), then delete in
      // write transactions that re-check expiry, so a value refreshed meanwhile survives.
      const now = Date.now()
      const expired = []
      for (const { key, value } of db.getRange({})) if (isExpired(value, now)) expired.push(key)
      let removed = 0
      for (let i = 0; i < expired.length; i += 1000) {
        const chunk = expired.slice(i, i + 1000)
        removed += await db.transaction(() => {
          let n = 0
          const t = Date.now()
          for (const k of chunk) {
            const cur = db.get(k)
            if (cur !== undefined && isExpired(cur, t)) {
              db.remove(k)
              n++
            }
          }
          return n
        })
      }
      return removed
    }

    function withNamespace(child) {
      if (!child) return view
      return makeView(ns ? `${ns}/${child}` : child)
    }

    async function close() {
      if (closed) return
      closed = true
      await db.close()
    }

    const view = Object.freeze({ get, has, set, del, batch, entries, sweepExpired, withNamespace, close })
    return view
  }

  return makeView(opts.namespace || '')
}
