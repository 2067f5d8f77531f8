//! Opening a cache directory: the checks before LMDB maps it, and the databases and format
//! record inside it. A directory that is not ours, or of a newer format, is refused and left
//! as it was.

use std::path::Path;

use heed::types::Bytes;
use heed::{CommitOrAbort, Env, EnvOpenOptions, WithoutTls};

use super::Entries;
use crate::error::{CacheError, CacheResult};

/// Version of the on-disk layout (databases, key forms, record header). Bumped on any
/// incompatible change; a reader refuses formats newer than its own.
/// 2: records carry a checksum and MessagePack values (see `record`); a format-1 directory
/// is marked format 2 when this version opens it (its records are read as they are).
pub const FORMAT_VERSION: u32 = 2;

const EXPIRIES_DB: &str = "expiries";
const META_DB: &str = "meta";
const FORMAT_KEY: &[u8] = b"format";
/// LMDB creates `lock.mdb` sparse (ftruncate) and initialises it through a shared memory
/// map: on a full file system that write faults with SIGBUS, which kills the process. So
/// before LMDB creates one, check that the space is there by writing (then removing) a file
/// of more than its size: 64 bytes per reader slot plus a header, rounded up generously.
/// (File systems that allocate at write time, as ext4, XFS and tmpfs do, report ENOSPC here.)
pub(super) fn ensure_room_for_lock_file(dir: &Path, max_readers: u32) -> CacheResult<()> {
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

pub(super) fn open_env_retrying(
    builder: &EnvOpenOptions<WithoutTls>,
    path: &Path,
) -> CacheResult<Env<WithoutTls>> {
    open_env_retrying_raw(builder, path).map_err(|e| CacheError::from_heed(e, path))
}

/// [`open_env_retrying`] with LMDB's own error, for callers that tell some apart.
pub(super) fn open_env_retrying_raw(
    builder: &EnvOpenOptions<WithoutTls>,
    path: &Path,
) -> heed::Result<Env<WithoutTls>> {
    // heed refuses a path whose previous environment is still closing on another thread;
    // that lasts at most until its last transaction ends.
    for _ in 0..200 {
        // SAFETY: the registry guarantees one environment per canonical path in this process;
        // the files are only changed through LMDB (its lock file coordinates processes).
        match unsafe { builder.open(path) } {
            Err(heed::Error::EnvAlreadyOpened) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            other => return other,
        }
    }
    Err(heed::Error::Io(std::io::Error::other(format!(
        "{} stayed open elsewhere in this process",
        path.display()
    ))))
}

/// Opens our databases, creating them (and the format record) in a fresh environment. An
/// environment that holds anything else is refused rather than written into.
///
/// Entries live in LMDB's unnamed (main) database: a named database costs every new read
/// transaction an extra lookup of its record in the main database. The main database also
/// holds the records of the two named databases (`expiries`, `meta`); their keys can never
/// be stored keys (see `keys::classify`), so scans skip them.
pub(super) fn open_databases(
    env: &Env<WithoutTls>,
    path: &Path,
) -> CacheResult<(Entries, Entries, Entries)> {
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
    use crate::store::{Store, StoreOptions};

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
}
