//! One LMDB environment (one cache directory) in this process.
//!
//! Invariants:
//! * At most one `Store` per canonical path per process (enforced by `registry`), because
//!   LMDB forbids two environment handles on one file in one process.
//! * Every transaction of this process runs while holding `map_lock` shared; the map is only
//!   resized while holding it exclusively, because LMDB requires that no transaction of the
//!   process is active during `mdb_env_set_mapsize`.
//! * Only the store's writer thread begins write transactions and changes the sync flags.
//!
//! Opening and the format checks are in `store/format.rs`; scans (entries pages and count
//! chunks) in `store/scan.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use heed::types::Bytes;
use heed::{
    CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, FlagSetMode, MdbError, RoTxn,
    WithoutTls,
};
use parking_lot::RwLock;

use crate::error::{CacheError, CacheResult};
use crate::eviction::EvictionState;
use crate::flush_state::FlushState;
use crate::keys::StoredKey;
use crate::record::Record;

mod format;
mod lock_file;
mod lookups;
mod scan;

use format::{ensure_room_for_lock_file, open_databases, open_env_retrying, open_env_retrying_raw};
use lock_file::LockFileId;

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
    /// The format record, the shapes (see `shapes`), getOrSet leases (see `lease`), and the
    /// bounds, totals and eviction clock of a bounded directory (see `eviction`).
    pub(crate) meta: Entries,
    /// Recency hints and this process's hit, miss and eviction counts.
    pub(crate) eviction: EvictionState,
    map_lock: RwLock<()>,
    max_map_size: AtomicU64,
    /// LMDB's page size for this file.
    page_size: u64,
    path: PathBuf,
    /// The lock file LMDB opened; scans, stats and writes refuse to go on without it.
    lock_file: LockFileId,
    /// `None` where the OS names no boot: then every 'durable' commit fsyncs inside it.
    flush_state: Option<Arc<FlushState>>,
}

fn env_builder(opts: &StoreOptions) -> EnvOpenOptions<WithoutTls> {
    let mut builder = EnvOpenOptions::new().read_txn_without_tls();
    builder
        .map_size(round_map_size(opts.initial_map_size.min(opts.max_map_size)) as usize)
        .max_readers(opts.max_readers)
        .max_dbs(8);
    builder
}

/// The id of the newest transaction data.mdb records (0 for none, or a file not yet there).
pub(crate) fn newest_txn_id(dir: &Path) -> u64 {
    std::fs::File::open(dir.join("data.mdb"))
        .ok()
        .and_then(|file| crate::meta_check::read_metas(&file).ok())
        .map_or(0, |(_, newest)| newest.txn_id)
}

/// Opens the environment at its previous snapshot, alone (LMDB refuses PREVSNAPSHOT while
/// another process has it open), and commits over it with a full sync: the newest transaction,
/// which an OS crash may have left incomplete, is gone. See `flush_state`.
fn roll_back_newest(path: &Path, opts: &StoreOptions) -> CacheResult<()> {
    previous_snapshot_fits(path)?;
    let mut builder = env_builder(opts);
    // SAFETY: PREV_SNAPSHOT is among heed's unsafe flags because it drops the newest
    // transaction, which is its purpose here; no sync flag is set, so the commit is synced.
    unsafe { builder.flags(EnvFlags::PREV_SNAPSHOT) };
    let env = open_env_retrying_raw(&builder, path).map_err(|e| match e {
        // LMDB's answer (EAGAIN) when another process has the environment open.
        heed::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
            CacheError::RecoveryBusy {
                path: path.to_path_buf(),
            }
        }
        e => CacheError::from_heed(e, path),
    })?;
    let result = env.write_txn().and_then(|wtxn| {
        env.create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
            let Some(meta) = opener.open_database::<Bytes, Bytes>(wtxn, Some("meta"))? else {
                return Ok(CommitOrAbort::Abort(()));
            };
            // A write that leaves nothing behind but makes the commit write a meta page.
            meta.put(wtxn, ROLLBACK_MARK, &[])?;
            meta.delete(wtxn, ROLLBACK_MARK)?;
            Ok(CommitOrAbort::Commit(meta))
        })
    });
    let result = match result {
        Ok(CommitOrAbort::Commit(_)) => Ok(()),
        Ok(CommitOrAbort::Abort(())) => Err(CacheError::InvalidDatabase {
            path: path.to_path_buf(),
            detail: "no meta database to roll back in".into(),
        }),
        Err(e) => Err(CacheError::from_heed(e, path)),
    };
    env.prepare_for_closing().wait();
    result
}

/// Refuses (ERR_INVALID_DATABASE) a file whose meta pages cannot be read, or whose previous
/// snapshot reaches past its end: LMDB must not map pages that are not there.
fn previous_snapshot_fits(path: &Path) -> CacheResult<()> {
    let invalid = |detail: String| CacheError::InvalidDatabase {
        path: path.to_path_buf(),
        detail,
    };
    let file = std::fs::File::open(path.join("data.mdb")).map_err(|e| invalid(e.to_string()))?;
    let len = file.metadata().map_err(|e| invalid(e.to_string()))?.len();
    let (metas, newest) = crate::meta_check::read_metas(&file).map_err(invalid)?;
    let previous = if metas[0].txn_id == newest.txn_id {
        &metas[1]
    } else {
        &metas[0]
    };
    let end = previous
        .last_page
        .saturating_add(1)
        .saturating_mul(previous.page_size);
    if previous.page_size == 0 || end > len {
        return Err(invalid(format!(
            "its previous snapshot (transaction {}) reaches past the end of data.mdb",
            previous.txn_id
        )));
    }
    Ok(())
}

/// A key of the `meta` database that nothing else uses (written and deleted by a rollback).
const ROLLBACK_MARK: &[u8] = b"rollback-mark";

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
    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// Opens (creating if needed) the environment in the existing directory `path`.
    pub fn open(path: &Path, opts: &StoreOptions) -> CacheResult<Store> {
        let builder = env_builder(opts);
        let lock_file = path.join("lock.mdb");
        let lock_existed = lock_file.exists();
        if !lock_existed {
            ensure_room_for_lock_file(path, opts.max_readers)?;
        }
        // First: after an OS crash the newest transaction may be incomplete on disk (which the
        // check below would refuse); the previous one is whole. A record that cannot be opened
        // (a read-only directory) leaves every commit fsyncing inside it.
        let state_existed = path.join(crate::flush_state::FLUSH_STATE_FILE).exists();
        let flush_state = FlushState::open(path).ok().flatten();
        if let Some(state) = &flush_state {
            state.at_open(|| newest_txn_id(path), || roll_back_newest(path, opts))?;
        }
        // Before LMDB maps the file: a damaged one must be refused, not fault in the map.
        crate::meta_check::check_data_file(path)?;
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
                if !state_existed {
                    let _ = std::fs::remove_file(path.join(crate::flush_state::FLUSH_STATE_FILE));
                }
                return Err(e);
            }
        };
        let page_size = env.unnamed_database_stat().page_size as u64;
        let eviction = EvictionState::default();
        let bounds = env
            .read_txn()
            .and_then(|txn| {
                meta.get(&txn, crate::eviction::BOUNDS_KEY)
                    .map(|b| b.is_some())
            })
            .map_err(|e| CacheError::from_heed(e, path))?;
        eviction.bounded.store(bounds, Ordering::Relaxed);
        Ok(Store {
            env,
            entries,
            expiries,
            meta,
            eviction,
            map_lock: RwLock::new(()),
            max_map_size: AtomicU64::new(round_map_size(opts.max_map_size)),
            page_size,
            path: path.to_path_buf(),
            lock_file: LockFileId::of(path),
            flush_state: flush_state.map(Arc::new),
        })
    }

    /// The directory's flush record, where commits may skip their fsync (see `flush_state`).
    pub(crate) fn flush_state(&self) -> Option<&Arc<FlushState>> {
        self.flush_state.as_ref()
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
        let bounds = (
            std::ops::Bound::Included(&start[..]),
            std::ops::Bound::Included(&end[..]),
        );
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
                let shape = crate::shapes::decode_stored(id, &bytes).map_err(|e| {
                    CacheError::CorruptRecord {
                        detail: e.to_string(),
                    }
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
        self.check_lock_file()?;
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

    /// Fails with ERR_LOCK_FILE_REPLACED when `lock.mdb` is not the file LMDB opened.
    pub(crate) fn check_lock_file(&self) -> CacheResult<()> {
        self.lock_file.check(&self.path)
    }

    /// ERR_INVALID_DATABASE for a B-tree found damaged while reading it.
    pub(crate) fn damaged(&self, what: &str) -> CacheError {
        CacheError::InvalidDatabase {
            path: self.path.clone(),
            detail: format!(
                "{what}: the file is damaged, or lock.mdb was deleted while a process had the \
                 cache open (run lmdb-cache verify)"
            ),
        }
    }

    /// Size and usage figures, all from one read transaction (the meta pages read inside it,
    /// under the `map_lock` it holds), so that the counts agree with each other.
    pub fn stats(&self) -> CacheResult<StoreStats> {
        self.check_lock_file()?;
        let heed_err = |e| self.heed_error(e);
        let (info, page_size, entries, expired, held_pages, bounds, (totals, counters)) = self
            .read(|txn| {
                let info = self.env.info();
                let page_size = self.env.unnamed_database_stat().page_size as u64;
                // The main database also holds the records of our two named databases.
                let entries = self.entries.len(txn).map_err(heed_err)?.saturating_sub(2);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                // Expired entries are exactly the expiry index rows at or before now. A damaged
                // tree can make the walk cycle: it may not visit more rows than the index counts.
                let rows = self.expiries.len(txn).map_err(heed_err)?;
                let mut expired = 0u64;
                for (visited, item) in self.expiries.iter(txn).map_err(heed_err)?.enumerate() {
                    if visited as u64 >= rows {
                        return Err(self.damaged("the expiry index holds more rows than it counts"));
                    }
                    let (key, _) = item.map_err(heed_err)?;
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
                    let s = db.stat(txn).map_err(heed_err)?;
                    held += (s.branch_pages + s.leaf_pages + s.overflow_pages) as u64;
                }
                let bounds = crate::eviction::read_bounds(self, txn).map_err(heed_err)?;
                let totals =
                    crate::eviction::read_totals(self, txn, txn.id() as u64).map_err(heed_err)?;
                let counters = crate::eviction::read_counters(self, txn).map_err(heed_err)?;
                Ok((
                    info,
                    page_size,
                    entries,
                    expired,
                    held,
                    bounds,
                    (totals, counters),
                ))
            })?;
        let live = entries.saturating_sub(expired);
        let used_pages = info.last_page_number as u64 + 1;
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
            bounds,
            totals,
            counters,
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
    pub bounds: crate::eviction::Bounds,
    /// The running totals, if kept and up to date at this snapshot.
    pub totals: Option<crate::eviction::Totals>,
    /// The directory's hits, misses and evictions, as far as processes published them.
    pub counters: Option<crate::eviction::Counters>,
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

/// Stores and records for the tests of this module and its children.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::keys::{self, StoredKind};
    use crate::record::Payload;

    /// A fresh store in a temp directory of its own (removed first if left over).
    pub(crate) fn fresh_store(name: &str) -> (PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!("lmdb-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir, &StoreOptions::default()).unwrap();
        (dir, store)
    }

    /// A record to write directly: full key, expiry, JSON (None: a stored undefined).
    pub(crate) type TestRecord<'a> = (&'a [u8], Option<u64>, Option<&'a [u8]>);

    /// Writes `(full key, expiry, json)` records straight into the entries database.
    pub(crate) fn put_records(store: &Store, records: &[TestRecord<'_>]) {
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
}

#[cfg(test)]
mod tests {
    use super::test_support::fresh_store;
    use super::*;
    use crate::record::Payload;

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

    #[test]
    fn stats_counts_come_from_one_snapshot_while_writes_go_on() {
        let (dir, store) = fresh_store("stats");
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                // Expired entries, one per transaction, each with its expiry index row.
                for i in 0..2_000u32 {
                    let stored = StoredKey::encode(format!("k{i}").as_bytes());
                    let mut rec = Vec::new();
                    crate::record::encode_put(
                        stored.as_bytes(),
                        Some(5),
                        None,
                        Payload::Json(b"1"),
                        &mut rec,
                    );
                    let row = [&5u64.to_be_bytes()[..], stored.as_bytes()].concat();
                    let (_g, mut txn) = store.write_txn(None).unwrap();
                    store
                        .entries
                        .put(&mut txn, stored.as_bytes(), &rec)
                        .unwrap();
                    store.expiries.put(&mut txn, &row, b"").unwrap();
                    txn.commit().unwrap();
                }
                done.store(true, Ordering::Relaxed);
            });
            while !done.load(Ordering::Relaxed) {
                let s = store.stats().unwrap();
                assert!(
                    s.expired_entries <= s.entries,
                    "{} expired of {} entries: two snapshots",
                    s.expired_entries,
                    s.entries
                );
                assert_eq!(s.live_entries + s.expired_entries, s.entries);
            }
        });
        let s = store.stats().unwrap();
        assert_eq!(
            (s.entries, s.expired_entries, s.live_entries),
            (2_000, 2_000, 0)
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The micro-benchmark of the native core alone, without the JS boundary: prints the cost
    /// of a put (100,000 in one transaction, no fsync) and of a lookup through `Store`, so the
    /// cost of the N-API layer is known by difference. Not a correctness test; run with
    /// `cargo test --release core_micro_benchmark -- --ignored --nocapture`.
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
