//! The identity of the lock file an environment was opened with. LMDB coordinates processes
//! through `lock.mdb` (the writer mutex and the reader table). Deleted or replaced while this
//! process has the environment open (forbidden: see the README), this process and those that
//! open the directory afterwards use different lock files: their writers no longer exclude
//! each other and their readers are invisible to each other's writers, so pages are reused
//! under reads and the B-tree can be damaged (a scan then may cycle for ever). Scans, stats and
//! writes check the identity first and fail with ERR_LOCK_FILE_REPLACED instead.

use std::path::Path;

use crate::error::{CacheError, CacheResult};

/// The device and inode `lock.mdb` had at open; `None` where they cannot be had (not Unix).
pub(crate) struct LockFileId(Option<(u64, u64)>);

impl LockFileId {
    /// The identity of `dir`'s lock file now (call right after LMDB opened it).
    pub(crate) fn of(dir: &Path) -> LockFileId {
        LockFileId(identity(dir))
    }

    /// Fails when `dir`'s lock file is gone or is another file than at open. One stat():
    /// cheap next to a page of a scan or a commit, so not done on single reads.
    pub(crate) fn check(&self, dir: &Path) -> CacheResult<()> {
        match self.0 {
            Some(at_open) if identity(dir) != Some(at_open) => Err(CacheError::LockFileReplaced {
                path: dir.to_path_buf(),
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(unix)]
fn identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir.join("lock.mdb"))
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(_dir: &Path) -> Option<(u64, u64)> {
    None
}
