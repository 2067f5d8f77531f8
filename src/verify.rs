//! The walk of `lmdb-cache verify`: every record of a cache directory read through LMDB, with
//! the environment opened read-only (nothing is written to `data.mdb`).
//!
//! A damaged page can still fault (SIGBUS, SIGSEGV) when LMDB reads it through its map; the
//! CLI therefore runs this walk in a child process (`lib/verify-child.cjs`) and turns such a
//! death into a report naming the last key the walk got past. Damage that can be seen
//! without faulting is reported here: the meta pages and file length (`meta_check`, before
//! LMDB maps the file) and records that cannot be decoded (with their key).

use std::path::Path;

use heed::types::Bytes;
use heed::{CommitOrAbort, EnvFlags, EnvOpenOptions};

use crate::error::{CacheError, CacheResult};
use crate::eviction::{Totals, TOTALS_KEY};
use crate::keys::{self, StoredKind};
use crate::record::Record;
use crate::shapes;

/// Records that cannot be decoded listed in full in a report (the rest are only counted).
const MAX_LISTED: usize = 100;

#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Entries (records) in the main database.
    pub entries: u64,
    /// Rows of the expiry index.
    pub expiry_rows: u64,
    /// Records that could not be decoded, as (key, what is wrong); at most [`MAX_LISTED`].
    pub undecodable: Vec<(String, String)>,
    pub undecodable_count: u64,
    /// Whether the directory keeps running totals (a bounded one) that are up to date; when
    /// they are, they were checked against the walk's full count (a mismatch is listed above).
    pub totals_checked: bool,
}

/// Walks every record of the cache in `dir`; `progress(records so far, last key)` is called
/// every `every` records, so a caller can tell where a fault happened.
pub fn walk(
    dir: &Path,
    every: u64,
    progress: &mut dyn FnMut(u64, &str),
) -> CacheResult<VerifyReport> {
    let invalid = |detail: String| CacheError::InvalidDatabase {
        path: dir.to_path_buf(),
        detail,
    };
    if !dir.join("data.mdb").is_file() {
        return Err(invalid("no data.mdb".into()));
    }
    crate::meta_check::check_data_file(dir)?;
    let heed_err = |e: heed::Error| CacheError::from_heed(e, dir);
    let mut builder = EnvOpenOptions::new().read_txn_without_tls();
    builder.max_dbs(8);
    // Without a lock file no process has the directory open (each open creates one); a
    // read-only walk then needs none, and creating one would write to the directory.
    let flags = if dir.join("lock.mdb").exists() {
        EnvFlags::READ_ONLY
    } else {
        EnvFlags::READ_ONLY | EnvFlags::NO_LOCK
    };
    // SAFETY: READ_ONLY (and NO_LOCK only when no process has the directory open, see above)
    // are flags LMDB supports for reading an environment another process may be writing.
    unsafe { builder.flags(flags) };
    // SAFETY: this process opens this environment once (the CLI's child process does nothing
    // else), and never writes to it.
    let env = unsafe { builder.open(dir) }.map_err(heed_err)?;
    let rtxn = env.read_txn().map_err(heed_err)?;
    let opened = env
        .open_databases_and_commit(rtxn, |opener, rtxn| -> heed::Result<_> {
            let main = opener.open_database::<Bytes, Bytes>(rtxn, None)?;
            let expiries = opener.open_database::<Bytes, Bytes>(rtxn, Some("expiries"))?;
            let meta = opener.open_database::<Bytes, Bytes>(rtxn, Some("meta"))?;
            Ok(CommitOrAbort::<_, ()>::Commit((main, expiries, meta)))
        })
        .map_err(heed_err)?;
    let CommitOrAbort::Commit((Some(main), Some(expiries), Some(meta))) = opened else {
        return Err(invalid("no lmdb-cache databases in it".into()));
    };
    let rtxn = env.read_txn().map_err(heed_err)?;
    let mut report = VerifyReport::default();
    let mut bytes = 0u64;
    for item in main.iter(&rtxn).map_err(heed_err)? {
        let (key, value) = item.map_err(heed_err)?;
        // The records of the named databases (whose keys are never stored keys) hold LMDB's
        // own description of them, not a record of ours.
        let Some(kind) = keys::classify(key) else {
            continue;
        };
        report.entries += 1;
        bytes += (key.len() + value.len()) as u64;
        // Checks the checksum too (format 2): verify reports what reads would refuse.
        let decoded = Record::decode(key, value);
        let long = matches!(kind, StoredKind::Long);
        let shown = match (kind, &decoded) {
            (StoredKind::Direct(full), _) => String::from_utf8_lossy(full).into_owned(),
            (
                StoredKind::Long,
                Ok(Record {
                    full_key: Some(full),
                    ..
                }),
            ) => String::from_utf8_lossy(full).into_owned(),
            // A long key's stored form: its first 480 bytes, then a marker and a hash.
            (StoredKind::Long, _) => String::from_utf8_lossy(key).into_owned(),
        };
        match decoded {
            Ok(Record { full_key: None, .. }) if long => note(
                &mut report,
                shown.clone(),
                "a long key's record without its key",
            ),
            Ok(_) => {}
            Err(e) => note(&mut report, shown.clone(), &e.to_string()),
        }
        if report.entries % every == 0 {
            progress(report.entries, &shown);
        }
    }
    for item in expiries.iter(&rtxn).map_err(heed_err)? {
        item.map_err(heed_err)?;
        report.expiry_rows += 1;
    }
    // The running totals of a bounded directory, if the last commit wrote them (one of
    // another build may have left them stale; the next bounded writer counts them again).
    let totals = meta.get(&rtxn, TOTALS_KEY).map_err(heed_err)?;
    if let Some((t, _)) = totals
        .and_then(Totals::decode)
        .filter(|(_, as_of)| *as_of == rtxn.id() as u64)
    {
        report.totals_checked = true;
        if (t.entries, t.bytes) != (report.entries, bytes) {
            let detail = format!(
                "the running totals say {} entries of {} bytes, a full count finds {} of {}",
                t.entries, t.bytes, report.entries, bytes
            );
            note(&mut report, "(totals)".into(), &detail);
        }
    }
    if meta.get(&rtxn, b"format").map_err(heed_err)?.is_none() {
        return Err(invalid("no format record".into()));
    }
    // The shapes records refer to (see `shapes`): dense ids, each passing its checksum.
    let mut next_id = 0u32;
    for item in meta.iter(&rtxn).map_err(heed_err)? {
        let (key, value) = item.map_err(heed_err)?;
        let Some(id) = shapes::id_of_key(key) else {
            continue;
        };
        let shown = format!("(shape {id})");
        if id != next_id {
            note(
                &mut report,
                shown.clone(),
                &format!("shape {next_id} is missing"),
            );
        }
        if let Err(e) = shapes::decode_stored(id, value) {
            note(&mut report, shown, &e.to_string());
        }
        next_id = id.saturating_add(1);
    }
    drop(rtxn);
    env.prepare_for_closing().wait();
    Ok(report)
}

fn note(report: &mut VerifyReport, key: String, detail: &str) {
    report.undecodable_count += 1;
    if report.undecodable.len() < MAX_LISTED {
        report.undecodable.push((key, detail.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eviction::{BoundSetting, Evictor};
    use crate::store::test_support::{fresh_store, put_records};
    use crate::store::Store;

    #[test]
    fn verify_checks_fresh_running_totals_against_its_count_and_skips_stale_ones() {
        let (dir, store) = fresh_store("verify-totals");
        put_records(
            &store,
            &[(b"a", None, Some(b"1")), (b"b", None, Some(b"22"))],
        );
        {
            let mut ev = Evictor::default();
            let (_g, mut txn) = store.write_txn(None).unwrap();
            ev.begin(&store, &txn).unwrap();
            ev.set_bounds(&store, &mut txn, BoundSetting::Set(10), BoundSetting::Keep)
                .unwrap();
            ev.ensure_totals(&store, &txn).unwrap();
            ev.save(&store, &mut txn).unwrap();
            txn.commit().unwrap();
        }
        let store_path = dir.clone();
        let walk_now = |store: Store| {
            store.close();
            let report = walk(&store_path, 1000, &mut |_, _| {}).unwrap();
            let reopened = Store::open(&store_path, &Default::default()).unwrap();
            (report, reopened)
        };
        let (report, store) = walk_now(store);
        assert!(report.totals_checked);
        assert_eq!(report.undecodable_count, 0, "{:?}", report.undecodable);
        // Totals that claim one entry too many, written as if by the last transaction.
        {
            let (_g, mut txn) = store.write_txn(None).unwrap();
            let id = txn.id() as u64;
            let wrong = Totals {
                entries: 3,
                bytes: 0,
            };
            store
                .meta
                .put(&mut txn, TOTALS_KEY, &wrong.encode(id))
                .unwrap();
            txn.commit().unwrap();
        }
        let (report, store) = walk_now(store);
        assert_eq!(report.undecodable_count, 1);
        assert_eq!(report.undecodable[0].0, "(totals)");
        assert!(report.undecodable[0].1.contains("full count finds 2"));
        // A later write that did not update them (another build) leaves them stale: skipped.
        put_records(&store, &[(b"c", None, Some(b"3"))]);
        let (report, store) = walk_now(store);
        assert!(!report.totals_checked);
        assert_eq!(report.undecodable_count, 0);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
