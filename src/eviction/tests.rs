//! Unit tests of `eviction`: ages, the pool, bounds and totals, and eviction against a real
//! store (least recently used first, totals kept and counted again when stale, touches).

use super::*;
use crate::store::test_support::{fresh_store, put_records};

#[test]
fn ages_wrap_around_and_unstamped_records_are_the_oldest() {
    assert_eq!(age(100, Some(40)), 60);
    assert_eq!(age(5, Some(u32::MAX - 4)), 10, "across the wrap");
    assert_eq!(
        age(100, Some(101)),
        0,
        "a stamp from a clock slightly ahead"
    );
    assert_eq!(age(100, None), u32::MAX);
    assert_eq!(access_clock(1_234_567), 123_456);
}

#[test]
fn the_pool_keeps_the_oldest_and_gives_the_oldest_first() {
    let mut pool = Pool::default();
    for i in 0..(POOL_SIZE as u32 + 24) {
        pool.offer(format!("k{i}").as_bytes(), Some(i), 1000);
    }
    assert_eq!(pool.len(), POOL_SIZE);
    pool.offer(b"unstamped", None, 1000);
    pool.offer(b"k1", Some(0), 1000); // seen again, older: moves up, not duplicated
    pool.offer(b"young", Some(999), 1000); // younger than all of a full pool: turned away
    assert_eq!(pool.len(), POOL_SIZE);
    assert_eq!(pool.pop_oldest().unwrap().stored, b"unstamped");
    let order: Vec<Vec<u8>> = (0..4).map(|_| pool.pop_oldest().unwrap().stored).collect();
    assert_eq!(
        order,
        vec![
            b"k1".to_vec(),
            b"k0".to_vec(),
            b"k2".to_vec(),
            b"k3".to_vec()
        ]
    );
    // Ages taken at a later time keep the order.
    pool.offer(b"k4-later", Some(6), 5000);
    assert_eq!(pool.pop_oldest().unwrap().stored, b"k4");
}

#[test]
fn bounds_and_totals_round_trip_and_settings_apply() {
    let b = Bounds {
        max_entries: Some(7),
        max_bytes: None,
    };
    assert_eq!(Bounds::decode(&b.encode()), b);
    assert_eq!(Bounds::decode(b"short"), Bounds::default());
    let t = Totals {
        entries: 3,
        bytes: 99,
    };
    assert_eq!(Totals::decode(&t.encode(42)), Some((t, 42)));
    assert!(b.exceeded_by(&Totals {
        entries: 8,
        bytes: 0
    }));
    assert!(!b.exceeded_by(&Totals {
        entries: 7,
        bytes: u64::MAX
    }));
    assert_eq!(BoundSetting::from_js(-1.0), BoundSetting::Keep);
    assert_eq!(BoundSetting::from_js(f64::INFINITY), BoundSetting::Clear);
    assert_eq!(BoundSetting::from_js(10.7), BoundSetting::Set(10));
    assert_eq!(BoundSetting::Keep.apply(Some(3)), Some(3));
    assert_eq!(BoundSetting::Clear.apply(Some(3)), None);
}

#[test]
fn touch_thresholds_follow_the_eviction_age_within_limits() {
    assert_eq!(touch_threshold(0), MIN_TOUCH_AFTER);
    assert_eq!(touch_threshold(800), 100);
    assert_eq!(touch_threshold(u32::MAX), MAX_TOUCH_AFTER);
}

/// Writes `n` stamped records k0..k{n-1}, record i stamped `stamps(i)`.
fn put_stamped(store: &Store, n: u32, stamps: impl Fn(u32) -> Option<u32>) {
    let (_g, mut txn) = store.write_txn(None).unwrap();
    let mut rec = Vec::new();
    for i in 0..n {
        let stored = StoredKey::encode(format!("k{i:04}").as_bytes());
        rec.clear();
        record::encode_put_stamped(
            stored.as_bytes(),
            None,
            None,
            stamps(i),
            record::Payload::Json(b"1"),
            &mut rec,
        );
        store
            .entries
            .put(&mut txn, stored.as_bytes(), &rec)
            .unwrap();
    }
    txn.commit().unwrap();
}

fn live_keys(store: &Store) -> Vec<String> {
    let mut keys = Vec::new();
    store
        .read(|txn| {
            for item in store.entries.iter(txn).unwrap() {
                let (k, _) = item.unwrap();
                if let Some(keys::StoredKind::Direct(full)) = keys::classify(k) {
                    keys.push(String::from_utf8_lossy(full).into_owned());
                }
            }
            Ok(())
        })
        .unwrap();
    keys
}

#[test]
fn eviction_counts_once_then_evicts_the_least_recently_used_and_keeps_totals() {
    let (dir, store) = fresh_store("evict-lru");
    let now = access_clock(now_ms());
    // 200 entries: the even ones accessed long ago, the odd ones just now.
    put_stamped(&store, 200, |i| {
        Some(if i % 2 == 0 {
            now.wrapping_sub(10_000 + i)
        } else {
            now
        })
    });
    let mut ev = Evictor::default();
    let (_g, mut txn) = store.write_txn(None).unwrap();
    ev.begin(&store, &txn).unwrap();
    assert_eq!(ev.totals(), None, "no totals yet");
    ev.set_bounds(&store, &mut txn, BoundSetting::Set(120), BoundSetting::Keep)
        .unwrap();
    ev.ensure_totals(&store, &txn).unwrap();
    let counted = ev.totals().unwrap();
    assert_eq!(counted.entries, 200);
    ev.evict_sampled(&store, &mut txn).unwrap();
    assert_eq!(ev.totals().unwrap().entries, 120);
    assert_eq!(ev.evicted_in_txn, 80);
    ev.save(&store, &mut txn).unwrap();
    txn.commit().unwrap();
    drop(_g);
    let kept = live_keys(&store);
    assert_eq!(kept.len(), 120);
    // Sampled near-LRU: every recently accessed entry stays (the 100 odd ones), and the
    // survivors among the old ones are the least old.
    let odd = kept
        .iter()
        .filter(|k| k[1..].parse::<u32>().unwrap() % 2 == 1)
        .count();
    assert_eq!(odd, 100, "a recently used entry was evicted: {kept:?}");
    // The stored totals are fresh for the next transaction, and match a full count.
    store
        .read(|txn| {
            let stored = read_totals(&store, txn, txn.id() as u64).unwrap().unwrap();
            assert_eq!(stored, count_totals(&store, txn).unwrap());
            assert_eq!(stored.entries, 120);
            Ok(())
        })
        .unwrap();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_first_eviction_looks_past_the_sample_next_to_the_hand() {
    let (dir, store) = fresh_store("evict-topup");
    let now = access_clock(now_ms());
    // k0000..k0019 (first in key order) just used; the 60 after them older.
    put_stamped(&store, 80, |i| {
        Some(if i < 20 { now } else { now.wrapping_sub(500) })
    });
    let mut ev = Evictor::default();
    let (_g, mut txn) = store.write_txn(None).unwrap();
    ev.begin(&store, &txn).unwrap();
    ev.set_bounds(&store, &mut txn, BoundSetting::Set(79), BoundSetting::Keep)
        .unwrap();
    ev.ensure_totals(&store, &txn).unwrap();
    ev.evict_sampled(&store, &mut txn).unwrap();
    txn.commit().unwrap();
    drop(_g);
    let kept = live_keys(&store);
    assert_eq!(kept.len(), 79);
    assert!(
        (0..20).all(|i| kept.contains(&format!("k{i:04}"))),
        "a recent one went"
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn totals_written_behind_the_evictors_back_are_stale_and_counted_again() {
    let (dir, store) = fresh_store("evict-stale");
    let mut ev = Evictor::default();
    {
        let (_g, mut txn) = store.write_txn(None).unwrap();
        ev.begin(&store, &txn).unwrap();
        ev.set_bounds(
            &store,
            &mut txn,
            BoundSetting::Keep,
            BoundSetting::Set(1 << 30),
        )
        .unwrap();
        ev.ensure_totals(&store, &txn).unwrap();
        ev.save(&store, &mut txn).unwrap();
        txn.commit().unwrap();
    }
    // Another build (or any path past the writer) adds 5 records.
    put_records(&store, &[(b"a", None, Some(b"1")), (b"b", Some(5), None)]);
    let (_g, txn) = store.write_txn(None).unwrap();
    ev.begin(&store, &txn).unwrap();
    assert_eq!(ev.totals(), None, "stale totals are not trusted");
    ev.ensure_totals(&store, &txn).unwrap();
    assert_eq!(ev.totals().unwrap().entries, 2);
    drop(txn);
    drop(_g);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_touch_restamps_and_a_touched_candidate_is_ranked_again() {
    let (dir, store) = fresh_store("evict-touch");
    let now = access_clock(now_ms());
    put_stamped(&store, 40, |_| Some(now.wrapping_sub(50_000)));
    let mut ev = Evictor::default();
    let (_g, mut txn) = store.write_txn(None).unwrap();
    ev.begin(&store, &txn).unwrap();
    ev.set_bounds(
        &store,
        &mut txn,
        BoundSetting::Set(1_000),
        BoundSetting::Keep,
    )
    .unwrap();
    ev.ensure_totals(&store, &txn).unwrap();
    let before = ev.totals().unwrap();
    // Sample everything into the pool first, then touch one of them.
    ev.sample(&store, &txn, now).unwrap();
    let touched = vec![b"k0003".to_vec()];
    let mut out = Vec::new();
    ev.apply_touches(&store, &mut txn, &touched, &mut out)
        .unwrap();
    let after = ev.totals().unwrap();
    assert_eq!(after.entries, before.entries);
    assert_eq!(
        after.bytes, before.bytes,
        "already stamped: the same length"
    );
    ev.set_bounds(&store, &mut txn, BoundSetting::Set(39), BoundSetting::Keep)
        .unwrap();
    for _ in 0..5 {
        ev.set_bounds(
            &store,
            &mut txn,
            BoundSetting::Set(ev.totals().unwrap().entries - 1),
            BoundSetting::Keep,
        )
        .unwrap();
        ev.evict_sampled(&store, &mut txn).unwrap();
    }
    txn.commit().unwrap();
    drop(_g);
    assert!(live_keys(&store).contains(&"k0003".to_string()));
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
