//! The write queue and its writer thread.
//!
//! Every write of this process to one store goes through one queue. The writer thread takes
//! everything queued while it was committing and applies it in ONE write transaction, so
//! concurrent writers share commits and fsyncs. Each request is atomic: if one request of a
//! group fails (a full map that cannot grow, a key collision), the transaction is aborted and
//! the group is retried one request per transaction, so the others still land.
//! A request's completion is reported only after its transaction committed. A 'durable'
//! commit is fsynced afterwards by the flusher thread (`flusher`), off LMDB's writer lock;
//! the next commit waits until it is (`flush_state` says why that keeps the file intact).
//!
//! A full map or disk: requests that only delete may grow the map into a reserve past the
//! maximum size, and one that still does not fit is committed in parts (it is then no longer
//! atomic); puts never grow the map past the maximum, nor use room a delete left beyond it.
//!
//! A bounded directory (see `eviction`): every transaction keeps the totals, applies the
//! touches reads queued, and evicts while a bound is passed (bounded work; what is left is
//! evicted by the next transactions, which the writer runs on its own while idle).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;

use heed::{EnvFlags, MdbError, RwTxn};

use crate::batch::{parse_batch, Op, SharedBytes};
use crate::codec;
use crate::disk_reserve::DiskReserve;
use crate::error::{CacheError, CacheResult};
use crate::eviction::{BoundSetting, Evictor};
use crate::flusher::Flusher;
use crate::keys::StoredKey;
use crate::protocol::CLEAR_CHUNK;
use crate::record::{self, Payload, Record};
use crate::shapes::{self, ShapeTable};
use crate::store::{delete_reserve_limit, Store};

// The ops beyond put and delete, and clear: counted deletes, getOrSet leases.
mod conditional;

mod queue;
pub use queue::WriteQueue;

/// How a commit reaches the disk; a group is committed with the strongest mode it contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Durability {
    /// No fsync (MDB_NOSYNC): survives a process crash; an OS crash may lose recent commits or
    /// corrupt the file.
    NoSync,
    /// The file stays intact across an OS crash, which may undo the last commit. With a
    /// flusher: no fsync in the commit (MDB_NOSYNC), the flusher's fsync after it, and the
    /// next commit waits for that (see `flush_state`). Without: fsync of the data, not of the
    /// meta page (MDB_NOMETASYNC).
    Durable,
    /// fsync of data and meta page: an acknowledged write survives an OS crash.
    Strict,
}

impl Durability {
    fn env_flags(self, pipelined: bool) -> EnvFlags {
        match self {
            Durability::NoSync => EnvFlags::NO_SYNC,
            Durability::Durable if pipelined => EnvFlags::NO_SYNC,
            Durability::Durable => EnvFlags::NO_META_SYNC,
            Durability::Strict => EnvFlags::empty(),
        }
    }
}

/// Where a completed request's result goes (the napi layer delivers it to JS).
pub trait CompletionSink: Send + Sync {
    fn complete(&self, done: Vec<Completion>);
}

pub struct Completion {
    pub ticket: u32,
    /// Ok(number): 0 for puts and deletes, the deleted count for a sweep.
    pub result: CacheResult<f64>,
}

pub struct Reply {
    pub sink: Arc<dyn CompletionSink>,
    pub ticket: u32,
}

pub enum WriteKind {
    /// An encoded batch of ops (see [`parse_batch`]), applied atomically; `now` (epoch ms)
    /// judges what is live for its conditional ops. Completes with how many of those took
    /// effect (see `OP_DEL_LIVE`, `OP_LEASE_TAKE`).
    Batch { ops: SharedBytes, now: u64 },
    /// Delete the entry if it is (still) expired at `now`: the lazy expiry of a read.
    DeleteIfExpired { full_key: Vec<u8>, now: u64 },
    /// Delete every entry expired at `now`; completes with the count.
    Sweep { now: u64 },
    /// Delete up to `CLEAR_CHUNK` entries whose full key starts with `prefix` (see
    /// `writer/conditional.rs`); completes with the count.
    Clear { prefix: Vec<u8> },
    /// Store an open's bounds for the directory (see `eviction::BoundSetting`).
    SetBounds {
        max_entries: BoundSetting,
        max_bytes: BoundSetting,
    },
    /// Panics in the writer thread: tests pin what a bug there does to the group and after.
    #[cfg(test)]
    PanicForTest,
}

#[cfg(test)]
impl WriteKind {
    /// A batch whose conditional ops (if any) judge liveness at time 0.
    pub fn batch(ops: Vec<u8>) -> WriteKind {
        WriteKind::Batch {
            ops: ops.into(),
            now: 0,
        }
    }
}

pub struct WriteRequest {
    pub kind: WriteKind,
    pub durability: Durability,
    /// `None` for fire-and-forget work (lazy expiry).
    pub reply: Option<Reply>,
}

impl WriteRequest {
    /// Requests that only delete may use the map's reserve beyond the maximum size, so that a
    /// full cache can always be emptied.
    fn only_deletes(&self) -> bool {
        match &self.kind {
            WriteKind::Batch { ops, .. } => parse_batch(ops)
                .map(|ops| ops.iter().all(Op::only_deletes))
                .unwrap_or(false),
            // Bounds only shrink what the cache holds.
            WriteKind::DeleteIfExpired { .. }
            | WriteKind::Sweep { .. }
            | WriteKind::Clear { .. }
            | WriteKind::SetBounds { .. } => true,
            #[cfg(test)]
            WriteKind::PanicForTest => false,
        }
    }
}

/// Starts the writer thread of `store`: it commits what `queue` holds until the queue is
/// closed and drained, then syncs, lets go of the store and runs `on_exit` (which closes the
/// environment and settles the close: see `registry`).
pub fn spawn_writer(
    store: Arc<Store>,
    queue: Arc<WriteQueue>,
    on_exit: impl FnOnce() + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("lmdb-cache-writer".into())
        .spawn(move || {
            let reserve = DiskReserve::new(store.dir());
            // Where the OS names its boot (see `flush_state`); else 'durable' fsyncs in commits.
            let flusher = store
                .flush_state()
                .and_then(|record| Flusher::start(store.dir(), Arc::clone(record)).ok());
            let mut writer = Writer {
                flusher,
                unrecorded: None,
                store,
                reserve,
                reserve_missing: false,
                flags_for: None,
                unsynced: false,
                scratch: Vec::new(),
                shapes: ShapeTable::default(),
                shapes_synced: false,
                shaped: Vec::new(),
                transcoded: Vec::new(),
                evictor: Evictor::default(),
                touches: Vec::new(),
                extra_durability: None,
                restamped: Vec::new(),
            };
            writer.reserve_missing = !writer.reserve.ensure();
            while let Some(group) = queue.take() {
                let (touches, durability) = queue.take_touches();
                writer.touches = touches;
                writer.extra_durability = (!writer.touches.is_empty()).then_some(durability);
                let results = writer.commit_catching(&group);
                writer.touches.clear();
                deliver(group, results);
                // Past a bound after its bounded share of eviction: evict more on our own
                // while nothing else waits (each transaction bounded again).
                while writer.evictor.over() && !queue.has_pending() {
                    // Committed as durably as the last transaction (a 'nosync' handle's
                    // writes do not make eviction fsync).
                    writer.extra_durability = writer.flags_for;
                    writer.commit_catching(&[]);
                    if !writer.evicted_some() {
                        break;
                    }
                }
                if writer.reserve_missing {
                    // Rate-limited inside: a full device is tried again every few seconds.
                    writer.reserve_missing = !writer.reserve.ensure();
                }
            }
            if writer.unsynced {
                // Closing: make commits done without a full fsync durable now. A failure here
                // loses nothing that is not already on its way to disk.
                let _ = writer.store.force_sync();
            }
            // The store's last users may now close it.
            drop(writer);
            on_exit();
        })
}

struct Writer {
    store: Arc<Store>,
    /// A 'strict' commit whose flush record could not be made durable: its requests fail.
    unrecorded: Option<CacheError>,
    /// Flushes 'durable' commits off the writer lock; `None` when it could not start (then
    /// 'durable' commits fsync their data inside the commit).
    flusher: Option<Flusher>,
    /// Disk space given up when a delete cannot commit on a full device (see `disk_reserve`).
    reserve: DiskReserve,
    /// This writer found the reserve absent (or gave it up) and has not made it again.
    reserve_missing: bool,
    /// The durability the env flags are currently set for.
    flags_for: Option<Durability>,
    /// Some commit since the last full sync skipped an fsync.
    unsynced: bool,
    /// Reused buffer for encoding records.
    scratch: Vec<u8>,
    /// The directory's shapes; in step with the file once `shapes_synced` in a transaction.
    shapes: ShapeTable,
    shapes_synced: bool,
    /// Reused buffers: a value with its maps shaped, and a JSON value transcoded.
    shaped: Vec<u8>,
    transcoded: Vec<u8>,
    /// Totals, recency and eviction of a bounded directory.
    evictor: Evictor,
    /// Touches to apply in the next transaction, with their durability.
    touches: Vec<Vec<u8>>,
    extra_durability: Option<Durability>,
    restamped: Vec<u8>,
}

enum Failure {
    /// The map is full: grow it, or isolate the request that does not fit.
    MapFull,
    /// The commit could not write its pages: the device is full, or (EIO) LMDB's write was
    /// cut short, which is how a full device usually shows. The error to report.
    NoRoom(CacheError),
    /// The request cannot be applied; abort and isolate.
    Request(CacheError),
}

/// The first part size (operations, or expired entries of a sweep) when a request that only
/// deletes is split (see [`Writer::commit_in_parts`]), and the most a part grows to.
const FIRST_PART: usize = 256;
const MAX_PART: usize = 4096;

/// The text of a caught panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("writer thread panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("writer thread panicked: {s}")
    } else {
        "writer thread panicked".into()
    }
}

impl Writer {
    /// [`Writer::commit`], with a panic (a bug, or a record this code did not expect) failing
    /// the group with ERR_INTERNAL instead of killing the thread, which would leave every
    /// pending and later write waiting forever. Unwinding dropped (aborted) the open
    /// transaction; the env flags are set again before the next commit.
    fn commit_catching(&mut self, group: &[WriteRequest]) -> Vec<CacheResult<f64>> {
        match catch_unwind(AssertUnwindSafe(|| self.commit(group))) {
            Ok(results) => results,
            Err(panic) => {
                self.flags_for = None;
                let detail = panic_message(panic.as_ref());
                vec![Err(CacheError::Internal { detail }); group.len()]
            }
        }
    }

    /// Commits `group` in one transaction if possible; returns one result per request.
    fn commit(&mut self, group: &[WriteRequest]) -> Vec<CacheResult<f64>> {
        let durability = group
            .iter()
            .map(|r| r.durability)
            .chain(self.extra_durability)
            .max()
            .unwrap_or(Durability::Durable);
        let only_deletes = group.iter().all(WriteRequest::only_deletes) && self.touches.is_empty();
        let max = self.store.max_map_size();
        // Puts never grow the map past the maximum, nor use room a delete left beyond it.
        let cap = (!only_deletes).then_some(max);
        loop {
            let attempt = self.run_txn(durability, cap, |writer, txn| {
                let values = group
                    .iter()
                    .map(|request| writer.apply(txn, &request.kind))
                    .collect::<Result<Vec<f64>, Failure>>()?;
                // The map may hold free pages past the maximum (left by deletes that used the
                // reserve); puts may reuse them, but the data may not outgrow the maximum.
                if cap.is_some() && writer.held_bytes(txn)? > max {
                    return Err(Failure::MapFull);
                }
                Ok(values)
            });
            let full = match attempt {
                Ok(values) => {
                    if let Some(e) = self.unrecorded.take() {
                        return vec![Err(e); group.len()];
                    }
                    return values.into_iter().map(Ok).collect();
                }
                Err(Failure::MapFull) => {
                    let limit = if only_deletes {
                        delete_reserve_limit(max)
                    } else {
                        max
                    };
                    match self.store.grow_map(limit) {
                        Ok(true) => continue,
                        Ok(false) => CacheError::Full { max_size: max },
                        Err(e) => return vec![Err(e); group.len()],
                    }
                }
                Err(Failure::NoRoom(e)) => e,
                Err(Failure::Request(_)) if group.len() > 1 => {
                    return self.commit_one_by_one(group)
                }
                Err(Failure::Request(e)) => return vec![Err(e)],
            };
            return match group {
                [_, _, ..] => self.commit_one_by_one(group),
                // A map or disk without room for the whole request: what it deletes frees
                // pages only once committed (copy-on-write), so a request that only deletes
                // is committed in parts, each freeing room for the next ones.
                [one] if only_deletes => vec![self.commit_in_parts(&one.kind, durability)],
                _ => vec![Err(full)],
            };
        }
    }

    /// Each request in a transaction of its own. A panic is caught per request here, not
    /// only around the whole group: the requests before it are committed and must not be
    /// reported as failed.
    fn commit_one_by_one(&mut self, group: &[WriteRequest]) -> Vec<CacheResult<f64>> {
        let mut results = Vec::with_capacity(group.len());
        for one in group.chunks(1) {
            results.extend(self.commit_catching(one));
        }
        results
    }

    /// Commits a request that only deletes in consecutive transactions of at most a part's
    /// operations (or expired entries, for a sweep) each: a part that does not fit is retried
    /// at half its size, one that committed lets the next be twice as large. So the request is
    /// no longer atomic: when a single operation does not fit, the parts before it stay
    /// committed and the request fails. Returns what the request returns (the total deleted
    /// count for a sweep).
    fn commit_in_parts(&mut self, kind: &WriteKind, durability: Durability) -> CacheResult<f64> {
        let max = self.store.max_map_size();
        let (ops, now) = match kind {
            WriteKind::Batch { ops, now } => (parse_batch(ops)?, *now),
            _ => (Vec::new(), 0),
        };
        let mut size = FIRST_PART;
        let mut done = 0usize;
        let mut total = 0.0;
        loop {
            let part = self.run_txn(durability, None, |writer, txn| match kind {
                WriteKind::Batch { .. } => {
                    let end = ops.len().min(done + size);
                    let mut counted = 0.0;
                    for op in &ops[done..end] {
                        counted += writer.apply_op(txn, op, now)?;
                    }
                    Ok((end - done, counted, end == ops.len()))
                }
                WriteKind::Sweep { now } => {
                    let (deleted, finished) = writer.sweep(txn, *now, size)?;
                    Ok((size, deleted as f64, finished))
                }
                // One operation: nothing to split.
                _ => writer.apply(txn, kind).map(|v| (1, v, true)),
            });
            let full = match part {
                Ok((applied, value, finished)) => {
                    total += value;
                    if finished {
                        return match self.unrecorded.take() {
                            Some(e) => Err(e),
                            None => Ok(total),
                        };
                    }
                    done += applied;
                    size = (size * 2).min(MAX_PART);
                    continue;
                }
                Err(Failure::MapFull) => match self.store.grow_map(delete_reserve_limit(max)) {
                    Ok(true) => continue,
                    Ok(false) => CacheError::Full { max_size: max },
                    Err(e) => return Err(e),
                },
                Err(Failure::NoRoom(e)) => e,
                Err(Failure::Request(e)) => return Err(e),
            };
            if size == 1 {
                // Not even one delete fits on the device: give up the disk reserve for it.
                if self.reserve.release() {
                    self.reserve_missing = true;
                    continue;
                }
                return Err(full);
            }
            size /= 2;
        }
    }

    /// Runs `body` in one write transaction and commits it (see [`Store::write_txn`] for
    /// `cap`); a failure of `body` or of the commit aborts it.
    fn run_txn<T>(
        &mut self,
        durability: Durability,
        cap: Option<u64>,
        body: impl FnOnce(&mut Self, &mut RwTxn<'_>) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        if self.flags_for != Some(durability) {
            self.store
                .set_sync_flags(durability.env_flags(self.flusher.is_some()))
                .map_err(Failure::Request)?;
            self.flags_for = Some(durability);
        }
        let store = Arc::clone(&self.store);
        let (guard, mut txn) = store.write_txn(cap).map_err(Failure::Request)?;
        // Another process may have stored shapes since; an aborted transaction took its own.
        self.shapes_synced = false;
        let begun = self
            .evictor
            .begin(&store, &txn)
            .map_err(|e| self.classify(e));
        let value = match begun.and_then(|()| body(self, &mut txn)) {
            Ok(value) => match self.finish_txn(&store, &mut txn) {
                Ok(()) => value,
                Err(f) => {
                    txn.abort();
                    drop(guard);
                    return Err(f);
                }
            },
            Err(f) => {
                txn.abort();
                drop(guard);
                return Err(f);
            }
        };
        let txn_id = txn.id() as u64;
        if let (Some(flusher), Durability::Durable) = (&self.flusher, durability) {
            // The rule that keeps the file intact across an OS crash without an fsync inside
            // the commit: the transaction before this one is on disk before this one's meta
            // page is written. ('strict' commits fsync everything before their meta page.)
            if let Err(e) = flusher.ensure_flushed(txn_id - 1) {
                txn.abort();
                drop(guard);
                return Err(Failure::Request(e));
            }
        }
        let committed = txn.commit();
        drop(guard);
        match committed {
            Ok(()) => {
                if let Some(flusher) = &self.flusher {
                    match durability {
                        Durability::Durable => flusher.request(txn_id),
                        Durability::Strict => {
                            flusher.note_flushed(txn_id);
                            // An OS crash must not roll this commit back: record it durably.
                            // Committed either way, so a failure is reported, not retried.
                            if let Err(e) = flusher.record().record(txn_id, true) {
                                self.unrecorded = Some(e);
                            }
                        }
                        Durability::NoSync => {}
                    }
                }
                self.shapes.mark_committed();
                self.evictor.committed(&store);
                // A 'durable' commit with a flusher is flushed by it, at the latest when it
                // stops: only the others leave the closing writer an fsync to do.
                let flushed_later = durability == Durability::Durable && self.flusher.is_some();
                if durability != Durability::Strict && !flushed_later {
                    self.unsynced = true;
                }
                Ok(value)
            }
            Err(e) => Err(self.classify_commit(e)),
        }
    }

    /// The end of every write transaction in a directory that keeps totals: the touches reads
    /// queued, then eviction while a bound is passed (expired entries first), then the totals.
    fn finish_txn(&mut self, store: &Store, txn: &mut RwTxn<'_>) -> Result<(), Failure> {
        let ev = &mut self.evictor;
        let heed = ev
            .ensure_totals(store, txn)
            .and_then(|()| ev.apply_touches(store, txn, &self.touches, &mut self.restamped));
        heed.map_err(|e| self.classify(e))?;
        if self.evictor.over() {
            let now = self.evictor.now_ms();
            self.sweep(txn, now, crate::eviction::MAX_SAMPLED_PER_TXN)?;
        }
        let ev = &mut self.evictor;
        let heed = ev
            .evict_sampled(store, txn)
            .and_then(|()| ev.save(store, txn));
        heed.map_err(|e| self.classify(e))
    }

    /// Whether the last transaction evicted anything (progress while over a bound).
    fn evicted_some(&self) -> bool {
        self.evictor.evicted_in_txn() > 0
    }

    fn classify(&self, e: heed::Error) -> Failure {
        match e {
            heed::Error::Mdb(MdbError::MapFull) => Failure::MapFull,
            other => match self.store.heed_error(other) {
                CacheError::DiskFull => Failure::NoRoom(CacheError::DiskFull),
                e => Failure::Request(e),
            },
        }
    }

    /// [`Writer::classify`] for a failed commit, where an EIO is LMDB's report of a write
    /// cut short (its pages did not fit on the device).
    fn classify_commit(&self, e: heed::Error) -> Failure {
        const EIO: i32 = 5;
        match e {
            heed::Error::Io(io) if io.raw_os_error() == Some(EIO) => {
                Failure::NoRoom(self.store.heed_error(heed::Error::Io(io)))
            }
            other => self.classify(other),
        }
    }

    fn apply(&mut self, txn: &mut RwTxn<'_>, kind: &WriteKind) -> Result<f64, Failure> {
        match kind {
            WriteKind::Batch { ops, now } => {
                let ops = parse_batch(ops).map_err(Failure::Request)?;
                let mut counted = 0.0;
                for op in &ops {
                    counted += self.apply_op(txn, op, *now)?;
                }
                Ok(counted)
            }
            WriteKind::DeleteIfExpired { full_key, now } => {
                let deleted =
                    self.delete_if(txn, full_key, |r| r.is_some_and(|r| r.is_expired(*now)))?;
                Ok(if deleted { 1.0 } else { 0.0 })
            }
            WriteKind::Sweep { now } => self.sweep(txn, *now, usize::MAX).map(|(n, _)| n as f64),
            WriteKind::Clear { prefix } => self.clear_chunk(txn, prefix, CLEAR_CHUNK),
            WriteKind::SetBounds {
                max_entries,
                max_bytes,
            } => {
                let store = Arc::clone(&self.store);
                self.evictor
                    .set_bounds(&store, txn, *max_entries, *max_bytes)
                    .map_err(|e| self.classify(e))?;
                Ok(0.0)
            }
            #[cfg(test)]
            WriteKind::PanicForTest => panic!("as the test asked"),
        }
    }

    /// The bytes of the pages the databases hold (free pages left out), as of `txn`.
    fn held_bytes(&self, txn: &RwTxn<'_>) -> Result<u64, Failure> {
        let mut pages = 2u64; // the meta pages
        let mut page_size = 0;
        for db in [&self.store.entries, &self.store.expiries, &self.store.meta] {
            let s = db.stat(txn).map_err(|e| self.classify(e))?;
            pages += (s.branch_pages + s.leaf_pages + s.overflow_pages) as u64;
            page_size = s.page_size as u64;
        }
        Ok(pages.saturating_mul(page_size))
    }

    /// Reads the record in `stored`'s slot if it belongs to `full_key`. Returns its expiry
    /// (for the index) or an error when a different long key holds the slot, and the length
    /// of whatever record the slot holds (for the totals).
    fn existing_expiry(
        &self,
        txn: &RwTxn<'_>,
        stored: &StoredKey,
        full_key: &[u8],
    ) -> Result<(Option<Option<u64>>, Option<usize>), Failure> {
        let raw = self
            .store
            .entries
            .get(txn, stored.as_bytes())
            .map_err(|e| self.classify(e))?;
        let len = raw.map(<[u8]>::len);
        let expiry = match raw {
            None => None,
            // Undecodable (damaged, or not written by this package): overwritten as if absent.
            // An expiry index row it may have left is harmless: a sweep deletes an entry only
            // if its record carries that expiry, and drops the row either way.
            Some(bytes) => match Record::decode(stored.as_bytes(), bytes) {
                Ok(record) if stored.is_long() && record.full_key != Some(full_key) => {
                    return Err(Failure::Request(CacheError::KeyCollision))
                }
                Ok(record) => Some(record.expiry),
                Err(_) => None,
            },
        };
        Ok((expiry, len))
    }

    fn put(
        &mut self,
        txn: &mut RwTxn<'_>,
        full_key: &[u8],
        expiry: Option<u64>,
        value: Payload<'_>,
    ) -> Result<(), Failure> {
        let stored = StoredKey::encode(full_key);
        let (existing, old_len) = self.existing_expiry(txn, &stored, full_key)?;
        if let Some(Some(old)) = existing {
            if Some(old) != expiry {
                self.store
                    .expiries
                    .delete(txn, &expiry_index_key(old, stored.as_bytes()))
                    .map_err(|e| self.classify(e))?;
            }
        }
        let value = if self.shape_payload(txn, &value)? {
            Payload::MsgPack(&self.shaped)
        } else {
            value
        };
        self.scratch.clear();
        record::encode_put_stamped(
            stored.as_bytes(),
            expiry,
            stored.is_long().then_some(full_key),
            self.evictor.stamp(),
            value,
            &mut self.scratch,
        );
        self.store
            .entries
            .put(txn, stored.as_bytes(), &self.scratch)
            .map_err(|e| self.classify(e))?;
        self.evictor
            .wrote(stored.as_bytes().len(), old_len, self.scratch.len());
        if let Some(x) = expiry {
            self.store
                .expiries
                .put(txn, &expiry_index_key(x, stored.as_bytes()), &[])
                .map_err(|e| self.classify(e))?;
        }
        Ok(())
    }

    /// Writes into `self.shaped` the MessagePack `value` is stored as, its maps shaped and the
    /// shapes it needed stored in `txn` (true); false where `value` is stored as it is:
    /// undefined, or JSON that MessagePack cannot carry with JSON's semantics.
    fn shape_payload(&mut self, txn: &mut RwTxn<'_>, value: &Payload<'_>) -> Result<bool, Failure> {
        if matches!(value, Payload::Undefined) {
            return Ok(false);
        }
        if !self.shapes_synced {
            self.sync_shapes(txn)?;
        }
        let input: &[u8] = match *value {
            Payload::Undefined => return Ok(false),
            Payload::MsgPack(bytes) => bytes,
            Payload::Json(json) => {
                self.transcoded.clear();
                if codec::json_to_msgpack(json, &mut self.transcoded).is_err() {
                    return Ok(false);
                }
                &self.transcoded
            }
        };
        self.shaped.clear();
        self.shapes.shape(input, &mut self.shaped).map_err(|e| {
            Failure::Request(CacheError::InvalidRequest {
                detail: e.to_string(),
            })
        })?;
        for (id, stored) in self.shapes.take_registered() {
            self.store
                .meta
                .put(txn, &shapes::stored_key(id), &stored)
                .map_err(|e| self.classify(e))?;
        }
        Ok(true)
    }

    /// Brings the shape table in step with the file as `txn` sees it.
    fn sync_shapes(&mut self, txn: &RwTxn<'_>) -> Result<(), Failure> {
        self.shapes.rollback();
        let stored = self
            .store
            .stored_shapes_from(txn, self.shapes.len())
            .map_err(Failure::Request)?;
        for (id, bytes) in stored {
            // A damaged shape freezes the table: values keep the shapes before it.
            if self.shapes.load(id, &bytes).is_err() {
                break;
            }
        }
        self.shapes_synced = true;
        Ok(())
    }

    /// Deletes the entry of `full_key` if it exists and `condition` holds for its record
    /// (`None`: a record that cannot be decoded).
    fn delete_if(
        &self,
        txn: &mut RwTxn<'_>,
        full_key: &[u8],
        condition: impl Fn(Option<&Record<'_>>) -> bool,
    ) -> Result<bool, Failure> {
        let stored = StoredKey::encode(full_key);
        let (expiry, len) = {
            let raw = self
                .store
                .entries
                .get(txn, stored.as_bytes())
                .map_err(|e| self.classify(e))?;
            let Some(bytes) = raw else { return Ok(false) };
            let expiry = match Record::decode(stored.as_bytes(), bytes) {
                Ok(record) => {
                    if (stored.is_long() && record.full_key != Some(full_key))
                        || !condition(Some(&record))
                    {
                        return Ok(false);
                    }
                    record.expiry
                }
                Err(_) if condition(None) => None,
                Err(_) => return Ok(false),
            };
            (expiry, bytes.len())
        };
        self.remove_entry(txn, stored.as_bytes(), len, expiry)?;
        Ok(true)
    }

    /// Removes the entry stored under `stored` (its record `record_len` bytes long) with its
    /// expiry index row, and counts it out of a bounded directory's totals: every delete of
    /// the writer (del, counted delete, sweep, clear) goes through here.
    pub(super) fn remove_entry(
        &self,
        txn: &mut RwTxn<'_>,
        stored: &[u8],
        record_len: usize,
        expiry: Option<u64>,
    ) -> Result<(), Failure> {
        self.store
            .entries
            .delete(txn, stored)
            .map_err(|e| self.classify(e))?;
        self.evictor.removed(stored.len(), record_len);
        if let Some(x) = expiry {
            self.store
                .expiries
                .delete(txn, &expiry_index_key(x, stored))
                .map_err(|e| self.classify(e))?;
        }
        Ok(())
    }

    /// Deletes the entries expired at `now`, walking the expiry index from its start, until
    /// `limit` index rows are done. Returns the count deleted and whether none is left.
    fn sweep(&self, txn: &mut RwTxn<'_>, now: u64, limit: usize) -> Result<(u64, bool), Failure> {
        let mut deleted = 0u64;
        let mut left = limit;
        loop {
            if left == 0 {
                return Ok((deleted, false));
            }
            // Collect a chunk first: LMDB iterators must not outlive the writes below.
            let chunk: Vec<Vec<u8>> = {
                let iter = self
                    .store
                    .expiries
                    .iter(txn)
                    .map_err(|e| self.classify(e))?;
                let mut chunk = Vec::new();
                for item in iter {
                    let (key, _) = item.map_err(|e| self.classify(e))?;
                    // A row shorter than its expiry indexes nothing (not written by this
                    // package): it is removed below rather than failing every sweep.
                    let expiry = match key.get(..8) {
                        Some(bytes) => u64::from_be_bytes(bytes.try_into().expect("8 bytes")),
                        None => 0,
                    };
                    if expiry > now || chunk.len() >= 4096.min(left) {
                        break;
                    }
                    chunk.push(key.to_vec());
                }
                chunk
            };
            if chunk.is_empty() {
                return Ok((deleted, true));
            }
            left -= chunk.len();
            for index_key in chunk {
                // A row without a stored key after its expiry indexes nothing either (and LMDB
                // refuses an empty key).
                let Some((expiry, stored)) = index_key
                    .split_first_chunk::<8>()
                    .filter(|(_, stored)| !stored.is_empty())
                else {
                    self.store
                        .expiries
                        .delete(txn, &index_key)
                        .map_err(|e| self.classify(e))?;
                    continue;
                };
                let expiry = u64::from_be_bytes(*expiry);
                let matches = match self
                    .store
                    .entries
                    .get(txn, stored)
                    .map_err(|e| self.classify(e))?
                {
                    // An undecodable record is left for its key's owner to repair. The
                    // header is enough here: an expired record goes whatever its value.
                    Some(bytes) => Record::decode_unverified(bytes)
                        .is_ok_and(|r| r.expiry == Some(expiry))
                        .then_some(bytes.len()),
                    None => None,
                };
                match matches {
                    // Its expiry index row is `index_key`: removed with it.
                    Some(len) => {
                        self.remove_entry(txn, stored, len, Some(expiry))?;
                        deleted += 1;
                    }
                    None => {
                        self.store
                            .expiries
                            .delete(txn, &index_key)
                            .map_err(|e| self.classify(e))?;
                    }
                }
            }
        }
    }
}

/// The expiry index row of the entry stored under `stored`: expiry (u64 BE) ++ stored key.
fn expiry_index_key(expiry: u64, stored: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + stored.len());
    k.extend_from_slice(&expiry.to_be_bytes());
    k.extend_from_slice(stored);
    k
}

/// Sends each request's result to its sink, one call per sink.
fn deliver(group: Vec<WriteRequest>, results: Vec<CacheResult<f64>>) {
    let mut by_sink: Vec<(Arc<dyn CompletionSink>, Vec<Completion>)> = Vec::new();
    for (request, result) in group.into_iter().zip(results) {
        let Some(reply) = request.reply else { continue };
        let completion = Completion {
            ticket: reply.ticket,
            result,
        };
        match by_sink
            .iter_mut()
            .find(|(s, _)| Arc::ptr_eq(s, &reply.sink))
        {
            Some((_, list)) => list.push(completion),
            None => by_sink.push((reply.sink, vec![completion])),
        }
    }
    for (sink, done) in by_sink {
        sink.complete(done);
    }
}
