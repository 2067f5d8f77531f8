//! The one error type of the native core.
//!
//! Every failure the cache can report has a variant here, a stable string code (what JS sees
//! as `error.code`) and a hand-written message. The napi layer maps this enum to JS errors in
//! one place (`binding::to_js_error`); nothing else builds JS errors.

use std::fmt;
use std::io;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheError {
    /// The handle was closed (or its thread's environment torn down).
    Closed,
    /// The map reached its configured maximum size; the write was not applied.
    Full { max_size: u64 },
    /// The cache path exists and is not a directory.
    NotADirectory { path: PathBuf },
    /// The process may not read or write the cache directory.
    PermissionDenied { path: PathBuf, detail: String },
    /// The directory holds a file that is not an LMDB environment of ours.
    InvalidDatabase { path: PathBuf, detail: String },
    /// The directory was written by a newer format of this package.
    UnsupportedFormat { found: u32, supported: u32 },
    /// Two different keys longer than the direct-key limit mapped to the same stored key.
    KeyCollision,
    /// Every LMDB reader slot is taken by live readers.
    ReadersFull,
    /// A request from the JS layer was malformed (a bug in this package, never user input).
    InvalidRequest { detail: String },
    /// A stored record could not be decoded.
    CorruptRecord { detail: String },
    /// The disk is full.
    DiskFull,
    /// Any other I/O or LMDB failure.
    Io { detail: String },
    /// A bug in this package (a caught panic); the operation was not applied.
    Internal { detail: String },
    /// Every handle slot of this thread is in use.
    TooManyHandles { limit: u32 },
    /// A copy's destination file already exists; it was left as it was.
    DestinationExists { path: PathBuf },
    /// Another copy of this addon in the process has the directory's environment open.
    OpenInAnotherCopy { path: PathBuf },
    /// `lock.mdb` was deleted or replaced while this process had the environment open.
    LockFileReplaced { path: PathBuf },
    /// The first open after an OS crash must roll back the newest transaction, and another
    /// process (not of this package's version) has the environment open.
    RecoveryBusy { path: PathBuf },
}

impl CacheError {
    /// The stable code JS callers match on.
    pub fn code(&self) -> &'static str {
        match self {
            CacheError::Closed => "ERR_CACHE_CLOSED",
            CacheError::Full { .. } => "ERR_CACHE_FULL",
            CacheError::NotADirectory { .. } => "ERR_NOT_A_DIRECTORY",
            CacheError::PermissionDenied { .. } => "ERR_PERMISSION_DENIED",
            CacheError::InvalidDatabase { .. } => "ERR_INVALID_DATABASE",
            CacheError::UnsupportedFormat { .. } => "ERR_UNSUPPORTED_FORMAT",
            CacheError::KeyCollision => "ERR_KEY_COLLISION",
            CacheError::ReadersFull => "ERR_READERS_FULL",
            CacheError::InvalidRequest { .. } => "ERR_INTERNAL",
            CacheError::CorruptRecord { .. } => "ERR_CORRUPT_RECORD",
            CacheError::DiskFull => "ERR_DISK_FULL",
            CacheError::Io { .. } => "ERR_IO",
            CacheError::Internal { .. } => "ERR_INTERNAL",
            CacheError::TooManyHandles { .. } => "ERR_TOO_MANY_HANDLES",
            CacheError::DestinationExists { .. } => "ERR_DESTINATION_EXISTS",
            CacheError::OpenInAnotherCopy { .. } => "ERR_OPEN_IN_ANOTHER_COPY",
            CacheError::LockFileReplaced { .. } => "ERR_LOCK_FILE_REPLACED",
            CacheError::RecoveryBusy { .. } => "ERR_RECOVERY_BUSY",
        }
    }

    /// Maps an LMDB/heed error met while working on the cache at `path`.
    pub fn from_heed(err: heed::Error, path: &std::path::Path) -> CacheError {
        match err {
            heed::Error::Io(io) => CacheError::from_io(io, path),
            heed::Error::Mdb(heed::MdbError::Invalid)
            | heed::Error::Mdb(heed::MdbError::VersionMismatch)
            | heed::Error::Mdb(heed::MdbError::Incompatible) => CacheError::InvalidDatabase {
                path: path.to_path_buf(),
                detail: err.to_string(),
            },
            heed::Error::Mdb(heed::MdbError::ReadersFull) => CacheError::ReadersFull,
            other => CacheError::Io {
                detail: other.to_string(),
            },
        }
    }

    pub fn from_io(err: io::Error, path: &std::path::Path) -> CacheError {
        match err.kind() {
            io::ErrorKind::PermissionDenied => CacheError::PermissionDenied {
                path: path.to_path_buf(),
                detail: err.to_string(),
            },
            io::ErrorKind::NotADirectory => CacheError::NotADirectory {
                path: path.to_path_buf(),
            },
            // ENOSPC on Unix, ERROR_DISK_FULL and ERROR_HANDLE_DISK_FULL on Windows: std maps
            // each platform's own codes, so no raw errno is checked here.
            io::ErrorKind::StorageFull => CacheError::DiskFull,
            _ => CacheError::Io {
                detail: format!("{}: {err}", path.display()),
            },
        }
    }
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheError::Closed => f.write_str("the cache is closed"),
            CacheError::Full { max_size } => write!(
                f,
                "the cache is full: the map reached its maximum size of {max_size} bytes \
                 (raise maxMapSize, delete entries or sweep expired ones)"
            ),
            CacheError::NotADirectory { path } => {
                write!(
                    f,
                    "cache path {} exists and is not a directory",
                    path.display()
                )
            }
            CacheError::PermissionDenied { path, detail } => {
                write!(
                    f,
                    "no permission to use cache directory {}: {detail}",
                    path.display()
                )
            }
            CacheError::InvalidDatabase { path, detail } => write!(
                f,
                "{} does not hold a valid lmdb-cache database ({detail})",
                path.display()
            ),
            CacheError::UnsupportedFormat { found, supported } => write!(
                f,
                "the cache was written in format {found}; this version reads format {supported} \
                 and older"
            ),
            CacheError::KeyCollision => f.write_str(
                "a different long key already occupies this key's stored slot (hash collision); \
                 the write was refused",
            ),
            CacheError::ReadersFull => {
                f.write_str("all LMDB reader slots are in use by live readers (raise maxReaders)")
            }
            CacheError::InvalidRequest { detail } => {
                write!(
                    f,
                    "internal error: malformed request from the JS layer: {detail}"
                )
            }
            CacheError::CorruptRecord { detail } => {
                write!(f, "a stored record is corrupt: {detail}")
            }
            CacheError::DiskFull => f.write_str("no space left on the device holding the cache"),
            CacheError::Io { detail } => write!(f, "I/O error: {detail}"),
            CacheError::Internal { detail } => write!(f, "internal error in lmdb-cache: {detail}"),
            CacheError::TooManyHandles { limit } => write!(
                f,
                "{limit} cache handles are open on this thread, the most there can be \
                 (close some; views made by withNamespace() do not count)"
            ),
            CacheError::DestinationExists { path } => write!(
                f,
                "{} already exists; a copy is only written to a new file",
                path.display()
            ),
            CacheError::OpenInAnotherCopy { path } => write!(
                f,
                "{} is open in another copy of @promethean/lmdb-cache loaded in this process; \
                 LMDB allows one environment per file per process (closing either would drop \
                 the other's file locks): load one copy of the package (deduplicate \
                 node_modules)",
                path.display()
            ),
            CacheError::LockFileReplaced { path } => write!(
                f,
                "lock.mdb in {} was deleted or replaced while this process had the cache open \
                 (never do that: processes then no longer exclude each other's writes); close \
                 every handle in every process, then run lmdb-cache verify on the directory",
                path.display()
            ),
            CacheError::RecoveryBusy { path } => write!(
                f,
                "{} needs its crash recovery (the OS stopped before its newest commit was \
                 flushed), which must run with no other process using it, and another process \
                 has it open; close it there and open again",
                path.display()
            ),
        }
    }
}

impl std::error::Error for CacheError {}

pub type CacheResult<T> = Result<T, CacheError>;

/// For heed callbacks that must return `E: From<heed::Error>`; callers that know the path
/// prefer [`CacheError::from_heed`].
impl From<heed::Error> for CacheError {
    fn from(e: heed::Error) -> CacheError {
        CacheError::from_heed(e, std::path::Path::new(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_disk_full_from_io_and_from_lmdb() {
        let path = std::path::Path::new("/cache");
        let full = io::Error::from(io::ErrorKind::StorageFull);
        assert_eq!(CacheError::from_io(full, path).code(), "ERR_DISK_FULL");
        // The platform's own code, as the OS returns it (ENOSPC is 28 on Linux and macOS).
        #[cfg(unix)]
        {
            let enospc = io::Error::from_raw_os_error(28);
            assert_eq!(CacheError::from_io(enospc, path).code(), "ERR_DISK_FULL");
            let from_lmdb = heed::Error::Io(io::Error::from_raw_os_error(28));
            assert_eq!(
                CacheError::from_heed(from_lmdb, path).code(),
                "ERR_DISK_FULL"
            );
        }
        let other = io::Error::from(io::ErrorKind::Other);
        assert_eq!(CacheError::from_io(other, path).code(), "ERR_IO");
    }
}
