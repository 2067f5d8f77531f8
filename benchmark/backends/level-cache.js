// A re-implementation of @promethean/level-cache's semantics over `level`
// (LevelDB), the original's backend. It is the benchmark baseline and the
// reference for the on-disk format a migration tool reads:
//
//   new Level(path, { valueEncoding: 'json' })   utf8 string keys
//   key   = namespace ? namespace + '\u241F' + key : key
//   value = { v: value, x: expiryEpochMs }        (x omitted: no expiry)
//
// Behaviour kept on purpose, weaknesses included: get() deletes an expired
// entry on the read path and swallows read errors, entries() scans the range
// [prefix, prefix + '\uFFFF') (which misses keys whose first character is
// outside the BMP) and passes `limit` to the LevelDB iterator.

import { Level } from 'level'

export const SEPARATOR = '\u241F'

const isExpired = (envelope) => typeof envelope?.x === 'number' && envelope.x <= Date.now()

const makeEnvelope = (value, ttlMs) => (typeof ttlMs === 'number' ? { v: value, x: Date.now() + ttlMs } : { v: value })

/**
 * @param {{ path: string, defaultTtlMs?: number, namespace?: string }} opts
 * @returns {Promise<import('../../index.js').Cache>}
 */
export async function openLevelBackedCache(opts) {
  const db = new Level(opts.path, { valueEncoding: 'json' })
  await db.open()
  return makeView(db, opts.defaultTtlMs, opts.namespace || undefined)
}

function makeView(db, defaultTtlMs, namespace) {
  const prefix = namespace ? namespace + SEPARATOR : ''
  const stored = (key) => prefix + key

  async function get(key) {
    const k = stored(key)
    // The original turns every read error (closed db included) into undefined.
    const envelope = await db.get(k).catch(() => undefined)
    if (envelope == null) return undefined
    if (isExpired(envelope)) {
      await db.del(k).catch(() => {})
      return undefined
    }
    return envelope.v
  }

  async function has(key) {
    return (await get(key)) !== undefined
  }

  async function set(key, value, putOpts) {
    await db.put(stored(key), makeEnvelope(value, putOpts?.ttlMs ?? defaultTtlMs))
  }

  async function del(key) {
    await db.del(stored(key))
  }

  async function batch(ops) {
    // Encoding happens inside db.batch, so a value JSON cannot encode rejects
    // the whole batch before anything is written.
    await db.batch(
      ops.map((op) =>
        op.type === 'del'
          ? { type: 'del', key: stored(op.key) }
          : {
              type: 'put',
              key: stored(op.key),
              value: makeEnvelope(op.value, op.ttlMs ?? defaultTtlMs),
            },
      ),
    )
  }

  async function* entries(entryOpts) {
    const range = prefix ? { gte: prefix, lt: `${prefix}\uFFFF` } : {}
    for await (const [k, envelope] of db.iterator({ ...range, limit: entryOpts?.limit })) {
      if (isExpired(envelope)) {
        await db.del(k).catch(() => {})
        continue
      }
      if (envelope?.v !== undefined) yield [k.slice(prefix.length), envelope.v]
    }
  }

  async function sweepExpired() {
    let count = 0
    let pending = []
    for await (const [k, envelope] of db.iterator()) {
      if (!isExpired(envelope)) continue
      pending.push({ type: 'del', key: k })
      count++
      if (pending.length >= 1000) {
        await db.batch(pending)
        pending = []
      }
    }
    if (pending.length > 0) await db.batch(pending)
    return count
  }

  function withNamespace(ns) {
    const next = ns ? (namespace ? `${namespace}/${ns}` : ns) : namespace
    return makeView(db, defaultTtlMs, next)
  }

  async function close() {
    await db.close() // idempotent in abstract-level; shared by every view
  }

  return Object.freeze({ get, has, set, del, batch, entries, sweepExpired, withNamespace, close })
}
