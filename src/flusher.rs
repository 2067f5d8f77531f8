//! The flusher thread: fsyncs the data file after commits made without an fsync, off LMDB's
//! writer lock, so the flush of one commit overlaps the next transaction (see `writer` for the
//! rule that keeps the file intact: a commit waits until the one before it is flushed).
//!
//! It fsyncs its own descriptor of `data.mdb` and never calls into LMDB, so it shares no state
//! with the environment but the file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{CacheError, CacheResult};
use crate::flush_state::FlushState;

#[derive(Default)]
struct Progress {
    /// The newest transaction id whose flush was asked for.
    requested: u64,
    /// Every transaction up to this id is on disk (as far as fsync promises).
    flushed: u64,
    /// The last flush failed: what it reported. Cleared by the next success.
    failed: Option<CacheError>,
    closing: bool,
}

struct Shared {
    state: Mutex<Progress>,
    /// Signals the thread (work or closing) and waiters (progress).
    changed: Condvar,
}

pub struct Flusher {
    shared: Arc<Shared>,
    file: Arc<File>,
    /// `data.mdb`, for the errors of an fsync done on the caller's thread.
    path: PathBuf,
    record: Arc<FlushState>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Opens `data.mdb` in `dir` a second time and starts the thread, which notes each flush
    /// in the directory's flush `record`.
    pub fn start(dir: &Path, record: Arc<FlushState>) -> CacheResult<Flusher> {
        let path = dir.join("data.mdb");
        let file = Arc::new(
            std::fs::OpenOptions::new()
                .read(true)
                .open(&path)
                .map_err(|e| CacheError::from_io(e, &path))?,
        );
        let shared = Arc::new(Shared {
            state: Mutex::new(Progress::default()),
            changed: Condvar::new(),
        });
        let thread = {
            let (shared, file) = (Arc::clone(&shared), Arc::clone(&file));
            let (path, record) = (path.clone(), Arc::clone(&record));
            std::thread::Builder::new()
                .name("lmdb-cache-flusher".into())
                .spawn(move || run(&shared, &file, &path, &record))
                .map_err(|e| CacheError::from_io(e, dir))?
        };
        Ok(Flusher {
            shared,
            file,
            path,
            record,
            thread: Some(thread),
        })
    }

    /// Asks for everything up to transaction `txn_id` to be flushed.
    pub fn request(&self, txn_id: u64) {
        let mut state = self.shared.state.lock();
        if txn_id > state.requested {
            state.requested = txn_id;
            self.shared.changed.notify_all();
        }
    }

    /// Notes that everything up to `txn_id` is on disk (flushed by LMDB's own commit).
    pub fn note_flushed(&self, txn_id: u64) {
        let mut state = self.shared.state.lock();
        state.flushed = state.flushed.max(txn_id);
        state.requested = state.requested.max(txn_id);
        self.shared.changed.notify_all();
    }

    /// Makes sure everything up to `txn_id` is on disk: waits for the thread when it was asked
    /// to flush that far, and fsyncs here otherwise (a commit of another process, or one
    /// made with 'nosync').
    pub fn ensure_flushed(&self, txn_id: u64) -> CacheResult<()> {
        let mut state = self.shared.state.lock();
        while state.flushed < txn_id && state.requested >= txn_id && state.failed.is_none() {
            self.shared.changed.wait(&mut state);
        }
        if state.flushed >= txn_id {
            return Ok(());
        }
        drop(state);
        self.file
            .sync_data()
            .map_err(|e| CacheError::from_io(e, &self.path))?;
        self.note_flushed(txn_id);
        // Recorded by the thread with its own flushes (at most every RECORD_EVERY).
        self.shared.state.lock().failed = None;
        Ok(())
    }

    /// The directory's flush record.
    pub fn record(&self) -> &FlushState {
        &self.record
    }
}

impl Drop for Flusher {
    /// Flushes what was asked for, then stops the thread.
    fn drop(&mut self) {
        self.shared.state.lock().closing = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How often the flusher records its progress in `flush-state` at most. Writing that file
/// after every flush costs an awaited `set` about a fifth of its speed (ext4: it makes the
/// next fdatasync of data.mdb commit the journal); a record that lags is safe (see
/// `flush_state`), and it catches up once the writes pause, and at close.
const RECORD_EVERY: Duration = Duration::from_secs(1);

fn run(shared: &Shared, file: &File, path: &Path, record: &FlushState) {
    let mut state = shared.state.lock();
    let mut recorded = 0u64;
    let mut last_record = Instant::now();
    loop {
        if state.flushed > recorded && (state.closing || last_record.elapsed() >= RECORD_EVERY) {
            let upto = state.flushed;
            drop(state);
            let _ = record.record(upto, false);
            (recorded, last_record) = (upto, Instant::now());
            state = shared.state.lock();
            continue;
        }
        if state.requested > state.flushed {
            let target = state.requested;
            drop(state);
            let result = file.sync_data();
            state = shared.state.lock();
            match result {
                Ok(()) => {
                    state.flushed = state.flushed.max(target);
                    state.failed = None;
                }
                Err(e) => state.failed = Some(CacheError::from_io(e, path)),
            }
            shared.changed.notify_all();
            if state.failed.is_some() {
                if state.closing {
                    return;
                }
                // A waiter fsyncs for itself; do not spin on a failing device.
                shared.changed.wait(&mut state);
            }
            continue;
        }
        if state.closing {
            return;
        }
        if state.flushed > recorded {
            let left = RECORD_EVERY.saturating_sub(last_record.elapsed());
            shared.changed.wait_for(&mut state, left);
        } else {
            shared.changed.wait(&mut state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flusher(name: &str) -> (std::path::PathBuf, Flusher) {
        let dir = std::env::temp_dir().join(format!("lmdb-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("data.mdb"), b"pages").unwrap();
        let record = FlushState::open_as(&dir, [1; 48]).unwrap();
        let flusher = Flusher::start(&dir, Arc::new(record)).unwrap();
        (dir, flusher)
    }

    #[test]
    fn a_commit_waits_for_the_asked_flush_and_flushes_what_nobody_asked_for_itself() {
        let (dir, flusher) = flusher("flusher-wait");
        flusher.request(5);
        flusher.ensure_flushed(5).unwrap();
        assert!(flusher.shared.state.lock().flushed >= 5);
        // Another process's commit (never asked for here): fsynced by the caller.
        flusher.ensure_flushed(9).unwrap();
        assert_eq!(flusher.shared.state.lock().flushed, 9);
        flusher.note_flushed(12);
        flusher.ensure_flushed(11).unwrap();
        assert_eq!(flusher.shared.state.lock().flushed, 12);
        drop(flusher);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn dropping_the_flusher_flushes_what_was_asked_and_records_it() {
        let (dir, flusher) = flusher("flusher-drop");
        flusher.request(3);
        let shared = Arc::clone(&flusher.shared);
        drop(flusher);
        assert_eq!(shared.state.lock().flushed, 3);
        let state = FlushState::open_as(&dir, [1; 48]).unwrap();
        state.record(2, false).unwrap(); // lower: ignored
        let text = std::fs::read(dir.join(crate::flush_state::FLUSH_STATE_FILE)).unwrap();
        assert_eq!(u64::from_le_bytes(text[56..64].try_into().unwrap()), 3);
        assert_eq!(text.len(), 72);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
