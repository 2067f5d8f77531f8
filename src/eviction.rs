//! Bounding a cache directory (`maxBytes`, `maxEntries`): the bounds and running totals kept
//! in the `meta` database, the coarse access clock records carry (HAS_ACCESS), and what to
//! evict when a commit passes a bound: expired entries first, then the least recently used
//! of sampled candidates. A clock hand (kept in `meta`, shared by every process) walks the
//! key space; each eviction samples the next [`SAMPLE`] entries into a small pool of the
//! oldest seen (as Redis's approximated LRU does) and evicts the oldest of the pool after
//! checking that its record did not change since.
//!
//! Every write transaction of the writer thread goes through an [`Evictor`]: `begin` loads
//! the bounds and totals, the writes report what they add and remove, and `finish` (in the
//! writer) applies the queued touches, evicts (bounded work) and `save`s the totals.

use std::cell::Cell;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use heed::{RoTxn, RwTxn, WithoutTls};

use crate::keys::{self, StoredKey};
use crate::record::{self, Record};
use crate::store::Store;

/// `meta` key of the bounds: max entries, max bytes (u64 LE each; u64::MAX: none).
pub const BOUNDS_KEY: &[u8] = b"bounds";
/// `meta` key of the totals: entries, bytes, and the id of the transaction that wrote them
/// (u64 LE each).
pub const TOTALS_KEY: &[u8] = b"totals";
/// `meta` key of the eviction clock: the age of the last evicted entry (u32 LE, access-clock
/// units), then the clock hand (the stored key the next sample starts after; may be empty).
pub const CLOCK_KEY: &[u8] = b"evict-clock";

/// `meta` key of the directory's counters: hits, misses, evictions (u64 LE each), summed over
/// every process: each adds what it counted since its last write to its next write
/// transaction (reads cannot write).
pub const COUNTERS_KEY: &[u8] = b"counters";

/// Entries read from the hand per eviction.
pub const SAMPLE: usize = 16;
/// Candidates kept between evictions: more than a sample holds, because neighbouring keys
/// (one sample) are often written together, so one sample can be all young.
pub const POOL_SIZE: usize = 64;
/// Most entries evicted, and sampled, in one transaction: eviction never runs unbounded work
/// in one commit; what is left is evicted by the next ones.
pub const MAX_EVICTED_PER_TXN: u64 = 1024;
pub const MAX_SAMPLED_PER_TXN: usize = 16 * 1024;
/// A read re-stamps an entry (queues a touch) once its stamp is older than the recent
/// eviction age divided by this, within [`MIN_TOUCH_AFTER`]..=[`MAX_TOUCH_AFTER`]: a touch
/// only matters when it changes an entry's rank against what is being evicted.
const TOUCH_DIVISOR: u32 = 8;
pub const MIN_TOUCH_AFTER: u32 = 1; // 10 ms
pub const MAX_TOUCH_AFTER: u32 = 6_000; // 60 s
const DEFAULT_TOUCH_AFTER: u32 = 100; // 1 s, until an eviction tells better

/// The access clock: centiseconds since the Unix epoch, modulo 2^32 (wraps every ~497 days).
pub fn access_clock(unix_ms: u64) -> u32 {
    (unix_ms / 10) as u32
}

/// How long ago (access-clock units) `stamp` was at `now`; a record without one is the
/// oldest there is. Ages are taken modulo 2^32, so a stamp over ~248 days old reads as
/// recent, and one slightly ahead of `now` (clocks of processes differ) as 0.
pub fn age(now: u32, stamp: Option<u32>) -> u32 {
    match stamp {
        None => u32::MAX,
        Some(s) => {
            let d = now.wrapping_sub(s);
            if d > i32::MAX as u32 {
                0
            } else {
                d
            }
        }
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The bounds of a directory; `None`: no bound of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bounds {
    pub max_entries: Option<u64>,
    pub max_bytes: Option<u64>,
}

impl Bounds {
    pub fn is_bounded(&self) -> bool {
        self.max_entries.is_some() || self.max_bytes.is_some()
    }

    pub fn exceeded_by(&self, t: &Totals) -> bool {
        self.max_entries.is_some_and(|m| t.entries > m)
            || self.max_bytes.is_some_and(|m| t.bytes > m)
    }

    fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.max_entries.unwrap_or(u64::MAX).to_le_bytes());
        out[8..].copy_from_slice(&self.max_bytes.unwrap_or(u64::MAX).to_le_bytes());
        out
    }

    /// Undecodable bounds read as none: a damaged record must not empty the cache.
    fn decode(bytes: &[u8]) -> Bounds {
        let get = |at: usize| {
            bytes
                .get(at..at + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                .filter(|&n| n != u64::MAX)
        };
        Bounds {
            max_entries: get(0),
            max_bytes: get(8),
        }
    }
}

/// What an open asks of one bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundSetting {
    /// Not given: the directory's stored bound stays.
    Keep,
    /// `Infinity`: the bound is removed.
    Clear,
    Set(u64),
}

impl BoundSetting {
    /// From the number JS passes: negative or NaN = not given, Infinity = remove.
    pub fn from_js(n: f64) -> BoundSetting {
        if n.is_nan() || n < 0.0 {
            BoundSetting::Keep
        } else if n == f64::INFINITY {
            BoundSetting::Clear
        } else {
            BoundSetting::Set((n as u64).max(1))
        }
    }

    fn apply(self, current: Option<u64>) -> Option<u64> {
        match self {
            BoundSetting::Keep => current,
            BoundSetting::Clear => None,
            BoundSetting::Set(n) => Some(n),
        }
    }
}

/// Entries in the main database and their bytes: stored key plus record, as LMDB holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub entries: u64,
    pub bytes: u64,
}

impl Totals {
    pub(crate) fn encode(&self, as_of_txn: u64) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..8].copy_from_slice(&self.entries.to_le_bytes());
        out[8..16].copy_from_slice(&self.bytes.to_le_bytes());
        out[16..].copy_from_slice(&as_of_txn.to_le_bytes());
        out
    }

    /// The totals and the id of the transaction that wrote them.
    pub fn decode(bytes: &[u8]) -> Option<(Totals, u64)> {
        let n = |at: usize| {
            bytes
                .get(at..at + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        };
        Some((
            Totals {
                entries: n(0)?,
                bytes: n(8)?,
            },
            n(16)?,
        ))
    }
}

/// Hits, misses and evictions, of one process or (summed in `meta`) of the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

impl Counters {
    fn encode(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..8].copy_from_slice(&self.hits.to_le_bytes());
        out[8..16].copy_from_slice(&self.misses.to_le_bytes());
        out[16..].copy_from_slice(&self.evictions.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Counters> {
        let n = |at: usize| Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
        Some(Counters {
            hits: n(0)?,
            misses: n(8)?,
            evictions: n(16)?,
        })
    }
}

/// The directory's counters as of `txn` (none: never bounded).
pub fn read_counters(store: &Store, txn: &RoTxn<'_, WithoutTls>) -> heed::Result<Option<Counters>> {
    Ok(store
        .meta
        .get(txn, COUNTERS_KEY)?
        .and_then(Counters::decode))
}

/// The stored bounds as of `txn`.
pub fn read_bounds(store: &Store, txn: &RoTxn<'_, WithoutTls>) -> heed::Result<Bounds> {
    Ok(store
        .meta
        .get(txn, BOUNDS_KEY)?
        .map(Bounds::decode)
        .unwrap_or_default())
}

/// The stored totals if they describe the snapshot `txn` reads: written by the transaction
/// that made it (`snapshot_id`). A write of another build (which keeps no totals) or of a
/// path that bypasses the writer leaves them stale: they are then counted again.
pub fn read_totals(
    store: &Store,
    txn: &RoTxn<'_, WithoutTls>,
    snapshot_id: u64,
) -> heed::Result<Option<Totals>> {
    Ok(store
        .meta
        .get(txn, TOTALS_KEY)?
        .and_then(Totals::decode)
        .filter(|(_, as_of)| *as_of == snapshot_id)
        .map(|(t, _)| t))
}

/// Counts every entry of the main database (the named databases' records left out).
pub fn count_totals(store: &Store, txn: &RoTxn<'_, WithoutTls>) -> heed::Result<Totals> {
    let mut t = Totals::default();
    for item in store.entries.iter(txn)? {
        let (key, value) = item?;
        if keys::classify(key).is_some() {
            t.entries += 1;
            t.bytes += (key.len() + value.len()) as u64;
        }
    }
    Ok(t)
}

/// Per-process figures and hints shared by readers and the writer of one store.
pub struct EvictionState {
    /// The directory has a bound (as last seen): reads then check recency.
    pub bounded: AtomicBool,
    /// A read queues a touch when the entry's stamp is at least this old (clock units).
    pub touch_after: AtomicU32,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Entries this process's writer evicted (expired ones removed for a bound not counted).
    pub evictions: AtomicU64,
}

impl Default for EvictionState {
    fn default() -> Self {
        EvictionState {
            bounded: AtomicBool::new(false),
            touch_after: AtomicU32::new(DEFAULT_TOUCH_AFTER),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }
}

impl EvictionState {
    /// This process's counts so far.
    pub fn counters(&self) -> Counters {
        Counters {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }

    /// Whether a read that found a record stamped `stamp` should queue a touch.
    pub fn wants_touch(&self, now_ms: u64, stamp: Option<u32>) -> bool {
        age(access_clock(now_ms), stamp) >= self.touch_after.load(Ordering::Relaxed)
    }

    /// Whether a touch offered at `at` (access clock) is a touch interval old at `now`.
    pub fn wants_touch_since(&self, now: u32, at: u32) -> bool {
        age(now, Some(at)) >= self.touch_after.load(Ordering::Relaxed)
    }
}

/// The touch threshold for entries being evicted at `evict_age`.
pub fn touch_threshold(evict_age: u32) -> u32 {
    (evict_age / TOUCH_DIVISOR).clamp(MIN_TOUCH_AFTER, MAX_TOUCH_AFTER)
}

/// A range of stored keys, as heed takes it.
type KeyRange<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    stored: Vec<u8>,
    stamp: Option<u32>,
}

/// The oldest entries seen by recent samples, youngest first.
#[derive(Debug, Default)]
pub struct Pool {
    items: Vec<Candidate>,
}

impl Pool {
    /// Offers a sampled entry. The pool is kept youngest first: the order of two stamps does
    /// not change as time passes, so it stays sorted. A full pool takes only what is older
    /// than its youngest, which, once it holds old entries, is most samples turned away at
    /// the cost of one comparison. (An entry already in the pool keeps its place: if it was
    /// touched since, the check before eviction ranks it again.)
    fn offer(&mut self, stored: &[u8], stamp: Option<u32>, now: u32) {
        let this = age(now, stamp);
        if self.items.len() >= POOL_SIZE && this <= age(now, self.items[0].stamp) {
            return;
        }
        if let Some(i) = self.items.iter().position(|c| c.stored == stored) {
            self.items.remove(i);
        }
        if self.items.len() >= POOL_SIZE {
            self.items.remove(0);
        }
        let at = self.items.partition_point(|c| age(now, c.stamp) <= this);
        self.items.insert(
            at,
            Candidate {
                stored: stored.to_vec(),
                stamp,
            },
        );
    }

    fn pop_oldest(&mut self) -> Option<Candidate> {
        self.items.pop()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }
}

/// The writer thread's side of bounding: what one transaction adds and removes, and the
/// eviction pool and clock carried from one transaction to the next.
#[derive(Default)]
pub struct Evictor {
    bounds: Bounds,
    /// `None`: this directory keeps no totals (never bounded), or they must be counted first.
    totals: Cell<Option<Totals>>,
    pool: Pool,
    hand: Vec<u8>,
    evict_age: u32,
    clock_dirty: bool,
    now_ms: u64,
    evicted_in_txn: u64,
    /// This process's hits and misses already added to the directory's counters, and those
    /// the current transaction adds (published once it commits).
    published: Counters,
    publishing: Counters,
}

impl Evictor {
    /// Starts a write transaction: loads the bounds, the totals (if fresh) and the clock.
    pub fn begin(&mut self, store: &Store, txn: &RwTxn<'_>) -> heed::Result<()> {
        self.now_ms = now_ms();
        self.evicted_in_txn = 0;
        self.clock_dirty = false;
        self.bounds = read_bounds(store, txn)?;
        store
            .eviction
            .bounded
            .store(self.bounds.is_bounded(), Ordering::Relaxed);
        let snapshot = (txn.id() as u64).saturating_sub(1);
        self.totals.set(read_totals(store, txn, snapshot)?);
        if self.bounds.is_bounded() {
            if let Some(clock) = store.meta.get(txn, CLOCK_KEY)? {
                if let Some((age, hand)) = clock.split_first_chunk::<4>() {
                    self.evict_age = u32::from_le_bytes(*age);
                    self.hand = hand.to_vec();
                    store
                        .eviction
                        .touch_after
                        .store(touch_threshold(self.evict_age), Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    /// The access stamp a put writes now: only into a bounded directory (unbounded ones keep
    /// the records they always had).
    pub fn stamp(&self) -> Option<u32> {
        self.bounds.is_bounded().then(|| access_clock(self.now_ms))
    }

    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// A record of `record_len` bytes under a stored key of `key_len` bytes was written in
    /// place of one of `old_len` bytes (`None`: new entry).
    pub fn wrote(&self, key_len: usize, old_len: Option<usize>, record_len: usize) {
        if let Some(mut t) = self.totals.get() {
            match old_len {
                Some(old) => t.bytes = t.bytes - old as u64 + record_len as u64,
                None => {
                    t.entries += 1;
                    t.bytes += (key_len + record_len) as u64;
                }
            }
            self.totals.set(Some(t));
        }
    }

    /// An entry (stored key of `key_len` bytes, record of `record_len`) was deleted.
    pub fn removed(&self, key_len: usize, record_len: usize) {
        if let Some(mut t) = self.totals.get() {
            t.entries = t.entries.saturating_sub(1);
            t.bytes = t.bytes.saturating_sub((key_len + record_len) as u64);
            self.totals.set(Some(t));
        }
    }

    /// Applies an open's bound settings (stored for every process of the directory).
    pub fn set_bounds(
        &mut self,
        store: &Store,
        txn: &mut RwTxn<'_>,
        max_entries: BoundSetting,
        max_bytes: BoundSetting,
    ) -> heed::Result<()> {
        self.bounds = Bounds {
            max_entries: max_entries.apply(self.bounds.max_entries),
            max_bytes: max_bytes.apply(self.bounds.max_bytes),
        };
        if self.bounds.is_bounded() {
            store.meta.put(txn, BOUNDS_KEY, &self.bounds.encode())?;
        } else {
            store.meta.delete(txn, BOUNDS_KEY)?;
        }
        store
            .eviction
            .bounded
            .store(self.bounds.is_bounded(), Ordering::Relaxed);
        Ok(())
    }

    /// Counts the totals where a bounded directory has none up to date (a directory written
    /// by an older build, or just bounded): once, then they are kept.
    pub fn ensure_totals(&mut self, store: &Store, txn: &RwTxn<'_>) -> heed::Result<()> {
        if self.bounds.is_bounded() && self.totals.get().is_none() {
            self.totals.set(Some(count_totals(store, txn)?));
        }
        Ok(())
    }

    /// Whether the totals are past a bound.
    pub fn over(&self) -> bool {
        self.totals
            .get()
            .is_some_and(|t| self.bounds.exceeded_by(&t))
    }

    /// Re-stamps the entries of `full_keys` (touches queued by reads) with the current access
    /// time. Entries gone, replaced by a younger stamp or undecodable are left as they are.
    pub fn apply_touches(
        &self,
        store: &Store,
        txn: &mut RwTxn<'_>,
        full_keys: &[Vec<u8>],
        out: &mut Vec<u8>,
    ) -> heed::Result<()> {
        let Some(now) = self.stamp() else {
            return Ok(());
        };
        for full_key in full_keys {
            let stored = StoredKey::encode(full_key);
            let Some(bytes) = store.entries.get(txn, stored.as_bytes())? else {
                continue;
            };
            let fresh = match Record::decode_unverified(bytes) {
                Ok(r) if stored.is_long() && r.full_key != Some(full_key.as_slice()) => true,
                Ok(r) => age(now, r.access) == 0,
                Err(_) => true,
            };
            if fresh || record::restamp(stored.as_bytes(), bytes, now, out).is_err() {
                continue;
            }
            let old_len = bytes.len();
            store.entries.put(txn, stored.as_bytes(), out)?;
            self.wrote(stored.as_bytes().len(), Some(old_len), out.len());
        }
        Ok(())
    }

    /// Evicts sampled entries, oldest access first, while the totals are past a bound, up
    /// to [`MAX_EVICTED_PER_TXN`] entries and [`MAX_SAMPLED_PER_TXN`] samples. (Expired
    /// entries go first: the writer sweeps them before calling this.)
    pub fn evict_sampled(&mut self, store: &Store, txn: &mut RwTxn<'_>) -> heed::Result<()> {
        let now = access_clock(self.now_ms);
        let mut sampled = 0;
        while self.over()
            && self.evicted_in_txn < MAX_EVICTED_PER_TXN
            && sampled < MAX_SAMPLED_PER_TXN
        {
            sampled += self.sample(store, txn, now)?;
            // A pool that is not full (the first evictions of this process, or after a lap
            // found few entries) is topped up first: evicting the oldest of a single sample
            // would evict whatever lies next to the hand, however recently used.
            // (At most a pool's worth: a directory smaller than the pool never fills it.)
            for _ in 1..POOL_SIZE / SAMPLE {
                if self.pool.len() >= POOL_SIZE {
                    break;
                }
                sampled += self.sample(store, txn, now)?;
            }
            let Some(candidate) = self.pool.pop_oldest() else {
                break;
            };
            let Some(bytes) = store.entries.get(txn, &candidate.stored)? else {
                continue;
            };
            // Undecodable records go too: deleting is how such a key is repaired.
            let record = Record::decode_unverified(bytes).ok();
            let stamp = record.and_then(|r| r.access);
            if record.is_some() && stamp != candidate.stamp {
                // Touched (or replaced) since it was sampled: rank it again.
                self.pool.offer(&candidate.stored, stamp, now);
                continue;
            }
            let (len, expiry) = (bytes.len(), record.and_then(|r| r.expiry));
            if let Some(x) = expiry {
                let mut row = x.to_be_bytes().to_vec();
                row.extend_from_slice(&candidate.stored);
                store.expiries.delete(txn, &row)?;
            }
            store.entries.delete(txn, &candidate.stored)?;
            self.removed(candidate.stored.len(), len);
            self.evicted_in_txn += 1;
            if stamp.is_some() {
                self.evict_age = age(now, stamp);
                self.clock_dirty = true;
            }
        }
        Ok(())
    }

    /// Reads up to [`SAMPLE`] entries after the hand (wrapping around once) into the pool;
    /// returns how many.
    fn sample(&mut self, store: &Store, txn: &RwTxn<'_>, now: u32) -> heed::Result<usize> {
        let mut seen = 0;
        let mut last: Option<Vec<u8>> = None;
        // LMDB refuses an empty key as a bound: an empty hand is the start of the key space.
        let passes: &[KeyRange<'_>] = if self.hand.is_empty() {
            &[(Bound::Unbounded, Bound::Unbounded)]
        } else {
            &[
                (Bound::Excluded(self.hand.as_slice()), Bound::Unbounded),
                (Bound::Unbounded, Bound::Included(self.hand.as_slice())),
            ]
        };
        for range in passes {
            for item in store.entries.range(txn, range)? {
                let (key, value) = item?;
                if keys::classify(key).is_none() {
                    continue;
                }
                let stamp = Record::decode_unverified(value).ok().and_then(|r| r.access);
                self.pool.offer(key, stamp, now);
                last = Some(key.to_vec());
                seen += 1;
                if seen == SAMPLE {
                    break;
                }
            }
            if seen == SAMPLE {
                break;
            }
        }
        if let Some(hand) = last {
            self.hand = hand;
            self.clock_dirty = true;
        }
        Ok(seen)
    }

    /// Stores the totals, the directory's counters (and the clock, if it moved) in `txn`.
    pub fn save(&mut self, store: &Store, txn: &mut RwTxn<'_>) -> heed::Result<()> {
        if let Some(t) = self.totals.get() {
            let id = txn.id() as u64;
            store.meta.put(txn, TOTALS_KEY, &t.encode(id))?;
            let mut sum = read_counters(store, txn)?.unwrap_or_default();
            let now = store.eviction.counters();
            self.publishing = Counters {
                hits: now.hits,
                misses: now.misses,
                evictions: 0,
            };
            sum.hits += now.hits.saturating_sub(self.published.hits);
            sum.misses += now.misses.saturating_sub(self.published.misses);
            sum.evictions += self.evicted_in_txn;
            store.meta.put(txn, COUNTERS_KEY, &sum.encode())?;
        }
        if self.clock_dirty {
            let mut clock = self.evict_age.to_le_bytes().to_vec();
            clock.extend_from_slice(&self.hand);
            store.meta.put(txn, CLOCK_KEY, &clock)?;
        }
        Ok(())
    }

    /// After the transaction committed: counts its evictions and adopts its eviction age.
    pub fn committed(&mut self, store: &Store) {
        if self.totals.get().is_some() {
            self.published = self.publishing;
        }
        if self.evicted_in_txn > 0 {
            store
                .eviction
                .evictions
                .fetch_add(self.evicted_in_txn, Ordering::Relaxed);
            store
                .eviction
                .touch_after
                .store(touch_threshold(self.evict_age), Ordering::Relaxed);
        }
    }

    /// Entries evicted by the last transaction begun.
    pub fn evicted_in_txn(&self) -> u64 {
        self.evicted_in_txn
    }

    #[cfg(test)]
    pub fn totals(&self) -> Option<Totals> {
        self.totals.get()
    }
}

#[cfg(test)]
mod tests;
