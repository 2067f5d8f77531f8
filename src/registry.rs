//! The process-wide registry: one [`SharedStore`] per canonical directory, shared by every
//! handle and every worker thread, reference counted by open handles.
//!
//! The last handle's release closes the store without waiting for it: the write queue is
//! closed, and the writer thread, once it has committed what was queued, closes the
//! environment, removes the store from the registry and posts the close's completion (the
//! JS thread never waits for another process's write transaction). Until then the store
//! stays listed as closing: an open of the same directory waits for the close to finish
//! (LMDB allows one environment per file per process), and the exit drain covers it.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{CacheError, CacheResult};
use crate::eviction::BoundSetting;
use crate::store::{Store, StoreOptions};
use crate::writer::{
    spawn_writer, Completion, Durability, Reply, WriteKind, WriteQueue, WriteRequest,
};

/// A store, its write queue and the writer thread that drains it.
pub struct SharedStore {
    pub store: Arc<Store>,
    queue: Arc<WriteQueue>,
    /// Detached when the store closes: the writer thread ends by itself after closing it.
    _writer: JoinHandle<()>,
}

impl SharedStore {
    /// Queues lazy expiry deletes of `full_keys` at `now`, up to the queue's bound (the rest
    /// are dropped).
    pub fn enqueue_lazy_deletes(
        &self,
        full_keys: impl IntoIterator<Item = Vec<u8>>,
        now: u64,
        durability: Durability,
    ) {
        self.queue.push_lazy_deletes(full_keys, now, durability);
    }

    /// Queues a touch (a re-stamp of the entry's last access) for a read that found it stale;
    /// dropped when the queue of touches is full.
    pub fn enqueue_touch(&self, full_key: &[u8], durability: Durability) {
        self.queue.push_touch(full_key, durability);
    }

    /// Has the writer store an open's bounds for the directory, before any write queued after
    /// this call (nothing to do when both are `Keep`); `Err` if the store is shutting down.
    /// Reads check recency from now on when a bound is set.
    pub fn store_bounds(
        &self,
        max_entries: BoundSetting,
        max_bytes: BoundSetting,
        durability: Durability,
    ) -> Result<(), ()> {
        if (max_entries, max_bytes) == (BoundSetting::Keep, BoundSetting::Keep) {
            return Ok(());
        }
        let set = WriteRequest {
            kind: WriteKind::SetBounds {
                max_entries,
                max_bytes,
            },
            durability,
            reply: None,
        };
        self.queue.push_many(vec![set]).map_err(|_| ())?;
        let sets = |b| matches!(b, BoundSetting::Set(_));
        if sets(max_entries) || sets(max_bytes) {
            self.store.eviction.bounded.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Queues requests in order; gives them back if the store is shutting down.
    pub fn enqueue_many(&self, requests: Vec<WriteRequest>) -> Result<(), Vec<WriteRequest>> {
        self.queue.push_many(requests)
    }
}

/// The close of one store: begun by the last release, finished by its writer thread.
#[derive(Default)]
struct Closing {
    state: Mutex<ClosingState>,
    finished: Condvar,
}

#[derive(Default)]
struct ClosingState {
    begun: bool,
    done: bool,
    /// Completions to post once the environment is closed (the JS close() promises).
    replies: Vec<Reply>,
}

impl Closing {
    fn wait(&self) {
        let mut state = self.state.lock();
        while !state.done {
            self.finished.wait(&mut state);
        }
    }
}

/// Runs on the writer thread once it has drained its queue: takes the store off the registry,
/// closes the environment if nobody else holds it (otherwise the last holder's drop does),
/// then wakes whoever waits and posts the close's completions.
fn finish_close(closing: &Arc<Closing>) {
    let shared = {
        let mut registry = REGISTRY.lock();
        registry
            .iter()
            .position(|e| Arc::ptr_eq(&e.closing, closing))
            .map(|i| registry.swap_remove(i).shared)
    };
    if let Some(shared) = shared {
        if let Ok(shared) = Arc::try_unwrap(shared) {
            if let Ok(store) = Arc::try_unwrap(shared.store) {
                store.close();
            }
        }
    }
    let replies = {
        let mut state = closing.state.lock();
        state.done = true;
        std::mem::take(&mut state.replies)
    };
    closing.finished.notify_all();
    for reply in replies {
        reply.sink.complete(vec![Completion {
            ticket: reply.ticket,
            result: Ok(0.0),
        }]);
    }
}

struct Entry {
    id: DirId,
    shared: Arc<SharedStore>,
    handles: usize,
    closing: Arc<Closing>,
}

/// What makes two opens the same environment. LMDB's rule is one environment per file per
/// process (closing a second one drops the process's fcntl locks on `lock.mdb` while the
/// first still uses it), so on Unix the directory's device and inode decide: a bind mount or
/// any other second path to it joins the open environment. Elsewhere the canonical path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DirId {
    #[cfg(unix)]
    Inode { dev: u64, ino: u64 },
    #[cfg(not(unix))]
    Path(PathBuf),
}

fn dir_id(canonical: &Path) -> CacheResult<DirId> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(canonical).map_err(|e| CacheError::from_io(e, canonical))?;
        Ok(DirId::Inode {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
    #[cfg(not(unix))]
    {
        Ok(DirId::Path(canonical.to_path_buf()))
    }
}

/// Whether this process already holds LMDB's lock on `dir/lock.mdb` although this registry has
/// no environment there: another copy of this addon (a second copy of the package in
/// `node_modules`) has it open. Linux only (`/proc/locks`); elsewhere `false`.
fn locked_by_another_copy(dir: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(dir.join("lock.mdb")) else {
            return false;
        };
        let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
            return false;
        };
        holds_posix_lock(&locks, std::process::id(), meta.ino())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        false
    }
}

/// Whether `/proc/locks` text lists a POSIX lock of process `pid` on inode `ino`. Matched on
/// the inode alone, as lib/locks.cjs does: on overlay filesystems (containers) the device
/// /proc/locks shows may differ from the one stat() reports. Another file with the same inode
/// on another device, locked by this very process, is a coincidence that errs on the safe
/// side (the open is refused rather than a second environment opened on one file).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn holds_posix_lock(locks: &str, pid: u32, ino: u64) -> bool {
    let (pid, ino) = (pid.to_string(), ino.to_string());
    locks.lines().any(|line| {
        // "1: POSIX  ADVISORY  READ 1234 08:01:5678 0 0" ("->" marks waiters).
        let fields: Vec<&str> = line.split_whitespace().filter(|f| *f != "->").collect();
        fields.len() >= 6
            && fields[1] == "POSIX"
            && fields[4] == pid
            && fields[5].rsplit(':').next() == Some(ino.as_str())
    })
}

static REGISTRY: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// Opens (or joins) the store at `path`, creating the directory if needed. If the store there
/// is still closing (its last handle released, its writer finishing), waits for that first.
pub fn acquire(path: &Path, opts: &StoreOptions) -> CacheResult<Arc<SharedStore>> {
    let canonical = prepare_directory(path)?;
    let id = dir_id(&canonical)?;
    loop {
        let mut registry = REGISTRY.lock();
        let Some(entry) = registry.iter_mut().find(|e| e.id == id) else {
            return open_new(registry, id, &canonical, opts);
        };
        if entry.closing.state.lock().begun {
            let closing = Arc::clone(&entry.closing);
            drop(registry);
            closing.wait();
            continue;
        }
        entry.handles += 1;
        entry.shared.store.raise_max_map_size(opts.max_map_size);
        return Ok(Arc::clone(&entry.shared));
    }
}

fn open_new(
    mut registry: parking_lot::MutexGuard<'_, Vec<Entry>>,
    id: DirId,
    canonical: &Path,
    opts: &StoreOptions,
) -> CacheResult<Arc<SharedStore>> {
    if locked_by_another_copy(canonical) {
        return Err(CacheError::OpenInAnotherCopy {
            path: canonical.to_path_buf(),
        });
    }
    let store = Arc::new(Store::open(canonical, opts)?);
    let queue = Arc::new(WriteQueue::default());
    let closing = Arc::new(Closing::default());
    let on_exit = {
        let closing = Arc::clone(&closing);
        move || finish_close(&closing)
    };
    let writer = spawn_writer(Arc::clone(&store), Arc::clone(&queue), on_exit)
        .map_err(|e| CacheError::from_io(e, canonical))?;
    let shared = Arc::new(SharedStore {
        store,
        queue,
        _writer: writer,
    });
    registry.push(Entry {
        id,
        shared: Arc::clone(&shared),
        handles: 1,
        closing,
    });
    Ok(shared)
}

/// Gives back one handle. The last one begins the store's close (after its queued writes):
/// returns the close, or `None` when other handles remain.
fn begin_release(shared: Arc<SharedStore>, reply: Option<Reply>) -> Option<Arc<Closing>> {
    let mut registry = REGISTRY.lock();
    let entry = registry
        .iter_mut()
        .find(|e| Arc::ptr_eq(&e.shared, &shared))?;
    entry.handles -= 1;
    if entry.handles > 0 {
        return None;
    }
    let closing = Arc::clone(&entry.closing);
    {
        let mut state = closing.state.lock();
        state.begun = true;
        state.replies.extend(reply);
    }
    // Under the registry lock: an open of the same directory from now on waits for the close.
    entry.shared.queue.close();
    Some(closing)
}

/// Gives back one handle; the last one closes the store (after its queued writes) and waits
/// until it is closed. For a thread going away and for tests.
pub fn release(shared: Arc<SharedStore>) {
    if let Some(closing) = begin_release(shared, None) {
        closing.wait();
    }
}

/// Gives back one handle without waiting: true when it was the last one, and `reply` will
/// complete (with 0) from the writer thread once the environment is closed; false when other
/// handles remain (the reply is dropped: nothing to wait for).
pub fn release_then_reply(shared: Arc<SharedStore>, reply: Reply) -> bool {
    begin_release(shared, Some(reply)).is_some()
}

/// Waits until the writer of every store open in this process has committed everything
/// queued so far, or until `timeout` has passed; true if all did. For `process.on('exit')`.
pub fn drain_all(timeout: Duration) -> bool {
    // Not under the registry lock: a writer may need it meanwhile (no path takes it today,
    // but an open or close on another thread must not wait for this drain).
    let stores: Vec<Arc<SharedStore>> = REGISTRY
        .lock()
        .iter()
        .map(|e| Arc::clone(&e.shared))
        .collect();
    let deadline = Instant::now() + timeout;
    stores.iter().all(|s| s.queue.wait_idle(deadline))
}

/// Number of stores open in this process, closing ones included (for tests and stats).
pub fn open_store_count() -> usize {
    REGISTRY.lock().len()
}

fn prepare_directory(path: &Path) -> CacheResult<PathBuf> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_dir() => {
            return Err(CacheError::NotADirectory {
                path: path.to_path_buf(),
            })
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(path).map_err(|e| CacheError::from_io(e, path))?;
        }
        Err(e) => return Err(CacheError::from_io(e, path)),
    }
    std::fs::canonicalize(path).map_err(|e| CacheError::from_io(e, path))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::Payload;
    use crate::writer::{Completion, CompletionSink, Durability, Reply, WriteKind};
    use std::sync::mpsc;

    #[test]
    fn a_lock_is_matched_on_pid_and_inode_whatever_device_proc_locks_shows() {
        let locks = "1: POSIX  ADVISORY  WRITE 4242 00:2f:1234 0 0\n\
                     2: POSIX  ADVISORY  READ 77 fe:00:999 100 100\n\
                     3: -> POSIX  ADVISORY  WRITE 4243 08:01:555 0 EOF\n\
                     4: FLOCK  ADVISORY  WRITE 4244 08:01:666 0 EOF\n";
        // Overlayfs: stat() reports another device than the 00:2f shown; the inode matches.
        assert!(holds_posix_lock(locks, 4242, 1234));
        assert!(holds_posix_lock(locks, 4243, 555), "a waiter's line");
        assert!(
            !holds_posix_lock(locks, 4242, 999),
            "another process's lock"
        );
        assert!(
            !holds_posix_lock(locks, 77, 99),
            "an inode that only ends the same"
        );
        assert!(
            !holds_posix_lock(locks, 4244, 666),
            "flock locks are not LMDB's"
        );
        assert!(!holds_posix_lock("", 4242, 1234));
    }

    pub(crate) fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lmdb-cache-rs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    struct ChannelSink(Mutex<mpsc::Sender<(u32, CacheResult<f64>)>>);
    impl CompletionSink for ChannelSink {
        fn complete(&self, done: Vec<Completion>) {
            for c in done {
                let _ = self.0.lock().send((c.ticket, c.result));
            }
        }
    }

    /// Sends requests to a store's writer and receives their completions.
    pub(crate) struct Replies {
        sink: Arc<dyn CompletionSink>,
        rx: mpsc::Receiver<(u32, CacheResult<f64>)>,
    }

    impl Replies {
        pub(crate) fn new() -> Replies {
            let (tx, rx) = mpsc::channel();
            Replies {
                sink: Arc::new(ChannelSink(Mutex::new(tx))),
                rx,
            }
        }

        fn request(&self, kind: WriteKind, ticket: u32) -> WriteRequest {
            WriteRequest {
                kind,
                durability: Durability::Durable,
                reply: Some(Reply {
                    sink: Arc::clone(&self.sink),
                    ticket,
                }),
            }
        }

        /// Queues `kinds` as one group (tickets 1, 2, ...) and returns their completions in
        /// ticket order.
        pub(crate) fn run(
            &self,
            shared: &SharedStore,
            kinds: Vec<WriteKind>,
        ) -> Vec<CacheResult<f64>> {
            let n = kinds.len();
            let group = kinds
                .into_iter()
                .zip(1..)
                .map(|(kind, ticket)| self.request(kind, ticket))
                .collect();
            assert!(shared.enqueue_many(group).is_ok());
            let mut done: Vec<_> = (0..n).map(|_| self.rx.recv().unwrap()).collect();
            done.sort_by_key(|(ticket, _)| *ticket);
            done.into_iter().map(|(_, result)| result).collect()
        }
    }

    /// Runs `test` on a store in a fresh temp directory, then releases and removes it.
    pub(crate) fn with_store(name: &str, test: impl FnOnce(&SharedStore)) {
        let dir = temp_dir(name);
        let shared = acquire(&dir, &StoreOptions::default()).unwrap();
        test(&shared);
        release(shared);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn encode_put(key: &[u8], json: &[u8]) -> Vec<u8> {
        let mut b = 1u32.to_le_bytes().to_vec();
        b.extend_from_slice(&[1, 0]);
        b.extend_from_slice(&(key.len() as u32).to_le_bytes());
        b.extend_from_slice(key);
        b.extend_from_slice(&(json.len() as u32).to_le_bytes());
        b.extend_from_slice(json);
        b
    }

    fn read_json(shared: &SharedStore, key: &[u8]) -> Option<Vec<u8>> {
        shared
            .store
            .lookup(key, |r| {
                r.and_then(|r| match r.payload {
                    Payload::Undefined => None,
                    Payload::Json(j) => Some(j.to_vec()),
                    Payload::MsgPack(m) => {
                        let v: serde_json::Value = rmp_serde::from_slice(m).unwrap();
                        Some(serde_json::to_vec(&v).unwrap())
                    }
                })
            })
            .unwrap()
    }

    #[test]
    fn the_writer_keeps_a_bounded_directory_within_its_bound_and_its_totals_exact() {
        use crate::eviction::{count_totals, read_totals, BoundSetting};
        with_store("bounded", |shared| {
            let replies = Replies::new();
            let set = WriteKind::SetBounds {
                max_entries: BoundSetting::Set(50),
                max_bytes: BoundSetting::Keep,
            };
            let puts = (0..200)
                .map(|i| WriteKind::batch(encode_put(format!("k{i:03}").as_bytes(), b"[1,2]")));
            let done = replies.run(shared, std::iter::once(set).chain(puts).collect());
            assert!(done.iter().all(Result::is_ok));
            // One more transaction (a delete of an absent key) must find the totals fresh.
            let del = b"\x01\x00\x00\x00\x02\x00\x01\x00\x00\x00z".to_vec();
            assert!(replies.run(shared, vec![WriteKind::batch(del)])[0].is_ok());
            let store = &shared.store;
            store
                .read(|txn| {
                    let counted = count_totals(store, txn).unwrap();
                    assert_eq!(counted.entries, 50);
                    assert_eq!(
                        read_totals(store, txn, txn.id() as u64).unwrap(),
                        Some(counted)
                    );
                    Ok(())
                })
                .unwrap();
            // (The 200 puts share one access stamp: which 50 stay is not LRU's to say.)
            let evictions = store
                .eviction
                .evictions
                .load(std::sync::atomic::Ordering::Relaxed);
            assert_eq!(evictions, 150);
        });
    }

    /// One batch operation: put `key` (with `value` JSON and, if given, an expiry) or delete it.
    fn encode_op(out: &mut Vec<u8>, key: &[u8], put: Option<(&[u8], Option<f64>)>) {
        let (kind, flags) = match put {
            Some((_, Some(_))) => (1u8, 1u8),
            Some((_, None)) => (1, 0),
            None => (2, 0),
        };
        out.extend_from_slice(&[kind, flags]);
        if let Some((_, Some(x))) = put {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        if let Some((value, _)) = put {
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
        }
    }

    #[test]
    fn random_puts_deletes_expiries_and_sweeps_keep_the_totals_equal_to_a_full_count() {
        use crate::eviction::{count_totals, read_totals, BoundSetting};
        with_store("totals-random", |shared| {
            let replies = Replies::new();
            let bounds = WriteKind::SetBounds {
                max_entries: BoundSetting::Set(40),
                max_bytes: BoundSetting::Set(3_000),
            };
            assert!(replies.run(shared, vec![bounds])[0].is_ok());
            let mut seed = 0x2545_f491_4f6c_dd1du64;
            let mut next = |n: u64| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed % n
            };
            for _round in 0..40 {
                let mut group = Vec::new();
                for _ in 0..=next(6) {
                    let mut batch = Vec::new();
                    let ops = 1 + next(8) as u32;
                    batch.extend_from_slice(&ops.to_le_bytes());
                    for _ in 0..ops {
                        let key = format!("k{}", next(120));
                        let value = format!("\"{}\"", "v".repeat(next(200) as usize));
                        // Some already expired (swept or evicted first), some far ahead.
                        let expiry = match next(4) {
                            0 => Some(1.0),
                            1 => Some(4e12),
                            _ => None,
                        };
                        let put = (next(4) != 0).then_some((value.as_bytes(), expiry));
                        encode_op(&mut batch, key.as_bytes(), put);
                    }
                    group.push(WriteKind::batch(batch));
                }
                if next(5) == 0 {
                    group.push(WriteKind::Sweep { now: 2 });
                }
                assert!(replies.run(shared, group).iter().all(Result::is_ok));
                let store = &shared.store;
                store
                    .read(|txn| {
                        let counted = count_totals(store, txn).unwrap();
                        let kept = read_totals(store, txn, txn.id() as u64).unwrap();
                        assert_eq!(kept, Some(counted));
                        assert!(
                            counted.entries <= 40 && counted.bytes <= 3_000,
                            "{counted:?}"
                        );
                        Ok(())
                    })
                    .unwrap();
            }
            let evictions = shared
                .store
                .eviction
                .evictions
                .load(std::sync::atomic::Ordering::Relaxed);
            assert!(
                evictions > 50,
                "the bounds were exercised: {evictions} evictions"
            );
        });
    }

    #[test]
    fn a_panic_in_the_writer_fails_its_group_with_err_internal_and_later_writes_still_land() {
        with_store("panic", |shared| {
            let replies = Replies::new();
            // One group: a put, then a request that panics; the whole group fails, nothing lands.
            let failed = replies.run(
                shared,
                vec![
                    WriteKind::batch(encode_put(b"a", b"1")),
                    WriteKind::PanicForTest,
                ],
            );
            for result in &failed {
                assert!(
                    matches!(result, Err(CacheError::Internal { detail }) if detail.contains("as the test asked")),
                    "{result:?}"
                );
            }
            assert_eq!(
                read_json(shared, b"a"),
                None,
                "the group's transaction was aborted"
            );
            // The writer thread lives on.
            let done = replies.run(shared, vec![WriteKind::batch(encode_put(b"b", b"2"))]);
            assert_eq!(done, vec![Ok(0.0)]);
            assert_eq!(read_json(shared, b"b").as_deref(), Some(&b"2"[..]));
        });
    }

    #[test]
    fn a_panic_while_a_failed_group_is_retried_one_by_one_fails_only_that_request() {
        with_store("panic-retry", |shared| {
            // The malformed batch fails the group's transaction before the panic is reached, so
            // the group is retried one request per transaction.
            let done = Replies::new().run(
                shared,
                vec![
                    WriteKind::batch(encode_put(b"a", b"1")),
                    WriteKind::batch(vec![1, 2, 3]),
                    WriteKind::PanicForTest,
                    WriteKind::batch(encode_put(b"b", b"2")),
                ],
            );
            assert_eq!(done[0], Ok(0.0));
            assert!(
                matches!(done[1], Err(CacheError::InvalidRequest { .. })),
                "{:?}",
                done[1]
            );
            assert!(
                matches!(done[2], Err(CacheError::Internal { .. })),
                "{:?}",
                done[2]
            );
            assert_eq!(done[3], Ok(0.0));
            assert_eq!(read_json(shared, b"a").as_deref(), Some(&b"1"[..]));
            assert_eq!(read_json(shared, b"b").as_deref(), Some(&b"2"[..]));
        });
    }

    #[test]
    fn a_sweep_removes_expiry_index_rows_too_short_to_index_anything() {
        with_store("short-row", |shared| {
            {
                let (_g, mut txn) = shared.store.write_txn(None).unwrap();
                shared.store.expiries.put(&mut txn, b"abc", b"").unwrap();
                // Exactly an expiry, no stored key.
                shared.store.expiries.put(&mut txn, &[0u8; 8], b"").unwrap();
                txn.commit().unwrap();
            }
            let replies = Replies::new();
            for _ in 0..2 {
                let done = replies.run(shared, vec![WriteKind::Sweep { now: u64::MAX }]);
                assert_eq!(done, vec![Ok(0.0)]);
            }
            let rows = shared
                .store
                .read(|txn| Ok(shared.store.expiries.len(txn).unwrap()))
                .unwrap();
            assert_eq!(rows, 0);
        });
    }

    #[test]
    fn an_undecodable_record_fails_reads_naming_its_key_and_a_set_or_del_of_that_key_repairs_it() {
        use crate::keys::StoredKey;
        with_store("corrupt", |shared| {
            let corrupt = |key: &[u8]| {
                let (_g, mut txn) = shared.store.write_txn(None).unwrap();
                let stored = StoredKey::encode(key);
                shared
                    .store
                    .entries
                    .put(&mut txn, stored.as_bytes(), b"\xff\xff")
                    .unwrap();
                txn.commit().unwrap();
            };
            let replies = Replies::new();
            let run = |kind| replies.run(shared, vec![kind]);
            corrupt(b"bad");
            let read = shared.store.lookup(b"bad", |_| ());
            assert!(
                matches!(&read, Err(CacheError::CorruptRecord { detail }) if detail.contains("\"bad\"")),
                "{read:?}"
            );
            assert_eq!(
                run(WriteKind::Sweep { now: u64::MAX }),
                vec![Ok(0.0)],
                "a sweep passes it by"
            );
            assert_eq!(
                run(WriteKind::batch(encode_put(b"bad", b"1"))),
                vec![Ok(0.0)]
            );
            assert_eq!(
                read_json(shared, b"bad").as_deref(),
                Some(&b"1"[..]),
                "overwritten"
            );
            corrupt(b"bad");
            let mut del = 1u32.to_le_bytes().to_vec();
            del.extend_from_slice(&[2, 0]);
            del.extend_from_slice(&3u32.to_le_bytes());
            del.extend_from_slice(b"bad");
            assert_eq!(run(WriteKind::batch(del)), vec![Ok(0.0)]);
            assert!(
                shared.store.lookup(b"bad", |r| r.is_none()).unwrap(),
                "deleted"
            );
        });
    }

    #[test]
    fn drain_all_returns_once_every_queued_write_is_committed_and_its_reply_delivered() {
        with_store("drain", |shared| {
            let replies = Replies::new();
            let group = (0..200u32)
                .map(|i| {
                    let key = format!("k{i}");
                    replies.request(WriteKind::batch(encode_put(key.as_bytes(), b"1")), i + 1)
                })
                .collect();
            assert!(shared.enqueue_many(group).is_ok());
            // No reply awaited: the drain alone must wait for the commits.
            assert!(drain_all(Duration::from_secs(30)));
            let delivered: Vec<_> = replies.rx.try_iter().collect();
            assert_eq!(
                delivered.len(),
                200,
                "every reply delivered before the drain returns"
            );
            assert!(delivered.iter().all(|(_, r)| r.is_ok()));
            for i in 0..200 {
                assert!(
                    read_json(shared, format!("k{i}").as_bytes()).is_some(),
                    "k{i}"
                );
            }
        });
    }

    #[test]
    fn two_acquires_share_one_store_and_the_last_release_closes_it() {
        let dir = temp_dir("share");
        let a = acquire(&dir, &StoreOptions::default()).unwrap();
        let b = acquire(&dir.join("."), &StoreOptions::default()).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let done = Replies::new().run(&a, vec![WriteKind::batch(encode_put(b"k", b"1"))]);
        assert_eq!(done, vec![Ok(0.0)]);
        assert_eq!(read_json(&b, b"k").as_deref(), Some(&b"1"[..]));
        release(a);
        assert_eq!(read_json(&b, b"k").as_deref(), Some(&b"1"[..]));
        release(b);
        // Reopening right after the last release works and finds the data.
        let c = acquire(&dir, &StoreOptions::default()).unwrap();
        assert_eq!(read_json(&c, b"k").as_deref(), Some(&b"1"[..]));
        release(c);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_path_is_refused_with_not_a_directory() {
        let dir = temp_dir("file");
        std::fs::write(&dir, b"x").unwrap();
        let err = acquire(&dir, &StoreOptions::default()).err().unwrap();
        assert_eq!(err.code(), "ERR_NOT_A_DIRECTORY");
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn a_foreign_data_file_is_refused_with_invalid_database() {
        let dir = temp_dir("foreign");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("data.mdb"), vec![0x42u8; 64 * 1024]).unwrap();
        let err = acquire(&dir, &StoreOptions::default()).err().unwrap();
        assert_eq!(err.code(), "ERR_INVALID_DATABASE");
        assert_eq!(open_store_count_for(&dir), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn open_store_count_for(dir: &Path) -> usize {
        let id = dir_id(&std::fs::canonicalize(dir).unwrap()).unwrap();
        REGISTRY.lock().iter().filter(|e| e.id == id).count()
    }
}
