// Public types of @promethean/lmdb-cache. `Cache`, `CacheOptions`, `PutOptions` and `Millis`
// are exactly level-cache's, so code written against level-cache compiles unchanged.

export type Millis = number

export type CacheOptions = Readonly<{
  path: string
  defaultTtlMs?: Millis
  namespace?: string
}>

export type PutOptions = Readonly<{ ttlMs?: Millis }>

export type Cache<T = unknown> = Readonly<{
  get: (key: string) => Promise<T | undefined>
  has: (key: string) => Promise<boolean>
  set: (key: string, value: T, opts?: PutOptions) => Promise<void>
  del: (key: string) => Promise<void>
  batch: (
    ops: ReadonlyArray<
      { type: 'put'; key: string; value: T; ttlMs?: Millis } | { type: 'del'; key: string }
    >,
  ) => Promise<void>
  entries: (opts?: Readonly<{ limit?: number }>) => AsyncGenerator<[string, T]>
  sweepExpired: () => Promise<number>
  withNamespace: (ns: string) => Cache<T>
  close: () => Promise<void>
}>

/**
 * How commits reach the disk.
 * - `"durable"` (default): the data is fsynced at every commit, the meta page is not; the file
 *   stays intact across an OS crash or power loss, which may undo the last commit(s).
 * - `"strict"`: data and meta page are fsynced; an acknowledged write survives an OS crash.
 * - `"nosync"`: no fsync, like LevelDB's default put; survives a process crash, but an OS crash
 *   or power loss may lose recent writes or corrupt the file.
 */
export type Durability = 'durable' | 'strict' | 'nosync'

/** level-cache's options plus optional LMDB settings; every addition is optional. */
export type LmdbCacheOptions = CacheOptions &
  Readonly<{
    durability?: Durability
    /** Initial map size in bytes (default 64 MiB, at most 64 TiB); the map grows by itself. */
    mapSize?: number
    /** Largest map size in bytes (default 256 GiB); puts past it fail with ERR_CACHE_FULL. */
    maxMapSize?: number
    /** LMDB reader slots shared by all processes (default 1022, at most 65536); fixed by the first opener. */
    maxReaders?: number
    /**
     * Permission bits of data.mdb and lock.mdb when this open creates them (default 0o666 less
     * the process umask, as LevelDB's files get; applied as given, not masked by the umask;
     * 0 to 0o777). The mode of existing files is never changed.
     */
    fileMode?: number
    /**
     * Bound on the entries the directory holds (a whole number >= 1). Past it, the least
     * recently used entries are evicted (expired ones first). The bound is the directory's,
     * shared by every process: an open that passes it stores it, one that omits it follows
     * the stored one, `Infinity` removes it. See README "Bounding the cache".
     */
    maxEntries?: number
    /**
     * Bound on the bytes the entries take: each entry counts its stored key (the key with its
     * namespace, +1 byte) and its stored record (the MessagePack value + a 5 to 25-byte
     * header). Same rules as `maxEntries`.
     */
    maxBytes?: number
  }>

/**
 * `entries()` options: level-cache's `limit`, plus ordered range reads. Bounds are logical
 * keys of the view's namespace, compared by UTF-8 byte order; `reverse` walks downwards.
 */
export type EntriesOptions = Readonly<{
  limit?: number
  gt?: string
  gte?: string
  lt?: string
  lte?: string
  reverse?: boolean
}>

/** Bounds for `count()`: logical keys within the view's namespace, as in `EntriesOptions`. */
export type CountOptions = Readonly<{
  gt?: string
  gte?: string
  lt?: string
  lte?: string
}>

/**
 * A batch operation; `view` (a `withNamespace` view of the same open cache) writes it in that
 * view's namespace, so one atomic batch can span namespaces.
 */
export type BatchOperation<T> = (
  | { type: 'put'; key: string; value: T; ttlMs?: Millis }
  | { type: 'del'; key: string }
) & { view?: Cache<any> }

/**
 * What `openLmdbCache` returns: a `Cache<T>` whose `entries` and `batch` also take the optional
 * additions above. Assignable both ways with level-cache's `Cache<T>`, so code that stores a
 * wrapped or fake `Cache<T>` where it kept the opened cache compiles unchanged.
 */
export type LmdbCache<T = unknown> = Readonly<
  Omit<Cache<T>, 'entries' | 'batch' | 'withNamespace'> & {
    entries: (opts?: EntriesOptions) => AsyncGenerator<[string, T]>
    /**
     * The number of live entries of this view within the bounds, counted without reading
     * values. Always there on a cache this package opened (`cache.count!()`); optional in the
     * type only so that a level-cache `Cache<T>`, which lacks it, stays assignable.
     */
    count?: (opts?: CountOptions) => Promise<number>
    batch: (ops: ReadonlyArray<BatchOperation<T>>) => Promise<void>
    withNamespace: (ns: string) => LmdbCache<T>
    // The additions below are always there on a cache this package opened; optional in the
    // type (like `count`) so that a level-cache `Cache<T>` stays assignable.
    /** Deletes `key` in one write transaction; resolves true if it held a live entry. */
    delete?: (key: string) => Promise<boolean>
    /**
     * Deletes every entry of this view's namespace (nested namespaces are their own; the
     * root view: every entry), 4,096 per write transaction; resolves with the count. Values
     * are not read. Not atomic: writes made meanwhile may survive it.
     */
    clear?: () => Promise<number>
    /** The keys `entries()` would yield, without reading the values. */
    keys?: (opts?: EntriesOptions) => AsyncGenerator<string>
    /** The values of `keys` from one snapshot (one read transaction), undefined where absent. */
    getMany?: (keys: ReadonlyArray<string>) => Promise<Array<T | undefined>>
    /**
     * The value of `key`; when missing, runs `compute` in exactly one caller across every
     * process and thread sharing the directory, stores its result (`ttlMs`) and gives it to
     * every waiting caller. A lease of `lockTtlMs` (default 30,000, renewed while compute runs)
     * lets another caller take over if the computing process dies. A throwing compute rejects
     * the callers of its process only. A result of `undefined` is not cached.
     */
    getOrSet?: (key: string, compute: () => T | Promise<T>, opts?: GetOrSetOptions) => Promise<T>
  }
>

export type GetOrSetOptions = Readonly<{
  /** The stored value's time to live (default: the cache's defaultTtlMs). */
  ttlMs?: Millis
  /** How long a computing caller holds the key before another may take over if it dies. */
  lockTtlMs?: Millis
}>

export declare function openLmdbCache<T = unknown>(opts: LmdbCacheOptions): Promise<LmdbCache<T>>
/**
 * openLmdbCache for tools that report on a cache: reads through it (and its views) never
 * delete the expired entries they meet, so that looking changes nothing.
 */
export declare function inspectLmdbCache<T = unknown>(opts: LmdbCacheOptions): Promise<LmdbCache<T>>
export declare function openLevelCache<T = unknown>(opts: LmdbCacheOptions): Promise<LmdbCache<T>>

export type CacheStats = Readonly<{
  /** Entries in the whole database, expired ones not yet deleted included. */
  entries: number
  liveEntries: number
  expiredEntries: number
  /** Current LMDB map size and its configured maximum, in bytes. */
  mapSize: number
  maxMapSize: number
  /** Bytes of the map up to its last used page. */
  usedSize: number
  /** Pages below the last used one that hold no data (reused by later writes; dropped by a compacting copy). */
  freePages: number
  pageSize: number
  /** Size of data.mdb on disk. */
  fileSize: number
  /** LMDB reader slots ever taken in this lock file (a high-water mark, all processes) and the limit. */
  readersInUse: number
  maxReaders: number
  /** The id of the last committed write transaction, by any process: it changes with every commit. */
  lastTxnId: number
  /** The directory's bounds (null: none). */
  maxEntries: number | null
  maxBytes: number | null
  /** The running totals eviction compares with the bounds (null: not kept, the directory was never bounded). */
  countedEntries: number | null
  countedBytes: number | null
  /** This process's reads (get, has) that found an entry, and that found none (expired included). */
  hits: number
  misses: number
  /** Entries this process evicted to keep the directory within its bounds. */
  evictions: number
  /** hits, misses and evictions summed over every process of a bounded directory, each up to its last write (null: never bounded). */
  directoryCounters: Readonly<{ hits: number; misses: number; evictions: number }> | null
}>

/** Figures of the directory behind a cache opened by openLmdbCache (for tools). */
export declare function cacheStats(cache: Cache<unknown>): Promise<CacheStats>

/**
 * Writes a compacted copy of the cache's data file (free pages dropped) to the new file
 * `destFile`; refuses one that exists (ERR_DESTINATION_EXISTS) or that is a cache's data.mdb or
 * lock.mdb or lies in a cache directory (ERR_DESTINATION_IN_CACHE).
 */
export declare function compactCacheTo(cache: Cache<unknown>, destFile: string): Promise<void>

/** An entry with its absolute expiry, as getEntry() returns it and putEntries() takes it. */
export type CacheEntry<T = unknown> = Readonly<{
  key: string
  value: T
  /** Epoch milliseconds, or null (or absent) for no expiry. */
  expiresAt?: number | null
}>

/**
 * The entry `key` of the cache's view (namespace applied) with its absolute expiry, or
 * undefined when it is absent, expired or a stored undefined.
 */
export declare function getEntry<T = unknown>(
  cache: Cache<T>,
  key: string,
): Promise<{ value: T; expiresAt: number | null } | undefined>

/**
 * Writes the entries into the cache's view (namespace applied) as one atomic batch, each with
 * its absolute expiry rather than a ttl (stored as whole milliseconds, rounded up).
 */
export declare function putEntries<T = unknown>(cache: Cache<T>, entries: Iterable<CacheEntry<T>>): Promise<void>

export type MigrateProgress = Readonly<{
  phase: 'copy' | 'verify'
  /** Source entries processed so far (copied or skipped), of `total`. */
  done: number
  total: number
  copied: number
  skippedExpired: number
  elapsedMs: number
}>

export type MigrateOptions = Readonly<{
  /** The level-cache (LevelDB) directory to read; never modified; must not be in use. */
  from: string
  /** The lmdb-cache directory to write (created if missing). */
  to: string
  /** Copy only the keys of this namespace (or these namespaces); nested ones as 'a/b'. */
  namespace?: string | ReadonlyArray<string>
  /** Called after each committed batch (and during verification). */
  onProgress?: (progress: MigrateProgress) => void
  /** Re-read both sides afterwards and report differences. */
  verify?: boolean
  /** Entries per write transaction (default 1,000). */
  batchSize?: number
  /** Aborts between batches (the copy so far stays; a re-run completes it). */
  signal?: Readonly<{ aborted: boolean }>
}>

export type MigrateDifference = Readonly<{
  key: string
  problem: 'missing' | 'value' | 'expiresAt'
  expected: unknown
  actual: unknown
}>

export type MigrateVerification = Readonly<{
  /** Source entries found in the destination and compared. */
  checked: number
  missing: number
  differentValue: number
  differentExpiry: number
  /** Live destination entries in the same scope that the source does not have. */
  extra: number
  /** The first differences (at most 20). */
  differences: ReadonlyArray<MigrateDifference>
  /** No entry missing or different. */
  ok: boolean
}>

export type MigrateSummary = Readonly<{
  from: string
  to: string
  namespaces: ReadonlyArray<string> | null
  /** Source entries read. */
  total: number
  copied: number
  skippedExpired: number
  /** Entries storing undefined: absent for level-cache's get() too. */
  skippedUndefined: number
  /** Values that are not level-cache envelopes ({ v, x }). */
  skippedInvalid: number
  /** Keys that are not valid UTF-8 (a JS string cannot name them unchanged). */
  skippedInvalidKeys: number
  /** Keys of the skipped entries (the first 20), invalid UTF-8 shown as U+FFFD. */
  invalidKeys: ReadonlyArray<string>
  durationMs: number
  verify?: MigrateVerification
}>

/**
 * Copies a @promethean/level-cache directory into an lmdb-cache directory: keys (namespaces
 * included), values and absolute expiries; expired entries are skipped. Needs the optional
 * peer dependency `level` (else rejects with code ERR_LEVEL_MISSING). Safe to re-run.
 */
export declare function migrateFromLevel(opts: MigrateOptions): Promise<MigrateSummary>
