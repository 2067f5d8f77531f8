//! One LMDB environment (one cache directory) in this process.
//!
//! Invariants:
//! * At most one `Store` per canonical path per process (enforced by `registry`), because
//!   LMDB forbids two environment handles on one file in one process.
//! * Every transaction of this process runs while holding `map_lock` shared; the map is only
//!   resized while holding it exclusively, because LMDB requires that no transaction of the
//!   process is active during `mdb_env_set_mapsize`.
//! * Only the store's writer thread begins write transactions and changes the sync flags.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use heed::types::Bytes;
use heed::{
    CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, FlagSetMode, MdbError, RoTxn,
    WithoutTls,
};
use parking_lot::RwLock;

use crate::error::{CacheError, CacheResult};
use crate::keys::{self, KeyRange, StoredKey, StoredKind};
use crate::record::{Payload, Record};

/// Version of the on-disk layout (databases, key forms, record header). Bumped on any
/// incompatible change; a reader refuses formats newer than its own.
/// 2: records carry a checksum and MessagePack values (see `record`); a format-1 directory
/// is marked format 2 when this version opens it (its records are read as they are).
pub const FORMAT_VERSION: u32 = 2;

const EXPIRIES_DB: &str = "expiries";
const META_DB: &str = "meta";
const FORMAT_KEY: &[u8] = b"format";
/// Map sizes are kept multiples of this, which is a multiple of every OS page size in use.
const MAP_GRANULE: u64 = 1 << 20;

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Map size to open with (LMDB adopts a larger one recorded in the file).
    pub initial_map_size: u64,
    /// Puts that would need a larger map fail with `ERR_CACHE_FULL`.
    pub max_map_size: u64,
    pub max_readers: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            initial_map_size: 64 << 20,
            max_map_size: 256 << 30,
            max_readers: 1022,
        }
    }
}

pub type Entries = Database<'static, Bytes, Bytes>;

pub struct Store {
    env: Env<WithoutTls>,
    /// stored key -> record
    pub(crate) entries: Entries,
    /// expiry (u64 big-endian) ++ stored key -> empty: every entry with an expiry, in expiry
    /// order, so a sweep visits only what has expired.
    pub(crate) expiries: Entries,
    /// The format record, and the shapes (see `shapes`).
    pub(crate) meta: Entries,
    map_lock: RwLock<()>,
    max_map_size: AtomicU64,
    /// LMDB's page size for this file.
    page_size: u64,
    path: PathBuf,
}

/// Whether an entries page ended the scan.
#[derive(Debug, PartialEq, Eq)]
pub enum PageEnd {
    /// The scan is complete.
    Done,
    /// More may follow after this stored key.
    After(Vec<u8>),
}

/// An expired entry met by a read, to be deleted lazily.
pub struct ExpiredEntry {
    pub full_key: Vec<u8>,
}

impl Store {
    /// Opens (creating if needed) the environment in the existing directory `path`.
    pub fn open(path: &Path, opts: &StoreOptions) -> CacheResult<Store> {
        let mut builder = EnvOpenOptions::new().read_txn_without_tls();
        builder
            .map_size(round_map_size(opts.initial_map_size.min(opts.max_map_size)) as usize)
            .max_readers(opts.max_readers)
            .max_dbs(8);
        // Before LMDB maps the file: a damaged one must be refused, not fault in the map.
        crate::meta_check::check_data_file(path)?;
        let lock_file = path.join("lock.mdb");
        let lock_existed = lock_file.exists();
        if !lock_existed {
            ensure_room_for_lock_file(path, opts.max_readers)?;
        }
        let env = open_env_retrying(&builder, path)?;
        // A process killed while reading leaves its reader slot behind; free those first.
        env.clear_stale_readers()
            .map_err(|e| CacheError::from_heed(e, path))?;
        let (entries, expiries, meta) = match open_databases(&env, path) {
            Ok(dbs) => dbs,
            Err(e) => {
                // Refusing a directory leaves it as it was: the lock file LMDB just created
                // for it goes too (one that existed before may be in use by its owner).
                env.prepare_for_closing().wait();
                if !lock_existed {
                    let _ = std::fs::remove_file(&lock_file);
                }
                return Err(e);
            }
        };
        let page_size = env.unnamed_database_stat().page_size as u64;
        Ok(Store {
            env,
            entries,
            expiries,
            meta,
            map_lock: RwLock::new(()),
            max_map_size: AtomicU64::new(round_map_size(opts.max_map_size)),
            page_size,
            path: path.to_path_buf(),
        })
    }

    /// The stored shapes from id `from` on, in id order, as far as they are dense: the
    /// raw stored bytes, for [`crate::shapes::ShapeTable::load`] or
    /// [`crate::shapes::decode_stored`].
    pub(crate) fn stored_shapes_from(
        &self,
        txn: &heed::RoTxn<'_, WithoutTls>,
        from: u32,
    ) -> CacheResult<Vec<(u32, Vec<u8>)>> {
        let start = crate::shapes::stored_key(from);
        let end = crate::shapes::stored_key(u32::MAX);
        let bounds = (Bound::Included(&start[..]), Bound::Included(&end[..]));
        let mut found = Vec::new();
        let heed_err = |e| self.heed_error(e);
        for item in self.meta.range(txn, &bounds).map_err(heed_err)? {
            let (key, value) = item.map_err(heed_err)?;
            match crate::shapes::id_of_key(key) {
                Some(id) => found.push((id, value.to_vec())),
                None => break,
            }
        }
        Ok(found)
    }

    /// The key lists of the stored shapes from id `from` on (readers load them to decode
    /// record references). A damaged shape is an error naming it.
    pub fn shapes_from(&self, from: u32) -> CacheResult<Vec<Vec<String>>> {
        self.read(|txn| {
            let mut keys = Vec::new();
            for (id, bytes) in self.stored_shapes_from(txn, from)? {
                if id != from + keys.len() as u32 {
                    break;
                }
                let shape = crate::shapes::decode_stored(id, &bytes).map_err(|e| CacheError::CorruptRecord {
                    detail: e.to_string(),
                })?;
                keys.push(shape);
            }
            Ok(keys)
        })
    }

    pub fn heed_error(&self, e: heed::Error) -> CacheError {
        CacheError::from_heed(e, &self.path)
    }

    pub fn max_map_size(&self) -> u64 {
        self.max_map_size.load(Ordering::Relaxed)
    }

    /// A second opener may ask for a larger maximum; the largest wins.
    pub fn raise_max_map_size(&self, max: u64) {
        self.max_map_size
            .fetch_max(round_map_size(max), Ordering::Relaxed);
    }

    /// Runs `f` in a fresh read-only transaction, adopting a map grown by another process and
    /// reclaiming reader slots of dead processes when LMDB asks for it.
    pub fn read<R>(
        &self,
        f: impl FnOnce(&RoTxn<'_, WithoutTls>) -> CacheResult<R>,
    ) -> CacheResult<R> {
        let mut cleared_readers = false;
        loop {
            let guard = self.map_lock.read();
            match self.env.read_txn() {
                Ok(txn) => {
                    let result = f(&txn);
                    drop(txn);
                    drop(guard);
                    return result;
                }
                Err(heed::Error::Mdb(MdbError::MapResized)) => {
                    drop(guard);
                    self.adopt_map_size()?;
                }
                Err(heed::Error::Mdb(MdbError::ReadersFull)) if !cleared_readers => {
                    drop(guard);
                    cleared_readers = true;
                    self.env
                        .clear_stale_readers()
                        .map_err(|e| self.heed_error(e))?;
                }
                Err(e) => return Err(self.heed_error(e)),
            }
        }
    }

    /// Looks a full key up and hands its live-or-expired record to `visit` (or `None`).
    /// `visit` runs inside the transaction: the record borrows the map.
    pub fn lookup<R>(
        &self,
        full_key: &[u8],
        visit: impl FnOnce(Option<Record<'_>>) -> R,
    ) -> CacheResult<R> {
        let stored = StoredKey::encode(full_key);
        self.read(|txn| {
            let raw = self
                .entries
                .get(txn, stored.as_bytes())
                .map_err(|e| self.heed_error(e))?;
            let record = match raw {
                None => None,
                Some(bytes) => {
                    let record = Record::decode(stored.as_bytes(), bytes)
                        .map_err(|e| naming_key(e, full_key))?;
                    // A long key's slot may hold a different key with the same hash.
                    if stored.is_long() && record.full_key != Some(full_key) {
                        None
                    } else {
                        Some(record)
                    }
                }
            };
            Ok(visit(record))
        })
    }

    /// Appends to `out` the live entries of `range`, in full-key byte order (descending when
    /// `reverse`; a group of long keys, stored in hash order, is read whole and sorted),
    /// continuing after the cursor `after` (a stored key, or [`LONG_CURSOR_TAG`] and the full
    /// key of a long one; `None` for the start of the range),
    /// until `max_entries` or about `max_bytes` were written. Expired entries are skipped and
    /// reported in `expired`; entries holding `undefined` are skipped (they are absent for
    /// get/has too).
    ///
    /// The page is one MessagePack array of `[key, value]` pairs: the key is the full key
    /// without `range.prefix`, as a str; the value is the stored MessagePack as it is, or, for
    /// a value stored as JSON, its text as a str, whose pair index goes to `json_values` (JS
    /// parses those). JS decodes the whole page with one call, which costs less than decoding
    /// each key and value with separate calls. Every record is checked against its checksum
    /// first: a page never carries bytes that failed it.
    #[allow(clippy::too_many_arguments)]
    pub fn scan_page(
        &self,
        range: &KeyRange,
        reverse: bool,
        after: Option<&[u8]>,
        now: u64,
        max_entries: usize,
        max_bytes: usize,
        out: &mut Vec<u8>,
        json_values: &mut Vec<u32>,
        expired: &mut Vec<ExpiredEntry>,
    ) -> CacheResult<(usize, PageEnd)> {
        let page_start = out.len();
        // An array32 header, its length filled in below.
        out.extend_from_slice(&[0xdd, 0, 0, 0, 0]);
        let result = self.scan(
            range,
            reverse,
            after,
            PageWriter {
                out: Some(PageOut {
                    body: &mut *out,
                    json_values,
                }),
                expired,
                count: 0,
                skipped: 0,
                max_entries,
                max_bytes: max_bytes.saturating_add(page_start),
                now,
            },
        );
        if let Ok((count, _)) = &result {
            out[page_start + 1..page_start + 5].copy_from_slice(&(*count as u32).to_be_bytes());
        }
        result
    }

    /// Counts the live entries of `range` (ascending), after the stored key `after`, up to
    /// `max_entries`; expired ones are skipped and reported in `expired`, as in `scan_page`.
    /// Nothing is copied out of the map: it costs a B-tree walk and a record header per entry.
    pub fn count_page(
        &self,
        range: &KeyRange,
        after: Option<&[u8]>,
        now: u64,
        max_entries: usize,
        expired: &mut Vec<ExpiredEntry>,
    ) -> CacheResult<(usize, PageEnd)> {
        let page = PageWriter {
            out: None,
            expired,
            count: 0,
            skipped: 0,
            max_entries,
            max_bytes: usize::MAX,
            now,
        };
        self.scan(range, false, after, page)
    }

    /// Walks `range` from `after` (or its start) with `page`, which decides what to keep and
    /// where to stop.
    fn scan(
        &self,
        range: &KeyRange,
        reverse: bool,
        after: Option<&[u8]>,
        mut page: PageWriter<'_>,
    ) -> CacheResult<(usize, PageEnd)> {
        // A cursor after a long key resumes at its group's start (or end, in reverse); the
        // group is read again and the members up to the cursor skipped.
        let resume_long = after
            .filter(|a| a.first() == Some(&LONG_CURSOR_TAG))
            .map(|a| &a[1..]);
        let start = if reverse {
            range.reverse_start()
        } else {
            range.forward_start()
        };
        let bound = |k: &[u8], inclusive: bool| {
            if inclusive {
                Bound::Included(k.to_vec())
            } else {
                Bound::Excluded(k.to_vec())
            }
        };
        let from = match (resume_long, after, &start) {
            (Some(full), _, _) => Bound::Included(if reverse {
                keys::long_group_end(full)
            } else {
                keys::long_group_start(full)
            }),
            (None, Some(a), _) => bound(a, false),
            (None, None, Some((k, inclusive))) => bound(k, *inclusive),
            (None, None, None) => Bound::Unbounded,
        };
        let spec = ScanSpec {
            range,
            reverse,
            resume_long: resume_long.map(|full| (full, keys::long_group_start(full))),
        };
        self.read(|txn| {
            let heed_err = |e| self.heed_error(e);
            if reverse {
                let bounds = (Bound::Unbounded, as_slice_bound(&from));
                let iter = self.entries.rev_range(txn, &bounds).map_err(heed_err)?;
                page.fill(
                    iter.map(|i| i.map_err(heed_err)),
                    |stored, full| range.reverse_done(stored, full),
                    &spec,
                )
            } else {
                let bounds = (as_slice_bound(&from), Bound::Unbounded);
                let iter = self.entries.range(txn, &bounds).map_err(heed_err)?;
                page.fill(
                    iter.map(|i| i.map_err(heed_err)),
                    |stored, full| range.forward_done(stored, full),
                    &spec,
                )
            }
        })
    }

    /// Begins a write transaction (writer thread only), adopting a grown map if needed.
    /// The returned guard must outlive the transaction.
    ///
    /// `cap`: for transactions that may put, the maximum map size. The map may be larger than
    /// that (a delete used the reserve, or this process adopted the size another one grew to,
    /// which LMDB records in the file and never lowers); a transaction that puts would then
    /// fill that room. So the map is first shrunk back to `cap`, or to the pages in use if
    /// more: puts then only reuse pages freed inside the map, and never grow it past `cap`.
    pub(crate) fn write_txn(
        &self,
        cap: Option<u64>,
    ) -> CacheResult<(parking_lot::RwLockReadGuard<'_, ()>, heed::RwTxn<'_>)> {
        loop {
            let guard = self.map_lock.read();
            match self.env.write_txn() {
                Ok(txn) => match cap {
                    // Checked with the transaction begun: no thread of this process can
                    // remap while the guard is held, so the size seen is the size it writes in.
                    Some(cap) if self.map_exceeds(cap) => {
                        txn.abort();
                        drop(guard);
                        self.shrink_map_to(cap)?;
                    }
                    _ => return Ok((guard, txn)),
                },
                Err(heed::Error::Mdb(MdbError::MapResized)) => {
                    drop(guard);
                    self.adopt_map_size()?;
                }
                Err(e) => return Err(self.heed_error(e)),
            }
        }
    }

    /// Whether the map is larger than both `cap` and the pages in use. The caller holds
    /// `map_lock` (shared at least), as reading LMDB's meta pages requires.
    fn map_exceeds(&self, cap: u64) -> bool {
        let info = self.env.info();
        let used = (info.last_page_number as u64 + 1).saturating_mul(self.page_size);
        info.map_size as u64 > cap.max(used)
    }

    /// Shrinks the map to `cap`, or to the pages in use if more (LMDB rounds a smaller size up
    /// to those itself).
    fn shrink_map_to(&self, cap: u64) -> CacheResult<()> {
        let _exclusive = self.map_lock.write();
        if !self.map_exceeds(cap) {
            return Ok(());
        }
        let info = self.env.info();
        let used = (info.last_page_number as u64 + 1).saturating_mul(self.page_size);
        let size = cap.max(used);
        // SAFETY: as in `adopt_map_size`, holding `map_lock` exclusively means no transaction
        // of this process is active; the size is at least the pages in use.
        unsafe { self.env.resize(size as usize) }.map_err(|e| self.heed_error(e))
    }

    /// Takes the size another process grew the map to.
    fn adopt_map_size(&self) -> CacheResult<()> {
        let _exclusive = self.map_lock.write();
        // SAFETY: holding `map_lock` exclusively means no transaction of this process is
        // active, which is what mdb_env_set_mapsize requires.
        unsafe { self.env.resize(0) }.map_err(|e| self.heed_error(e))
    }

    /// Doubles the map (at least +64 MiB) up to `limit`. Returns false when already there.
    /// Puts pass the maximum size; requests that only delete pass [`delete_reserve_limit`].
    pub(crate) fn grow_map(&self, limit: u64) -> CacheResult<bool> {
        let _exclusive = self.map_lock.write();
        let current = self.env.info().map_size as u64;
        let limit = round_map_size(limit);
        if current >= limit {
            return Ok(false);
        }
        let wanted = current
            .saturating_mul(2)
            .max(current.saturating_add(64 << 20));
        let next = round_map_size(wanted.min(limit)).max(current.saturating_add(MAP_GRANULE));
        // SAFETY: as in `adopt_map_size`, no transaction of this process is active.
        unsafe { self.env.resize(next as usize) }.map_err(|e| self.heed_error(e))?;
        Ok(true)
    }

    /// Sets how the next commits reach the disk (writer thread only).
    pub(crate) fn set_sync_flags(&self, flags: EnvFlags) -> CacheResult<()> {
        let all = EnvFlags::NO_SYNC | EnvFlags::NO_META_SYNC;
        // SAFETY: only the store's single writer thread calls this, so LMDB's "one thread at a
        // time" rule for mdb_env_set_flags holds; read transactions do not read these flags.
        unsafe {
            self.env
                .set_flags(all, FlagSetMode::Disable)
                .map_err(|e| self.heed_error(e))?;
            if !flags.is_empty() {
                self.env
                    .set_flags(flags, FlagSetMode::Enable)
                    .map_err(|e| self.heed_error(e))?;
            }
        }
        Ok(())
    }

    pub(crate) fn force_sync(&self) -> CacheResult<()> {
        self.env.force_sync().map_err(|e| self.heed_error(e))
    }

    /// Closes the environment and waits until LMDB released it, so the path can be reopened.
    pub fn close(self) {
        let Store { env, .. } = self;
        env.prepare_for_closing().wait();
    }

    /// Writes a compacted copy of the environment (free pages omitted, pages renumbered) to
    /// the new file `dest`, from one read snapshot, and fsyncs it. Writers may go on
    /// meanwhile. An existing `dest` (this cache's own `data.mdb` included) is refused, never
    /// truncated.
    pub fn copy_compacted(&self, dest: &Path) -> CacheResult<()> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => CacheError::DestinationExists {
                    path: dest.to_path_buf(),
                },
                _ => CacheError::from_io(e, dest),
            })?;
        let copied = {
            let _shared = self.map_lock.read();
            self.env
                .copy_to_file(&mut file, heed::CompactionOption::Enabled)
                .map_err(|e| CacheError::from_heed(e, dest))
        }
        .and_then(|()| file.sync_all().map_err(|e| CacheError::from_io(e, dest)));
        if copied.is_err() {
            drop(file);
            let _ = std::fs::remove_file(dest);
        }
        copied
    }

    pub fn stats(&self) -> CacheResult<StoreStats> {
        // Both read the meta pages inside the map, which another thread may be remapping:
        // hold `map_lock` shared, as transactions do (not around `read`, which takes it).
        let info = {
            let _shared = self.map_lock.read();
            self.env.info()
        };
        // The main database also holds the records of our two named databases.
        let entries = self
            .read(|txn| self.entries.len(txn).map_err(|e| self.heed_error(e)))?
            .saturating_sub(2);
        let (live, expired, held_pages) = self.read(|txn| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            // Expired entries are exactly the expiry index rows at or before now.
            let mut expired = 0u64;
            for item in self.expiries.iter(txn).map_err(|e| self.heed_error(e))? {
                let (key, _) = item.map_err(|e| self.heed_error(e))?;
                match key
                    .get(..8)
                    .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
                {
                    Some(x) if x <= now => expired += 1,
                    _ => break,
                }
            }
            // LMDB exposes no count of its free list; every page below the last used one that
            // no database holds is free (up to the free list's own few pages).
            let mut held = 2u64; // the two meta pages
            for db in [&self.entries, &self.expiries, &self.meta] {
                let s = db.stat(txn).map_err(|e| self.heed_error(e))?;
                held += (s.branch_pages + s.leaf_pages + s.overflow_pages) as u64;
            }
            Ok((entries.saturating_sub(expired), expired, held))
        })?;
        let used_pages = info.last_page_number as u64 + 1;
        let page_size = {
            let _shared = self.map_lock.read();
            self.env.unnamed_database_stat().page_size as u64
        };
        let file_size = std::fs::metadata(self.path.join("data.mdb"))
            .map(|m| m.len())
            .unwrap_or(0);
        Ok(StoreStats {
            entries,
            live_entries: live,
            expired_entries: expired,
            file_size,
            used_size: used_pages * page_size,
            free_pages: used_pages.saturating_sub(held_pages),
            page_size,
            map_size: info.map_size as u64,
            max_map_size: self.max_map_size(),
            readers_in_use: info.number_of_readers,
            last_txn_id: info.last_txn_id as u64,
            max_readers: info.maximum_number_of_readers,
        })
    }
}

#[derive(Debug, Clone)]
pub struct StoreStats {
    pub entries: u64,
    pub live_entries: u64,
    pub expired_entries: u64,
    /// Size of data.mdb on disk.
    pub file_size: u64,
    /// Bytes of the map up to its last used page (free pages inside included).
    pub used_size: u64,
    /// Pages below the last used one that hold no data: reusable by later writes, and what
    /// a compacting copy drops.
    pub free_pages: u64,
    pub page_size: u64,
    pub map_size: u64,
    pub max_map_size: u64,
    pub readers_in_use: u32,
    /// The id of the last committed transaction (by any process).
    pub last_txn_id: u64,
    pub max_readers: u32,
}

fn as_slice_bound(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(&k[..]),
        Bound::Excluded(k) => Bound::Excluded(&k[..]),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Appends `bytes` (UTF-8 written from a JS string) as a MessagePack str. Bytes that are not
/// UTF-8 become U+FFFD, as decoding them in JS would.
fn write_msgpack_str(out: &mut Vec<u8>, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_str(out, &text);
}

/// Most entries one page (or count chunk) may skip (expired, or holding `undefined`) before it
/// ends early with a cursor: a namespace of millions of expired entries is then crossed in
/// bounded steps, each holding at most this many keys for their lazy deletes, rather than in
/// one call that holds them all.
pub const MAX_SKIPPED_PER_PAGE: usize = 16_384;

/// Where a page's entries go.
struct PageOut<'o> {
    /// The MessagePack body.
    body: &'o mut Vec<u8>,
    /// Indexes of the pairs whose value is JSON text.
    json_values: &'o mut Vec<u32>,
}

/// Collects one page of a scan.
struct PageWriter<'o> {
    /// Where the entries go; `None` when only counting.
    out: Option<PageOut<'o>>,
    expired: &'o mut Vec<ExpiredEntry>,
    count: usize,
    /// Entries skipped so far; the page ends at [`MAX_SKIPPED_PER_PAGE`].
    skipped: usize,
    max_entries: usize,
    max_bytes: usize,
    now: u64,
}

impl PageWriter<'_> {
    /// Decodes a record; checks its checksum only when it goes into a page (counting reads
    /// only the header).
    fn decode<'t>(&self, stored: &[u8], bytes: &'t [u8]) -> CacheResult<Record<'t>> {
        if self.out.is_some() {
            Record::decode(stored, bytes)
        } else {
            Record::decode_unverified(bytes)
        }
    }

    /// Counts a skipped entry; true when the page must end after it.
    fn skip(&mut self) -> bool {
        self.skipped += 1;
        self.skipped >= MAX_SKIPPED_PER_PAGE
    }

    fn fill<'t>(
        &mut self,
        iter: impl Iterator<Item = CacheResult<(&'t [u8], &'t [u8])>>,
        done: impl Fn(&[u8], &[u8]) -> bool,
        scan: &ScanSpec<'_>,
    ) -> CacheResult<(usize, PageEnd)> {
        let mut iter = iter.peekable();
        while let Some(item) = iter.next() {
            let (stored, bytes) = item?;
            // Classify before decoding: the main database also holds the records of the
            // named databases, which are not entries.
            let Some(kind) = keys::classify(stored) else {
                continue;
            };
            if let StoredKind::Direct(full_key) = kind {
                // Outside the range: leave it before decoding (the record may be damaged,
                // and it is not this scan's to report).
                if done(stored, full_key) {
                    return Ok((self.count, PageEnd::Done));
                }
                if !scan.range.contains(full_key) {
                    continue;
                }
                let record = self
                    .decode(stored, bytes)
                    .map_err(|e| naming_key(e, full_key))?;
                if let Some(end) =
                    self.visit(stored, full_key, &record, &done, scan.range, false)?
                {
                    return Ok(end);
                }
                continue;
            }
            // A group of long keys sharing their first 480 bytes is stored in hash order:
            // read it whole and visit it in full-key order, so that entries() keeps exact byte
            // order and a `gt: lastKey` cursor skips nothing.
            // Members are checked against their checksum only when they go into the page:
            // a group can be far larger than the part of it in the range.
            let mut members = vec![long_member(stored, bytes)?];
            while let Some(Ok((next, _))) = iter.peek() {
                if !keys::same_long_group(stored, next) {
                    break;
                }
                if let Some(Ok((next, next_bytes))) = iter.next() {
                    members.push(long_member(next, next_bytes)?);
                }
            }
            // Resuming inside this group: members up to the cursor were visited already.
            if let Some((resume, group_start)) = &scan.resume_long {
                if stored.starts_with(group_start) {
                    members.retain(|m| {
                        if scan.reverse {
                            m.1 < *resume
                        } else {
                            m.1 > *resume
                        }
                    });
                }
            }
            let order = |a: &LongMember<'t>, b: &LongMember<'t>| {
                if scan.reverse {
                    b.1.cmp(a.1)
                } else {
                    a.1.cmp(b.1)
                }
            };
            // Only the first members in order are needed for this page: select them (linear)
            // rather than sort the whole group, which a long group would pay on every page;
            // more are selected if skipped (expired) ones leave the page short.
            let mut rest = &mut members[..];
            let mut wanted = self
                .max_entries
                .saturating_sub(self.count)
                .saturating_mul(2)
                + 16;
            while !rest.is_empty() {
                let k = wanted.min(rest.len());
                if k < rest.len() {
                    rest.select_nth_unstable_by(k - 1, order);
                }
                let (first, tail) = rest.split_at_mut(k);
                first.sort_unstable_by(order);
                for (member, full_key, record, bytes) in first.iter() {
                    if self.out.is_some()
                        && scan.range.contains(full_key)
                        && !done(member, full_key)
                    {
                        Record::verify(member, bytes).map_err(|e| naming_key(e, full_key))?;
                    }
                    if let Some(end) =
                        self.visit(member, full_key, record, &done, scan.range, true)?
                    {
                        return Ok(end);
                    }
                }
                rest = tail;
                wanted = wanted.saturating_mul(2);
            }
        }
        Ok((self.count, PageEnd::Done))
    }

    /// Takes one entry into the page; `Some` when the page ends with it. `long`: the entry
    /// belongs to a long-key group, so the cursor after it names its full key.
    // Inlined: it runs once per entry of every scan.
    #[inline(always)]
    fn visit(
        &mut self,
        stored: &[u8],
        full_key: &[u8],
        record: &Record<'_>,
        done: &impl Fn(&[u8], &[u8]) -> bool,
        range: &KeyRange,
        long: bool,
    ) -> CacheResult<Option<(usize, PageEnd)>> {
        let cursor = || {
            if long {
                let mut c = Vec::with_capacity(1 + full_key.len());
                c.push(LONG_CURSOR_TAG);
                c.extend_from_slice(full_key);
                PageEnd::After(c)
            } else {
                PageEnd::After(stored.to_vec())
            }
        };
        if done(stored, full_key) {
            return Ok(Some((self.count, PageEnd::Done)));
        }
        if !range.contains(full_key) {
            return Ok(None);
        }
        if record.is_expired(self.now) {
            self.expired.push(ExpiredEntry {
                full_key: full_key.to_vec(),
            });
            return Ok(self.skip().then(|| (self.count, cursor())));
        }
        // A stored undefined is absent for get/has, so entries() skips it too, as
        // level-cache does.
        if record.payload == Payload::Undefined {
            return Ok(self.skip().then(|| (self.count, cursor())));
        }
        let mut written = 0;
        if let Some(PageOut { body, json_values }) = self.out.as_mut() {
            body.push(0x92); // a pair
            write_msgpack_str(body, &full_key[range.prefix.len()..]);
            match record.payload {
                Payload::MsgPack(value) => body.extend_from_slice(value),
                Payload::Json(text) => {
                    json_values.push(self.count as u32);
                    write_msgpack_str(body, text);
                }
                Payload::Undefined => unreachable!("skipped above"),
            }
            written = body.len();
        }
        self.count += 1;
        // Members of a long-key group get a larger byte budget: each page inside a group
        // walks the whole group again, so fewer, larger pages cost less.
        let max_bytes = if long {
            self.max_bytes.saturating_add(GROUP_PAGE_EXTRA_BYTES)
        } else {
            self.max_bytes
        };
        if self.count >= self.max_entries || written >= max_bytes {
            return Ok(Some((self.count, cursor())));
        }
        Ok(None)
    }
}

/// Names the key of an undecodable record in the error, so that the caller can repair it
/// (a `set` or `del` of that key replaces or removes the record).
fn naming_key(err: CacheError, full_key: &[u8]) -> CacheError {
    match err {
        CacheError::CorruptRecord { detail } => CacheError::CorruptRecord {
            detail: format!(
                "{detail}, under the key {:?} (set or delete it to repair)",
                String::from_utf8_lossy(full_key)
            ),
        },
        other => other,
    }
}

/// A long-key entry: its stored key, full key (from the record), record and record bytes.
type LongMember<'t> = (&'t [u8], &'t [u8], Record<'t>, &'t [u8]);

/// Decodes a long-key entry's record; its checksum is checked when it is visited.
fn long_member<'t>(stored: &'t [u8], bytes: &'t [u8]) -> CacheResult<LongMember<'t>> {
    let record = Record::decode_unverified(bytes)
        .map_err(|e| naming_key(e, &stored[..keys::DIRECT_KEY_MAX]))?;
    let full_key = record.full_key.ok_or_else(|| CacheError::CorruptRecord {
        detail: "long key record without its key".into(),
    })?;
    Ok((stored, full_key, record, bytes))
}

/// Extra page bytes allowed while inside a long-key group (see `PageWriter::visit`).
const GROUP_PAGE_EXTRA_BYTES: usize = 1 << 20;

/// First byte of a cursor that continues after a long key, followed by that full key. Every
/// other cursor is a stored key, which starts with a UTF-8 byte (never 0xFF).
const LONG_CURSOR_TAG: u8 = 0xFF;

/// What a scan walks: the range, its direction, and the full key of a long-key cursor it
/// resumes after, if any, with the start of that key's group.
struct ScanSpec<'a> {
    range: &'a KeyRange,
    reverse: bool,
    resume_long: Option<(&'a [u8], Vec<u8>)>,
}

/// The most the map may grow to for requests that only delete: `max` plus a reserve of
/// `max / 16`, at least 8 MiB. Deletes need fresh pages too (LMDB copies every page it
/// changes, and frees the old copies only when the transaction commits), so a map full of puts
/// could otherwise not be emptied. Puts never use the reserve (see [`Store::write_txn`]).
pub fn delete_reserve_limit(max: u64) -> u64 {
    round_map_size(max.saturating_add(delete_reserve(max)))
}

/// The size of the delete reserve for a maximum map size of `max`.
pub fn delete_reserve(max: u64) -> u64 {
    (max / 16).max(8 << 20)
}

/// Rounds up to whole granules, saturating: a size from JS may be anything up to u64::MAX
/// (`maxMapSize: Infinity` means no limit, which must not wrap around to a 0-byte limit).
pub fn round_map_size(n: u64) -> u64 {
    n.max(MAP_GRANULE)
        .div_ceil(MAP_GRANULE)
        .checked_mul(MAP_GRANULE)
        .unwrap_or(u64::MAX / MAP_GRANULE * MAP_GRANULE)
}

/// LMDB creates `lock.mdb` sparse (ftruncate) and initialises it through a shared memory
/// map: on a full file system that write faults with SIGBUS, which kills the process. So
/// before LMDB creates one, check that the space is there by writing (then removing) a file
/// of more than its size: 64 bytes per reader slot plus a header, rounded up generously.
/// (File systems that allocate at write time, as ext4, XFS and tmpfs do, report ENOSPC here.)
fn ensure_room_for_lock_file(dir: &Path, max_readers: u32) -> CacheResult<()> {
    let probe = dir.join(format!(".lock-space-{}.tmp", std::process::id()));
    let bytes = (max_readers as usize).saturating_mul(64) + (64 << 10);
    let written = std::fs::File::create(&probe).and_then(|mut file| {
        use std::io::Write;
        let zeros = vec![0u8; 64 << 10];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(zeros.len());
            file.write_all(&zeros[..n])?;
            left -= n;
        }
        Ok(())
    });
    let _ = std::fs::remove_file(&probe);
    written.map_err(|e| CacheError::from_io(e, dir))
}

fn open_env_retrying(
    builder: &EnvOpenOptions<WithoutTls>,
    path: &Path,
) -> CacheResult<Env<WithoutTls>> {
    // heed refuses a path whose previous environment is still closing on another thread;
    // that lasts at most until its last transaction ends.
    for _ in 0..200 {
        // SAFETY: the registry guarantees one environment per canonical path in this process;
        // the files are only changed through LMDB (its lock file coordinates processes).
        match unsafe { builder.open(path) } {
            Err(heed::Error::EnvAlreadyOpened) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            other => return other.map_err(|e| CacheError::from_heed(e, path)),
        }
    }
    Err(CacheError::Io {
        detail: format!("{} stayed open elsewhere in this process", path.display()),
    })
}

/// Opens our databases, creating them (and the format record) in a fresh environment. An
/// environment that holds anything else is refused rather than written into.
///
/// Entries live in LMDB's unnamed (main) database: a named database costs every new read
/// transaction an extra lookup of its record in the main database. The main database also
/// holds the records of the two named databases (`expiries`, `meta`); their keys can never
/// be stored keys (see `keys::classify`), so scans skip them.
fn open_databases(env: &Env<WithoutTls>, path: &Path) -> CacheResult<(Entries, Entries, Entries)> {
    let heed_err = |e: heed::Error| CacheError::from_heed(e, path);
    let rtxn = env.read_txn().map_err(heed_err)?;
    let existing = env
        .open_databases_and_commit(rtxn, |opener, rtxn| -> heed::Result<_> {
            let main = opener.open_database::<Bytes, Bytes>(rtxn, None)?;
            let expiries = opener.open_database::<Bytes, Bytes>(rtxn, Some(EXPIRIES_DB))?;
            let meta = opener.open_database::<Bytes, Bytes>(rtxn, Some(META_DB))?;
            Ok(match (main, expiries, meta) {
                (Some(a), Some(b), Some(m)) => CommitOrAbort::Commit((a, b, m)),
                _ => CommitOrAbort::Abort(()),
            })
        })
        .map_err(heed_err)?;
    if let CommitOrAbort::Commit((entries, expiries, meta)) = existing {
        let rtxn = env.read_txn().map_err(heed_err)?;
        let found = check_format(meta.get(&rtxn, FORMAT_KEY).map_err(heed_err)?, path)?;
        drop(rtxn);
        if found < FORMAT_VERSION {
            // Records of the older format stay readable as they are; new ones are written in
            // this format, so an older version must refuse the directory from now on.
            let mut wtxn = env.write_txn().map_err(heed_err)?;
            meta.put(&mut wtxn, FORMAT_KEY, &format_record())
                .map_err(heed_err)?;
            wtxn.commit().map_err(heed_err)?;
        }
        return Ok((entries, expiries, meta));
    }

    let wtxn = env.write_txn().map_err(heed_err)?;
    let created = env.create_databases_and_commit(wtxn, |opener, wtxn| -> CacheResult<_> {
        let main = opener
            .open_database::<Bytes, Bytes>(wtxn, None)
            .map_err(heed_err)?
            .ok_or_else(|| CacheError::InvalidDatabase {
                path: path.into(),
                detail: "no main database".into(),
            })?;
        // Another process may have created them since our read transaction.
        let expiries = opener
            .open_database::<Bytes, Bytes>(wtxn, Some(EXPIRIES_DB))
            .map_err(heed_err)?;
        let meta = opener
            .open_database::<Bytes, Bytes>(wtxn, Some(META_DB))
            .map_err(heed_err)?;
        if let (Some(expiries), Some(meta)) = (expiries, meta) {
            // Made by another process since our read transaction: of this format.
            check_format(meta.get(wtxn, FORMAT_KEY).map_err(heed_err)?, path)?;
            return Ok(CommitOrAbort::Commit((main, expiries, meta)));
        }
        // Anything in a main database without our format record belongs to another program.
        if let Some(item) = main.iter(wtxn).map_err(heed_err)?.next() {
            let (key, _) = item.map_err(heed_err)?;
            return Ok(CommitOrAbort::Abort(
                String::from_utf8_lossy(key).into_owned(),
            ));
        }
        let expiries = opener
            .create_database::<Bytes, Bytes>(wtxn, Some(EXPIRIES_DB))
            .map_err(heed_err)?;
        let meta = opener
            .create_database::<Bytes, Bytes>(wtxn, Some(META_DB))
            .map_err(heed_err)?;
        meta.put(wtxn, FORMAT_KEY, &format_record())
            .map_err(heed_err)?;
        Ok(CommitOrAbort::Commit((main, expiries, meta)))
    })?;
    match created {
        CommitOrAbort::Commit(databases) => Ok(databases),
        CommitOrAbort::Abort(foreign) => Err(CacheError::InvalidDatabase {
            path: path.into(),
            detail: format!("it holds data of another program (first key {foreign:?})"),
        }),
    }
}

fn format_record() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "format": FORMAT_VERSION }))
        .expect("a JSON literal serializes")
}

/// The format version of an existing directory; newer than ours is refused.
fn check_format(format: Option<&[u8]>, path: &Path) -> CacheResult<u32> {
    let invalid = |detail: &str| CacheError::InvalidDatabase {
        path: path.into(),
        detail: detail.into(),
    };
    let meta: serde_json::Value =
        serde_json::from_slice(format.ok_or_else(|| invalid("no format record"))?)
            .map_err(|_| invalid("unreadable format record"))?;
    let found = meta
        .get("format")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| invalid("format record without a version"))?;
    if found > FORMAT_VERSION as u64 {
        return Err(CacheError::UnsupportedFormat {
            found: found as u32,
            supported: FORMAT_VERSION,
        });
    }
    Ok(found as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_sizes_round_up_to_granules_and_saturate() {
        assert_eq!(round_map_size(0), MAP_GRANULE);
        assert_eq!(round_map_size(MAP_GRANULE), MAP_GRANULE);
        assert_eq!(round_map_size(MAP_GRANULE + 1), 2 * MAP_GRANULE);
        // JS passes maxMapSize: Infinity as u64::MAX: it must mean "no limit", not wrap to 0.
        let top = round_map_size(u64::MAX);
        assert_eq!(top % MAP_GRANULE, 0);
        assert!(top >= u64::MAX - MAP_GRANULE);
        assert_eq!(round_map_size(u64::MAX - MAP_GRANULE), top);
    }

    type Fill =
        for<'a, 'b, 'e> fn(&'a heed::DatabaseOpener<'e, WithoutTls>, &'b mut heed::RwTxn<'e>);

    /// Writes an LMDB environment in `dir` the way another program could (same LMDB format),
    /// through `fill`, and closes it.
    fn foreign_env(dir: &Path, fill: Fill) {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let mut builder = EnvOpenOptions::new().read_txn_without_tls();
        builder.max_dbs(4);
        // SAFETY: a fresh directory, opened once in this test.
        let env = unsafe { builder.open(dir) }.unwrap();
        let wtxn = env.write_txn().unwrap();
        env.create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
            fill(opener, wtxn);
            Ok(CommitOrAbort::<(), ()>::Commit(()))
        })
        .unwrap();
        env.prepare_for_closing().wait();
    }

    #[test]
    fn an_lmdb_environment_of_another_program_is_refused_and_left_unchanged() {
        let cases: [(&str, Fill, &str); 5] = [
            (
                "a key in the main database",
                |opener, wtxn| {
                    let main = opener.create_database::<Bytes, Bytes>(wtxn, None).unwrap();
                    main.put(wtxn, b"user:1", b"{}").unwrap();
                },
                "ERR_INVALID_DATABASE",
            ),
            (
                "a named database of its own",
                |opener, wtxn| {
                    let other = opener
                        .create_database::<Bytes, Bytes>(wtxn, Some("other"))
                        .unwrap();
                    other.put(wtxn, b"k", b"v").unwrap();
                },
                "ERR_INVALID_DATABASE",
            ),
            (
                "databases named like ours but no format record",
                |opener, wtxn| {
                    for name in [EXPIRIES_DB, META_DB] {
                        let db = opener
                            .create_database::<Bytes, Bytes>(wtxn, Some(name))
                            .unwrap();
                        db.put(wtxn, b"x", b"y").unwrap();
                    }
                },
                "ERR_INVALID_DATABASE",
            ),
            (
                "an unreadable format record",
                |opener, wtxn| {
                    opener
                        .create_database::<Bytes, Bytes>(wtxn, Some(EXPIRIES_DB))
                        .unwrap();
                    let meta = opener
                        .create_database::<Bytes, Bytes>(wtxn, Some(META_DB))
                        .unwrap();
                    meta.put(wtxn, FORMAT_KEY, b"\xff not json").unwrap();
                },
                "ERR_INVALID_DATABASE",
            ),
            (
                "a newer format",
                |opener, wtxn| {
                    opener
                        .create_database::<Bytes, Bytes>(wtxn, Some(EXPIRIES_DB))
                        .unwrap();
                    let meta = opener
                        .create_database::<Bytes, Bytes>(wtxn, Some(META_DB))
                        .unwrap();
                    meta.put(wtxn, FORMAT_KEY, br#"{"format":99}"#).unwrap();
                },
                "ERR_UNSUPPORTED_FORMAT",
            ),
        ];
        let dir = std::env::temp_dir().join(format!("lmdb-cache-foreign-{}", std::process::id()));
        for (name, fill, code) in cases {
            for with_lock_file in [true, false] {
                foreign_env(&dir, fill);
                if !with_lock_file {
                    std::fs::remove_file(dir.join("lock.mdb")).unwrap();
                }
                let before = std::fs::read(dir.join("data.mdb")).unwrap();
                let err = Store::open(&dir, &StoreOptions::default()).err();
                assert_eq!(err.as_ref().map(CacheError::code), Some(code), "{name}");
                let after = std::fs::read(dir.join("data.mdb")).unwrap();
                assert!(before == after, "{name}: data.mdb was modified");
                assert_eq!(
                    dir.join("lock.mdb").exists(),
                    with_lock_file,
                    "{name}: lock.mdb left as it was"
                );
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The micro-benchmark of the native core alone, without the JS boundary: prints the cost
    /// of a put (1,000 per transaction, no fsync) and of a lookup through `Store`, so the
    /// cost of the N-API layer is known by difference. Not a correctness test; run with
    /// `cargo test --release core_micro_benchmark -- --ignored --nocapture`.
    /// Writes `(full key, expiry, json)` records straight into the entries database.
    /// A fresh store in a temp directory of its own (removed first if left over).
    fn fresh_store(name: &str) -> (PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!("lmdb-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir, &StoreOptions::default()).unwrap();
        (dir, store)
    }

    /// A record to write directly: full key, expiry, JSON (None: a stored undefined).
    type TestRecord<'a> = (&'a [u8], Option<u64>, Option<&'a [u8]>);

    fn put_records(store: &Store, records: &[TestRecord<'_>]) {
        let (_g, mut txn) = store.write_txn(None).unwrap();
        for (full, expiry, json) in records {
            let stored = StoredKey::encode(full);
            let long = matches!(keys::classify(stored.as_bytes()), Some(StoredKind::Long));
            let mut rec = Vec::new();
            crate::record::encode_put(
                stored.as_bytes(),
                *expiry,
                long.then_some(*full),
                json.map_or(Payload::Undefined, Payload::Json),
                &mut rec,
            );
            store
                .entries
                .put(&mut txn, stored.as_bytes(), &rec)
                .unwrap();
        }
        txn.commit().unwrap();
    }

    #[test]
    fn long_keys_sharing_their_first_480_bytes_scan_in_byte_order_and_pages_resume_exactly() {
        let (dir, store) = fresh_store("group");
        let head = [b"p:".as_slice(), &[b'a'; 478]].concat();
        let long = |tail: &str| [&head[..], tail.as_bytes()].concat();
        // Suffixes chosen so that hash order and byte order differ.
        let tails = ["7", "0", "5", "2", "", "6", "1", "3", "4", "10", "00"];
        let group: Vec<Vec<u8>> = tails.iter().map(|t| long(&format!("x{t}"))).collect();
        let (gone, undefined) = (long("x8"), long("x9"));
        let mut records: Vec<TestRecord<'_>> = group
            .iter()
            .map(|k| (&k[..], None, Some(b"1".as_slice())))
            .collect();
        records.push((&gone, Some(5), Some(b"1")));
        records.push((&undefined, None, None));
        let before = head.clone(); // direct: exactly 480 bytes
        let after = [b"p:".as_slice(), &[b'a'; 477], b"b"].concat();
        records.push((&before, None, Some(b"1")));
        records.push((&after, None, Some(b"1")));
        records.push((b"p:", None, Some(b"1")));
        put_records(&store, &records);

        let logical = |full: &[u8]| String::from_utf8(full[2..].to_vec()).unwrap();
        let mut expected: Vec<Vec<u8>> = group.clone();
        expected.extend([before.clone(), after.clone(), b"p:".to_vec()]);
        expected.sort();
        let expected: Vec<String> = expected
            .iter()
            .map(|k| logical(k).trim_start_matches('a').to_string())
            .collect();
        let all = |range: &KeyRange, reverse: bool, per_page: usize| {
            let (mut keys, mut cursor): (Vec<String>, Option<Vec<u8>>) = (Vec::new(), None);
            loop {
                let (mut out, mut expired) = (Vec::new(), Vec::new());
                let (_, end) = store
                    .scan_page(
                        range,
                        reverse,
                        cursor.as_deref(),
                        10,
                        per_page,
                        1 << 20,
                        &mut out,
                        &mut Vec::new(),
                        &mut expired,
                    )
                    .unwrap();
                let page: Vec<(String, u32)> = rmp_serde::from_slice(&out).unwrap();
                keys.extend(
                    page.into_iter()
                        .map(|(k, _)| k.trim_start_matches('a').to_string()),
                );
                match end {
                    PageEnd::Done => return keys,
                    PageEnd::After(c) => cursor = Some(c),
                }
            }
        };
        let everything = KeyRange {
            prefix: b"p:".to_vec(),
            lower: None,
            upper: None,
        };
        for per_page in [1, 2, 3, 5, 100] {
            assert_eq!(
                all(&everything, false, per_page),
                expected,
                "forward, {per_page} per page"
            );
            let mut reversed = expected.clone();
            reversed.reverse();
            assert_eq!(
                all(&everything, true, per_page),
                reversed,
                "reverse, {per_page} per page"
            );
        }
        // Bounds inside the group select by byte order: what `gt: lastKey` paging relies on.
        let lower = long("x2");
        let upper = long("x6");
        let bounded = KeyRange {
            prefix: b"p:".to_vec(),
            lower: Some((lower.clone(), false)),
            upper: Some((upper.clone(), true)),
        };
        let inside: Vec<String> = expected
            .iter()
            .filter(|k| {
                let full = [b"p:".as_slice(), &[b'a'; 478], k.as_bytes()].concat();
                k.starts_with('x') && full > lower && full <= upper
            })
            .cloned()
            .collect();
        assert_eq!(inside.len(), 4, "x3, x4, x5, x6");
        for per_page in [1, 2, 100] {
            assert_eq!(all(&bounded, false, per_page), inside);
        }
        let mut expired = Vec::new();
        let (count, _) = store
            .count_page(&everything, None, 10, 1000, &mut expired)
            .unwrap();
        assert_eq!((count, expired.len()), (expected.len(), 1));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_page_skips_at_most_max_skipped_entries_and_the_next_page_resumes_after_them() {
        let (dir, store) = fresh_store("skip");
        // More expired (and undefined) entries than one page may skip, then two live ones.
        let skipped_total = MAX_SKIPPED_PER_PAGE * 2 + 10;
        let keys: Vec<Vec<u8>> = (0..skipped_total)
            .map(|i| format!("p:{i:08}").into_bytes())
            .collect();
        let mut records: Vec<TestRecord<'_>> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                if i % 5 == 0 {
                    (&k[..], None, None)
                } else {
                    (&k[..], Some(5), Some(b"0".as_slice()))
                }
            })
            .collect();
        records.push((b"p:zz1", None, Some(b"1")));
        records.push((b"p:zz2", None, Some(b"2")));
        put_records(&store, &records);
        let range = KeyRange {
            prefix: b"p:".to_vec(),
            lower: None,
            upper: None,
        };
        let (mut after, mut pages, mut live, mut expired_seen) = (None, 0, Vec::new(), 0);
        loop {
            let (mut out, mut expired) = (Vec::new(), Vec::new());
            let (count, end) = store
                .scan_page(
                    &range,
                    false,
                    after.as_deref(),
                    10,
                    100,
                    1 << 20,
                    &mut out,
                    &mut Vec::new(),
                    &mut expired,
                )
                .unwrap();
            assert!(
                expired.len() <= MAX_SKIPPED_PER_PAGE,
                "page {pages} held {} expired keys",
                expired.len()
            );
            expired_seen += expired.len();
            let json: Vec<(String, u32)> = rmp_serde::from_slice(&out).unwrap();
            assert_eq!(json.len(), count);
            live.extend(json);
            pages += 1;
            match end {
                PageEnd::Done => break,
                PageEnd::After(cursor) => after = Some(cursor),
            }
        }
        assert_eq!(live, vec![("zz1".to_string(), 1), ("zz2".to_string(), 2)]);
        assert_eq!(expired_seen, skipped_total - skipped_total.div_ceil(5));
        assert_eq!(
            pages, 3,
            "two pages end early at the skip limit, the third finds the live entries"
        );

        // Counting crosses them in bounded chunks too, and agrees.
        let (mut after, mut total) = (None, 0);
        loop {
            let mut expired = Vec::new();
            let (count, end) = store
                .count_page(&range, after.as_deref(), 10, 100_000, &mut expired)
                .unwrap();
            assert!(expired.len() <= MAX_SKIPPED_PER_PAGE);
            total += count;
            match end {
                PageEnd::Done => break,
                PageEnd::After(cursor) => after = Some(cursor),
            }
        }
        assert_eq!(total, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_scan_page_is_one_messagepack_array_of_key_value_pairs_without_the_prefix_and_count_agrees()
    {
        let (dir, store) = fresh_store("scan");
        let long_key = [b"p:".as_slice(), &[b'x'; 600]].concat();
        put_records(
            &store,
            &[
                (b"p:a", None, Some(b"1")),
                (b"p:json", None, Some(br#"{"__proto__":7}"#)),
                (b"p:q\"uote\\back\nline\x01", None, Some(br#"{"s":"t"}"#)),
                (b"p:expired", Some(5), Some(b"2")),
                (b"p:undefined", None, None),
                (&long_key, None, Some(b"3")),
                ("p:\u{1F600}".as_bytes(), Some(50), Some(b"[4]")),
                (b"q:outside", None, Some(b"5")),
            ],
        );
        let range = KeyRange {
            prefix: b"p:".to_vec(),
            lower: None,
            upper: None,
        };
        let page = |after: Option<&[u8]>, max_entries: usize| {
            let (mut out, mut json_values, mut expired) = (Vec::new(), Vec::new(), Vec::new());
            let (count, end) = store
                .scan_page(
                    &range,
                    false,
                    after,
                    10,
                    max_entries,
                    1 << 20,
                    &mut out,
                    &mut json_values,
                    &mut expired,
                )
                .unwrap();
            let mut json: serde_json::Value = rmp_serde::from_slice(&out).unwrap();
            // Values kept as JSON arrive as their text, their pairs listed: parse them, as JS does.
            for i in json_values {
                let pair = &mut json[i as usize];
                pair[1] = serde_json::from_str(pair[1].as_str().unwrap()).unwrap();
            }
            (count, end, json, expired.len())
        };
        let long_logical = "x".repeat(600);
        let expected = serde_json::json!([
            ["a", 1],
            ["json", { "__proto__": 7 }],
            ["q\"uote\\back\nline\u{1}", { "s": "t" }],
            [long_logical, 3],
            ["\u{1F600}", [4]],
        ]);
        let (count, end, json, expired) = page(None, 100);
        assert_eq!((count, json, expired), (5, expected.clone(), 1));
        assert!(matches!(end, PageEnd::Done));

        // Two entries per page: the cursor continues exactly after the last one.
        let (count, end, first, _) = page(None, 2);
        assert_eq!(
            (count, first),
            (2, serde_json::json!([expected[0], expected[1]]))
        );
        let PageEnd::After(cursor) = end else {
            panic!("a full page must return a cursor")
        };
        let (count, end, rest, _) = page(Some(&cursor), 2);
        assert_eq!(
            (count, rest),
            (2, serde_json::json!([expected[2], expected[3]]))
        );
        let PageEnd::After(cursor) = end else {
            panic!("a full page must return a cursor")
        };
        let (count, end, last, _) = page(Some(&cursor), 2);
        assert_eq!((count, last), (1, serde_json::json!([expected[4]])));
        assert!(matches!(end, PageEnd::Done));

        // Counting walks the same entries and writes nothing.
        let mut expired = Vec::new();
        let (count, end) = store
            .count_page(&range, None, 10, 100, &mut expired)
            .unwrap();
        assert_eq!((count, expired.len()), (5, 1));
        assert!(matches!(end, PageEnd::Done));
        let (count, end) = store
            .count_page(&range, None, 10, 3, &mut Vec::new())
            .unwrap();
        assert_eq!(count, 3);
        let PageEnd::After(cursor) = end else {
            panic!("a full count chunk must return a cursor")
        };
        let (count, _) = store
            .count_page(&range, Some(&cursor), 10, 3, &mut Vec::new())
            .unwrap();
        assert_eq!(count, 2);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    #[ignore]
    fn core_micro_benchmark() {
        let (dir, store) = fresh_store("probe");
        let json = br#"{"id":12345,"name":"user-12345","email":"user12345@example.com","score":45,"tags":["a","b"]}"#;
        store.set_sync_flags(EnvFlags::NO_SYNC).unwrap();
        let t = std::time::Instant::now();
        {
            let (_g, mut txn) = store.write_txn(None).unwrap();
            let mut rec = Vec::new();
            for i in 0..100_000 {
                let k = StoredKey::encode(format!("user:{i}").as_bytes());
                rec.clear();
                crate::record::encode_put(k.as_bytes(), None, None, Payload::Json(json), &mut rec);
                store.entries.put(&mut txn, k.as_bytes(), &rec).unwrap();
            }
            txn.commit().unwrap();
        }
        println!(
            "put, 100k in one transaction, no fsync: {} ns/op",
            t.elapsed().as_nanos() / 100_000
        );
        let keys: Vec<Vec<u8>> = (0..200_000)
            .map(|i| format!("user:{}", (i * 7919) % 100_000).into_bytes())
            .collect();
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let mut n = 0;
            for k in &keys {
                n += store
                    .lookup(k, |r| {
                        r.map(|r| r.payload.bytes().unwrap().len()).unwrap_or(0)
                    })
                    .unwrap();
            }
            println!(
                "lookup: {} ns/op ({n})",
                t.elapsed().as_nanos() / keys.len() as u128
            );
            let t = std::time::Instant::now();
            for _ in &keys {
                let txn = store.env.read_txn().unwrap();
                drop(txn);
            }
            println!(
                "txn begin+abort: {} ns/op",
                t.elapsed().as_nanos() / keys.len() as u128
            );
            let txn = store.env.read_txn().unwrap();
            let t = std::time::Instant::now();
            let mut n = 0;
            for k in &keys {
                let sk = StoredKey::encode(k);
                n += store
                    .entries
                    .get(&txn, sk.as_bytes())
                    .unwrap()
                    .map(|v| v.len())
                    .unwrap_or(0);
            }
            println!(
                "get in one txn: {} ns/op ({n})",
                t.elapsed().as_nanos() / keys.len() as u128
            );
            drop(txn);
            let seq: Vec<Vec<u8>> = (0..200_000)
                .map(|i| format!("user:{}", i % 100_000).into_bytes())
                .collect();
            let t = std::time::Instant::now();
            for k in &seq {
                n += store
                    .lookup(k, |r| {
                        r.map(|r| r.payload.bytes().unwrap().len()).unwrap_or(0)
                    })
                    .unwrap();
            }
            println!(
                "lookup, sequential keys: {} ns/op ({n})",
                t.elapsed().as_nanos() / keys.len() as u128
            );
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
