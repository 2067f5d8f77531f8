//! The rollback decision, the record, and a rollback of a crash image made by hand.

use super::*;
use crate::keys::StoredKey;
use crate::record::{self, Payload};
use crate::store::test_support::{fresh_store, put_records};
use crate::store::{Store, StoreOptions};

fn boot(name: &str) -> BootId {
    let mut id = [0u8; BOOT_LEN];
    id[..name.len()].copy_from_slice(name.as_bytes());
    id
}

#[test]
fn the_newest_transaction_is_rolled_back_only_after_a_reboot_that_it_was_not_flushed_before() {
    let (this, other) = (boot("this"), boot("other"));
    let entry = |boot, flushed, file| {
        Some(Some(Entry {
            boot,
            flushed,
            file,
        }))
    };
    assert_eq!(judge(None, &this, 9, 4), AtOpen::Keep, "a new record");
    assert_eq!(
        judge(entry(this, 3, 4), &this, 9, 4),
        AtOpen::Keep,
        "same boot"
    );
    assert_eq!(
        judge(entry(other, 9, 4), &this, 9, 4),
        AtOpen::Keep,
        "flushed"
    );
    assert_eq!(judge(entry(other, 8, 4), &this, 9, 4), AtOpen::RollBack);
    assert_eq!(
        judge(entry(other, 8, 0), &this, 9, 4),
        AtOpen::RollBack,
        "inode not known yet"
    );
    assert_eq!(
        judge(entry(other, 8, 5), &this, 9, 4),
        AtOpen::Keep,
        "a file put in its place"
    );
    assert_eq!(
        judge(Some(None), &this, 9, 4),
        AtOpen::RollBack,
        "a damaged record"
    );
    assert_eq!(
        judge(Some(None), &this, 1, 4),
        AtOpen::Keep,
        "nothing before it"
    );
}

#[test]
fn the_record_only_moves_forward_within_a_boot_and_starts_over_in_a_new_one() {
    let dir = std::env::temp_dir().join(format!("lmdb-cache-flush-record-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("data.mdb"), b"pages").unwrap();
    let state = FlushState::open_as(&dir, boot("one")).unwrap();
    let read = |state: &FlushState| read_record(&state.file.lock()).unwrap();
    assert_eq!(read(&state), None);
    let flushed = |r: Recorded| r.flatten().map(|e| (e.boot, e.flushed));
    state.record(7, false).unwrap();
    state.record(5, true).unwrap();
    assert_eq!(flushed(read(&state)), Some((boot("one"), 7)));
    let next_boot = FlushState::open_as(&dir, boot("two")).unwrap();
    next_boot.record(3, false).unwrap();
    assert_eq!(flushed(read(&next_boot)), Some((boot("two"), 3)));
    // Another data.mdb renamed over the one recorded (as compaction does): it starts over.
    std::fs::write(dir.join("data.mdb.new"), b"other").unwrap();
    std::fs::rename(dir.join("data.mdb.new"), dir.join("data.mdb")).unwrap();
    next_boot.record(2, false).unwrap();
    assert_eq!(flushed(read(&next_boot)), Some((boot("two"), 2)));
    std::fs::write(dir.join(FLUSH_STATE_FILE), b"garbage").unwrap();
    assert_eq!(read(&next_boot), Some(None));
    let _ = std::fs::remove_dir_all(&dir);
}

fn encoded(key: &str, json: &[u8]) -> Vec<u8> {
    let stored = StoredKey::encode(key.as_bytes());
    let mut out = Vec::new();
    record::encode_put(stored.as_bytes(), None, None, Payload::Json(json), &mut out);
    out
}

fn stored(store: &Store, key: &str) -> Option<Vec<u8>> {
    let stored = StoredKey::encode(key.as_bytes());
    store
        .read(|txn| {
            Ok(store
                .entries
                .get(txn, stored.as_bytes())
                .unwrap()
                .map(<[u8]>::to_vec))
        })
        .unwrap()
}

/// What an OS crash can leave of a commit made without an fsync: its meta page reached the
/// disk, its data pages did not. The next boot's first open must go back to the transaction
/// before it, whole, instead of reading pages that are not there.
#[test]
fn an_unflushed_newest_commit_left_by_an_os_crash_is_rolled_back_at_the_next_boots_open() {
    if boot_id().is_none() {
        return; // no boot id on this OS: commits fsync inside, nothing to roll back
    }
    let (dir, store) = fresh_store("flush-rollback");
    put_records(&store, &[(b"a", None, Some(b"1"))]);
    store.close();
    let data = dir.join("data.mdb");
    let before = std::fs::read(&data).unwrap();
    let flushed = crate::store::newest_txn_id(&dir);

    let store = Store::open(&dir, &StoreOptions::default()).unwrap();
    let big = format!("\"{}\"", "x".repeat(64 * 1024));
    put_records(
        &store,
        &[(b"a", None, Some(b"2")), (b"b", None, Some(big.as_bytes()))],
    );
    store.close();
    let newest = crate::store::newest_txn_id(&dir);
    assert_eq!(
        newest,
        flushed + 1,
        "the setup must add exactly one transaction"
    );

    // The crash image: the file as flushed, with only the newest meta page written over it.
    let after = std::fs::read(&data).unwrap();
    let file = std::fs::File::open(&data).unwrap();
    let page = crate::meta_check::read_metas(&file).unwrap().1.page_size as usize;
    let slot = (newest % 2) as usize * page;
    let mut image = before.clone();
    image[slot..slot + page].copy_from_slice(&after[slot..slot + page]);
    std::fs::write(&data, &image).unwrap();
    assert!(
        crate::meta_check::check_data_file(&dir).is_err(),
        "the image must be damaged as it is, or this test proves nothing"
    );
    FlushState::open_as(&dir, boot("before the crash"))
        .unwrap()
        .record(flushed, false)
        .unwrap();

    let store = Store::open(&dir, &StoreOptions::default()).unwrap();
    assert_eq!(stored(&store, "a"), Some(encoded("a", b"1")));
    assert_eq!(stored(&store, "b"), None);
    store.close();
    assert!(crate::meta_check::check_data_file(&dir).is_ok());
    assert_eq!(crate::page_walk::walk(&dir).unwrap().damaged_count, 0);
    // This boot is recorded with the rollback's commit: the next open keeps it.
    let state = FlushState::open(&dir).unwrap().unwrap();
    let recorded = read_record(&state.file.lock()).unwrap().flatten().unwrap();
    assert_eq!(
        (recorded.boot, recorded.flushed),
        (boot_id().unwrap(), flushed + 1)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
