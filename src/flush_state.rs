//! The flush record of a cache directory (`flush-state`): the newest transaction known to be
//! on disk and the boot of the OS that recorded it; and the decision, at open, to roll back a
//! transaction an OS crash may have left incomplete.
//!
//! Why: 'durable' commits are made without an fsync (MDB_NOSYNC) and flushed by the flusher
//! thread, off LMDB's writer lock, so a flush overlaps the next transaction. Nothing orders a
//! commit's meta page after its data pages on the way to the disk, so after an OS crash the
//! newest meta page may point at pages that never got there. The writer keeps one rule (see
//! `writer`): a transaction commits only once the one before it is flushed. LMDB reuses no page
//! of the two newest snapshots, so that previous snapshot is always whole on disk. At the first
//! open after the OS started again, a newest transaction not recorded here as flushed is rolled
//! back to it (MDB_PREVSNAPSHOT): the file stays intact and at most the last commit is undone,
//! which is what 'durable' has always promised.
//!
//! Invariants:
//! * A transaction id is recorded only after an fsync that began after its commit (or a
//!   commit LMDB synced itself), so the record never claims more than the disk holds. It may
//!   claim less (written without an fsync, or by a process killed first): that only costs a
//!   rollback of a commit that was in fact whole, which 'durable' allows. 'strict' commits
//!   fsync the record before they are acknowledged.
//! * Every process takes the file's lock (flock) to read or write it; the decision at open is
//!   made under that lock, before the environment is opened, so no process of the new boot
//!   reads the newest snapshot before it is judged.
//! * Only where the OS names its boot (Linux) is any of this used; elsewhere 'durable' commits
//!   fsync their data inside the commit, as before (see `Writer`).
//! * The record names the `data.mdb` it describes (its inode): a file put in its place (a
//!   compacted copy, synced before the rename) starts a new record.
//! * What an open writes is fsynced (the file and, once, the directory): a record missing
//!   after a crash means no commit here ever skipped its fsync. The flusher's progress is
//!   written without an fsync: lagging is safe.
//!
//! Layout, 72 bytes: `LMCFLSH1`, the boot id (48 bytes, zero padded), the flushed id, the
//! inode of `data.mdb` (0: not known yet) (u64 LE each).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::error::{CacheError, CacheResult};
use crate::meta_check::read_at;

/// The record's name in the cache directory.
pub const FLUSH_STATE_FILE: &str = "flush-state";
const MAGIC: &[u8; 8] = b"LMCFLSH1";
const BOOT_LEN: usize = 48;
const RECORD_LEN: usize = 8 + BOOT_LEN + 16;

pub type BootId = [u8; BOOT_LEN];

/// This boot of the OS, where the OS names it.
pub fn boot_id() -> Option<BootId> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let text = std::fs::read("/proc/sys/kernel/random/boot_id").ok()?;
    let text = text.trim_ascii();
    if text.is_empty() || text.len() > BOOT_LEN {
        return None;
    }
    let mut id = [0u8; BOOT_LEN];
    id[..text.len()].copy_from_slice(text);
    Some(id)
}

/// What the record says: this boot recorded every transaction up to `flushed` of the
/// `data.mdb` with inode `file` as on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub boot: BootId,
    pub flushed: u64,
    pub file: u64,
}

/// What the file holds: `None` when it is empty (just created: the directory was never
/// written with commits that skip their fsync), `Some(None)` when it is damaged.
type Recorded = Option<Option<Entry>>;

/// The inode of `dir/data.mdb` (0 when it is not there yet, or the OS has none).
fn file_id(dir: &Path) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(dir.join("data.mdb")).map_or(0, |m| m.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        0
    }
}

pub struct FlushState {
    dir: PathBuf,
    path: PathBuf,
    boot: BootId,
    /// The file; the mutex orders this process's threads (flock does not: they share it).
    file: Mutex<File>,
}

/// What the open should do about the newest transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtOpen {
    /// It is whole (recorded as flushed, or nothing since the OS started can have lost it).
    Keep,
    /// It may be incomplete on disk: open the previous snapshot and commit over it.
    RollBack,
}

impl FlushState {
    /// Opens (creating) the record of `dir` for this boot; `None` where the OS names no boot.
    pub fn open(dir: &Path) -> CacheResult<Option<FlushState>> {
        let Some(boot) = boot_id() else {
            return Ok(None);
        };
        FlushState::open_as(dir, boot).map(Some)
    }

    /// [`FlushState::open`] as boot `boot` (tests play a reboot with it).
    pub fn open_as(dir: &Path, boot: BootId) -> CacheResult<FlushState> {
        let path = dir.join(FLUSH_STATE_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| CacheError::from_io(e, &path))?;
        Ok(FlushState {
            dir: dir.to_path_buf(),
            path,
            boot,
            file: Mutex::new(file),
        })
    }

    /// Under the file's lock: judges the newest transaction (`newest`, read from data.mdb by
    /// the caller's `newest` closure), runs `roll_back` if it must, and records this boot with
    /// what is then known to be on disk. Every open of a writable environment goes through
    /// here first.
    pub fn at_open(
        &self,
        newest: impl Fn() -> u64,
        roll_back: impl FnOnce() -> CacheResult<()>,
    ) -> CacheResult<AtOpen> {
        let file = self.file.lock();
        let _locked = FileLock::take(&file).map_err(|e| self.io(e))?;
        let recorded = read_record(&file).map_err(|e| self.io(e))?;
        let data = file_id(&self.dir);
        let newest_now = newest();
        let decision = judge(recorded, &self.boot, newest_now, data);
        let flushed = match (decision, recorded) {
            (AtOpen::Keep, Some(Some(e))) if e.boot == self.boot => {
                if same_file(e.file, data) {
                    return Ok(decision);
                }
                // Replaced in this boot: nothing of the new file is known to be on disk.
                0
            }
            // Created just now: claim nothing (no commit here skipped its fsync so far).
            (AtOpen::Keep, None) => 0,
            // The first open since the OS started: what the disk holds is all there is.
            (AtOpen::Keep, _) => newest_now,
            // Read again: the rollback committed over the previous snapshot.
            (AtOpen::RollBack, _) => {
                roll_back()?;
                newest()
            }
        };
        let entry = Entry {
            boot: self.boot,
            flushed,
            file: data,
        };
        write_record(&file, &entry).map_err(|e| self.io(e))?;
        file.sync_data().map_err(|e| self.io(e))?;
        if recorded.is_none() {
            sync_dir(&self.dir).map_err(|e| self.io(e))?;
        }
        Ok(decision)
    }

    /// Records that every transaction up to `txn_id` is on disk; with `durable`, fsyncs the
    /// record too (a 'strict' commit must not be rolled back after an OS crash).
    pub fn record(&self, txn_id: u64, durable: bool) -> CacheResult<()> {
        let file = self.file.lock();
        let _locked = FileLock::take(&file).map_err(|e| self.io(e))?;
        let data = file_id(&self.dir);
        let known = match read_record(&file).map_err(|e| self.io(e))? {
            Some(Some(e)) if e.boot == self.boot && same_file(e.file, data) => e.flushed,
            _ => 0,
        };
        if txn_id > known {
            let entry = Entry {
                boot: self.boot,
                flushed: txn_id,
                file: data,
            };
            write_record(&file, &entry).map_err(|e| self.io(e))?;
        }
        if durable {
            file.sync_data().map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    fn io(&self, e: io::Error) -> CacheError {
        CacheError::from_io(e, &self.path)
    }
}

/// The rule: the newest transaction is kept when the record was just created, when this boot
/// already recorded it (no OS crash since), when the record describes a file since replaced,
/// or when it is recorded as flushed.
fn judge(recorded: Recorded, boot: &BootId, newest: u64, file: u64) -> AtOpen {
    match recorded {
        None => AtOpen::Keep,
        Some(Some(e)) if &e.boot == boot => AtOpen::Keep,
        Some(Some(e)) if !same_file(e.file, file) => AtOpen::Keep,
        Some(Some(e)) if e.flushed >= newest => AtOpen::Keep,
        // A fresh environment has no previous snapshot worth going back to.
        _ if newest <= 1 => AtOpen::Keep,
        _ => AtOpen::RollBack,
    }
}

/// Inodes 0 stand for "not known yet" (the record was made before LMDB created the file).
fn same_file(recorded: u64, current: u64) -> bool {
    recorded == 0 || current == 0 || recorded == current
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// flock on the record, released on drop.
struct FileLock<'f>(&'f File);

impl<'f> FileLock<'f> {
    fn take(file: &'f File) -> io::Result<FileLock<'f>> {
        file.lock()?;
        Ok(FileLock(file))
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn read_record(file: &File) -> io::Result<Recorded> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut buf = [0u8; RECORD_LEN];
    if len < RECORD_LEN as u64 || read_at(file, &mut buf, 0).is_err() || &buf[..8] != MAGIC {
        return Ok(Some(None));
    }
    let mut boot = [0u8; BOOT_LEN];
    boot.copy_from_slice(&buf[8..8 + BOOT_LEN]);
    let u64_at = |at: usize| u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"));
    Ok(Some(Some(Entry {
        boot,
        flushed: u64_at(8 + BOOT_LEN),
        file: u64_at(16 + BOOT_LEN),
    })))
}

fn write_record(file: &File, entry: &Entry) -> io::Result<()> {
    let mut buf = [0u8; RECORD_LEN];
    buf[..8].copy_from_slice(MAGIC);
    buf[8..8 + BOOT_LEN].copy_from_slice(&entry.boot);
    buf[8 + BOOT_LEN..16 + BOOT_LEN].copy_from_slice(&entry.flushed.to_le_bytes());
    buf[16 + BOOT_LEN..].copy_from_slice(&entry.file.to_le_bytes());
    write_all_at(file, &buf, 0)
}

#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, buf, offset)?;
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
