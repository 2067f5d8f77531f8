//! The disk reserve: a file of real (written, not sparse) bytes in the cache directory, given
//! up when a request that only deletes cannot commit because the device is full.
//!
//! Why: LMDB copies every page it changes (copy-on-write), so even a delete needs new pages
//! before it frees old ones. On a device filled to its last byte (by this cache, another
//! process sharing it, or another program) no delete could commit, and the cache could never
//! be emptied. Removing the reserve gives the delete the room it needs; the pages it frees are
//! then reused by later writes inside data.mdb.
//!
//! Invariants:
//! * The reserve is one file, [`RESERVE_FILE`], shared by every process on the directory; it
//!   only ever appears whole (written under a temporary name, then renamed), so its presence
//!   means [`RESERVE_BYTES`] bytes can be handed back.
//! * Everything here is best effort: a reserve that cannot be made (no room, no permission)
//!   is simply absent, and nothing in the cache depends on it but the last-resort retry.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// The reserve's name in the cache directory.
pub const RESERVE_FILE: &str = "disk-reserve";
/// Enough for a few hundred pages: deletes committed in parts of one operation need a few
/// pages each, and free pages for the next part as they commit.
pub const RESERVE_BYTES: u64 = 1 << 20;
/// The name the reserve is written under before it is renamed into place.
const TEMP_FILE: &str = "disk-reserve.tmp";
/// A temporary file older than this was left by a process that died while writing it.
const STALE_TEMP: Duration = Duration::from_secs(60);
/// After a failed attempt (the device still full), the next one waits this long.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// One process's view of the reserve of one cache directory.
#[derive(Debug)]
pub struct DiskReserve {
    dir: PathBuf,
    /// No attempt to recreate the reserve before this instant.
    quiet_until: Option<Instant>,
}

impl DiskReserve {
    pub fn new(dir: &Path) -> DiskReserve {
        DiskReserve {
            dir: dir.to_path_buf(),
            quiet_until: None,
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(RESERVE_FILE)
    }

    /// Whether the reserve is in place, whole.
    pub fn is_present(&self) -> bool {
        fs::metadata(self.path()).is_ok_and(|m| m.is_file() && m.len() == RESERVE_BYTES)
    }

    /// Makes sure the reserve exists, writing it if it does not (at most once per
    /// [`RETRY_AFTER`] after a failure). True if it is in place afterwards.
    pub fn ensure(&mut self) -> bool {
        // Checked first: the writer calls this after every commit while the reserve is
        // missing, and inside the quiet time that costs no system call.
        if self.quiet_until.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        if self.is_present() {
            return true;
        }
        match self.write() {
            Ok(()) => {
                self.quiet_until = None;
                true
            }
            Err(_) => {
                self.quiet_until = Some(Instant::now() + RETRY_AFTER);
                false
            }
        }
    }

    /// Removes the reserve so that its bytes are free on the device; true if this call
    /// removed it (false: there was none, or another process took it first).
    pub fn release(&mut self) -> bool {
        let released = fs::remove_file(self.path()).is_ok();
        if released {
            // The device is full: do not spend the room just freed on a new reserve at once.
            self.quiet_until = Some(Instant::now() + RETRY_AFTER);
        }
        released
    }

    fn write(&self) -> io::Result<()> {
        let temp = self.dir.join(TEMP_FILE);
        let mut file = match create_new(&temp) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && is_stale(&temp) => {
                fs::remove_file(&temp)?;
                create_new(&temp)?
            }
            other => other?,
        };
        let written = fill(&mut file).and_then(|()| fs::rename(&temp, self.path()));
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        }
        written
    }
}

/// Creates `path`, failing if it exists (another process is writing the reserve).
fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

/// Writes [`RESERVE_BYTES`] zero bytes: written bytes take room on the device at once (a
/// sparse file or a set length would take none).
fn fill(file: &mut File) -> io::Result<()> {
    let block = [0u8; 64 * 1024];
    let mut left = RESERVE_BYTES;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    file.flush()
}

fn is_stale(path: &Path) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .map(|t| SystemTime::now().duration_since(t).unwrap_or_default() > STALE_TEMP)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("lmdb-cache-reserve-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn ensure_writes_the_whole_reserve_once_and_release_removes_it() {
        let dir = temp_dir("cycle");
        let mut reserve = DiskReserve::new(&dir);
        assert!(!reserve.is_present());
        assert!(reserve.ensure());
        assert_eq!(
            fs::metadata(dir.join(RESERVE_FILE)).unwrap().len(),
            RESERVE_BYTES
        );
        assert!(!dir.join(TEMP_FILE).exists());
        assert!(reserve.release());
        assert!(!reserve.is_present());
        // Only one process gets to release it.
        assert!(!reserve.release());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn after_a_release_the_reserve_is_not_rewritten_at_once() {
        let dir = temp_dir("quiet");
        let mut reserve = DiskReserve::new(&dir);
        assert!(reserve.ensure());
        assert!(reserve.release());
        assert!(
            !reserve.ensure(),
            "rewritten right after the room was given to a delete"
        );
        reserve.quiet_until = Some(Instant::now());
        assert!(reserve.ensure());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_temporary_file_of_another_live_writer_is_left_alone_and_a_stale_one_replaced() {
        let dir = temp_dir("temp");
        fs::write(dir.join(TEMP_FILE), b"partial").unwrap();
        let mut reserve = DiskReserve::new(&dir);
        assert!(!reserve.ensure(), "another process is writing the reserve");
        assert_eq!(fs::read(dir.join(TEMP_FILE)).unwrap(), b"partial");
        let old = SystemTime::now() - STALE_TEMP - Duration::from_secs(1);
        File::options()
            .write(true)
            .open(dir.join(TEMP_FILE))
            .unwrap()
            .set_modified(old)
            .unwrap();
        reserve.quiet_until = None;
        assert!(reserve.ensure());
        assert!(!dir.join(TEMP_FILE).exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
