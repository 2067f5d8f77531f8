// Types of @promethean/lmdb-cache/keyv: KeyvLmdb, a Keyv 5 store (KeyvStoreAdapter) over
// this package. Keyv itself is not needed to load it.
import type { LmdbCache, LmdbCacheOptions } from '@promethean/lmdb-cache'

/** openLmdbCache's options (opened now, closed by disconnect()), or a cache already open. */
export type KeyvLmdbOptions = LmdbCacheOptions | Readonly<{ cache: LmdbCache<any> }>

/** An EventEmitter (Keyv listens for its 'error' events); typed without Node's types. */
export declare class KeyvLmdb<Value = any> {
  constructor(options: KeyvLmdbOptions)
  on(event: string | symbol, listener: (...args: any[]) => void): this
  off(event: string | symbol, listener: (...args: any[]) => void): this
  emit(event: string | symbol, ...args: any[]): boolean
  /** `dialect` is this package's own; `url` is the cache directory. */
  readonly opts: { dialect: 'lmdb-cache'; url: string }
  /** Set by Keyv: keys `${namespace}:key` are kept in the cache's namespace view. */
  namespace: string | undefined
  readonly cache: LmdbCache<Value>
  get(key: string): Promise<Value | undefined>
  getMany(keys: string[]): Promise<Array<Value | undefined>>
  set(key: string, value: Value, ttl?: number): Promise<boolean>
  setMany(entries: Array<{ key: string; value: Value; ttl?: number }>): Promise<boolean[]>
  delete(key: string): Promise<boolean>
  deleteMany(keys: string[]): Promise<boolean>
  has(key: string): Promise<boolean>
  hasMany(keys: string[]): Promise<boolean[]>
  clear(): Promise<void>
  iterator(namespace?: string): AsyncGenerator<[string, Value], void, unknown>
  disconnect(): Promise<void>
}

export default KeyvLmdb
