'use strict'
// Owns KeyvLmdb, the Keyv store (`@promethean/lmdb-cache/keyv`). Keyv hands a store keys
// prefixed with its namespace (`ns:key`); this store keeps them in the cache's namespace view
// `ns` (so Keyv's clear() is the view's native clear and its iterator a native scan), and
// keeps Keyv's value (its serialized string, or with `serialize: undefined` its
// `{ value, expires }` object) as the cache value, with Keyv's ttl as the native TTL, so
// has(), sweeps and other processes see the expiry. Constructed synchronously: the cache is
// opened in the constructor (every step of an open is synchronous).

const { EventEmitter } = require('node:events')
const { codedError, describe } = require('./errors.cjs')
const { openCacheSync } = require('./open.cjs')
const { openViewOf } = require('./cache.cjs')
const { submit } = require('./write-queue.cjs')
const { L } = require('./native.cjs')

const DIALECT = 'lmdb-cache'

/** Keyv's ttl (ms, or undefined/0 for none) as the cache's put options. */
const putOptions = (ttl) => (typeof ttl === 'number' && ttl > 0 ? { ttlMs: ttl } : undefined)

class KeyvLmdb extends EventEmitter {
  /**
   * `options`: the options of openLmdbCache (`path`, `namespace`, `durability`...), opened
   * now and closed by disconnect(); or `{ cache }`, a cache already opened (left open).
   */
  constructor(options) {
    super()
    if (options === null || typeof options !== 'object') {
      throw codedError(TypeError, 'ERR_INVALID_OPTIONS', `new KeyvLmdb() takes { path, ...options } or { cache }, got ${describe(options)}`)
    }
    this.ownsCache = options.cache === undefined
    this.cache = this.ownsCache ? openCacheSync(options, false) : options.cache
    const base = openViewOf(this.cache)
    // Keyv 5 wires keyv.iterator only for dialects it knows, and reads `url` when the dialect
    // is not one of them: both are given, the url naming the directory.
    this.opts = { dialect: DIALECT, url: base.handle.dir }
    this.keyPrefix = null
    this.nsCache = null
    this._namespace = undefined
  }

  // Keyv sets `store.namespace` to its own; the namespace view is made once per change.
  get namespace() {
    return this._namespace
  }

  set namespace(namespace) {
    this._namespace = namespace
    const named = typeof namespace === 'string' && namespace !== ''
    this.keyPrefix = named ? `${namespace}:` : null
    this.nsCache = named ? this.cache.withNamespace(namespace) : null
  }

  /** The view that holds Keyv's key: its namespace's, or the base cache for any other key. */
  viewOf(key) {
    return this.keyPrefix !== null && key.startsWith(this.keyPrefix) ? this.nsCache : this.cache
  }

  /** The key within viewOf(key). */
  keyIn(key) {
    return this.keyPrefix !== null && key.startsWith(this.keyPrefix) ? key.slice(this.keyPrefix.length) : key
  }

  // get and has are the hot path: one prefix test, no helper calls.
  get(key) {
    const prefix = this.keyPrefix
    if (prefix !== null && key.startsWith(prefix)) return this.nsCache.get(key.slice(prefix.length))
    return this.cache.get(key)
  }

  /** In one read transaction when every key is in one view (Keyv's are: one namespace). */
  getMany(keys) {
    const view = keys.length === 0 ? this.cache : this.viewOf(keys[0])
    if (keys.every((key) => this.viewOf(key) === view)) return view.getMany(keys.map((key) => this.keyIn(key)))
    return Promise.all(keys.map((key) => this.get(key)))
  }

  async set(key, value, ttl) {
    await this.viewOf(key).set(this.keyIn(key), value, putOptions(ttl))
    return true
  }

  /** One atomic batch. */
  async setMany(entries) {
    const ops = entries.map(({ key, value, ttl }) => ({ type: 'put', key: this.keyIn(key), value, ttlMs: putOptions(ttl)?.ttlMs, view: this.viewOf(key) }))
    await this.cache.batch(ops)
    return entries.map(() => true)
  }

  delete(key) {
    return this.viewOf(key).delete(this.keyIn(key))
  }

  /** One write transaction; true if any key held a live entry. */
  async deleteMany(keys) {
    if (keys.length === 0) return false
    const base = openViewOf(this.cache)
    const ops = keys.map((key) => ({
      kind: L.OP_DEL_LIVE,
      key: this.keyIn(key),
      value: undefined,
      expiry: undefined,
      prefix: openViewOf(this.viewOf(key)).prefixBytes,
    }))
    return (await submit(L.REQUEST_BATCH, base, ops, Date.now(), true)) > 0
  }

  has(key) {
    const prefix = this.keyPrefix
    if (prefix !== null && key.startsWith(prefix)) return this.nsCache.has(key.slice(prefix.length))
    return this.cache.has(key)
  }

  hasMany(keys) {
    return Promise.all(keys.map((key) => this.has(key)))
  }

  /** Clears Keyv's namespace (its view, natively); without a namespace, the base cache. */
  async clear() {
    await (this.nsCache ?? this.cache).clear()
  }

  /** `[key, value]` of `namespace` (keys prefixed as Keyv gave them), for keyv.iterator. */
  async *iterator(namespace) {
    const named = typeof namespace === 'string' && namespace !== ''
    const view = named ? this.cache.withNamespace(namespace) : this.cache
    const prefix = named ? `${namespace}:` : ''
    for await (const [key, value] of view.entries()) yield [prefix + key, value]
  }

  async disconnect() {
    if (this.ownsCache) await this.cache.close()
  }
}

module.exports = { KeyvLmdb }
