//! Scans and pages: order, bounds, paging, long-key groups, expired and damaged records.

use super::*;
use crate::store::test_support::{fresh_store, put_records, TestRecord};

/// What a damaged tree's cursor can do: go back, repeat a key, or start before the cursor.
#[test]
fn a_scan_that_meets_keys_out_of_order_fails_instead_of_going_on() {
    let (dir, store) = fresh_store("order");
    let run = |keys: &[&'static [u8]], floor: Option<&'static [u8]>, reverse: bool| {
        let items = keys.iter().map(|k| Ok((*k, &b""[..])));
        InOrder::new(&store, items, floor, reverse)
            .map(|i| i.map(|(k, _)| k.to_vec()))
            .collect::<CacheResult<Vec<_>>>()
    };
    assert_eq!(run(&[b"a", b"b", b"c"], None, false).unwrap().len(), 3);
    assert_eq!(run(&[b"c", b"b", b"a"], Some(b"d"), true).unwrap().len(), 3);
    for (keys, floor, reverse) in [
        (&[&b"a"[..], b"c", b"b"][..], None, false),
        (&[&b"a"[..], b"a"][..], None, false),
        (&[&b"b"[..]][..], Some(&b"b"[..]), false),
        (&[&b"a"[..]][..], Some(&b"b"[..]), false),
        (&[&b"c"[..]][..], Some(&b"b"[..]), true),
        (&[&b"b"[..], b"c"][..], None, true),
    ] {
        let err = run(keys, floor, reverse).unwrap_err();
        assert_eq!(
            err.code(),
            "ERR_INVALID_DATABASE",
            "{keys:?} after {floor:?}"
        );
        assert!(err.to_string().contains("out of order"));
    }
    drop(store);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn long_keys_sharing_their_first_480_bytes_scan_in_byte_order_and_pages_resume_exactly() {
    let (dir, store) = fresh_store("group");
    let head = [b"p:".as_slice(), &[b'a'; 478]].concat();
    let long = |tail: &str| [&head[..], tail.as_bytes()].concat();
    // Suffixes chosen so that hash order and byte order differ.
    let tails = ["7", "0", "5", "2", "", "6", "1", "3", "4", "10", "00"];
    let group: Vec<Vec<u8>> = tails.iter().map(|t| long(&format!("x{t}"))).collect();
    let (gone, undefined) = (long("x8"), long("x9"));
    let mut records: Vec<TestRecord<'_>> = group
        .iter()
        .map(|k| (&k[..], None, Some(b"1".as_slice())))
        .collect();
    records.push((&gone, Some(5), Some(b"1")));
    records.push((&undefined, None, None));
    let before = head.clone(); // direct: exactly 480 bytes
    let after = [b"p:".as_slice(), &[b'a'; 477], b"b"].concat();
    records.push((&before, None, Some(b"1")));
    records.push((&after, None, Some(b"1")));
    records.push((b"p:", None, Some(b"1")));
    put_records(&store, &records);

    let logical = |full: &[u8]| String::from_utf8(full[2..].to_vec()).unwrap();
    let mut expected: Vec<Vec<u8>> = group.clone();
    expected.extend([before.clone(), after.clone(), b"p:".to_vec()]);
    expected.sort();
    let expected: Vec<String> = expected
        .iter()
        .map(|k| logical(k).trim_start_matches('a').to_string())
        .collect();
    let all = |range: &KeyRange, reverse: bool, per_page: usize| {
        let (mut keys, mut cursor): (Vec<String>, Option<Vec<u8>>) = (Vec::new(), None);
        loop {
            let (mut out, mut expired) = (Vec::new(), Vec::new());
            let (_, end) = store
                .scan_page(
                    range,
                    reverse,
                    cursor.as_deref(),
                    10,
                    per_page,
                    1 << 20,
                    &mut out,
                    &mut Vec::new(),
                    &mut expired,
                )
                .unwrap();
            let page: Vec<(String, u32)> = rmp_serde::from_slice(&out).unwrap();
            keys.extend(
                page.into_iter()
                    .map(|(k, _)| k.trim_start_matches('a').to_string()),
            );
            match end {
                PageEnd::Done => return keys,
                PageEnd::After(c) => cursor = Some(c),
            }
        }
    };
    let everything = KeyRange {
        prefix: b"p:".to_vec(),
        lower: None,
        upper: None,
    };
    for per_page in [1, 2, 3, 5, 100] {
        assert_eq!(
            all(&everything, false, per_page),
            expected,
            "forward, {per_page} per page"
        );
        let mut reversed = expected.clone();
        reversed.reverse();
        assert_eq!(
            all(&everything, true, per_page),
            reversed,
            "reverse, {per_page} per page"
        );
    }
    // Bounds inside the group select by byte order: what `gt: lastKey` paging relies on.
    let lower = long("x2");
    let upper = long("x6");
    let bounded = KeyRange {
        prefix: b"p:".to_vec(),
        lower: Some((lower.clone(), false)),
        upper: Some((upper.clone(), true)),
    };
    let inside: Vec<String> = expected
        .iter()
        .filter(|k| {
            let full = [b"p:".as_slice(), &[b'a'; 478], k.as_bytes()].concat();
            k.starts_with('x') && full > lower && full <= upper
        })
        .cloned()
        .collect();
    assert_eq!(inside.len(), 4, "x3, x4, x5, x6");
    for per_page in [1, 2, 100] {
        assert_eq!(all(&bounded, false, per_page), inside);
    }
    let mut expired = Vec::new();
    let (count, _) = store
        .count_page(&everything, None, 10, 1000, &mut expired)
        .unwrap();
    assert_eq!((count, expired.len()), (expected.len(), 1));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_keys_only_page_lists_the_keys_of_the_entries_page_in_order_and_pages_alike() {
    let (dir, store) = fresh_store("keys-only");
    let long_key = [b"p:".as_slice(), &[b'x'; 600]].concat();
    put_records(
        &store,
        &[
            (b"p:a", None, Some(b"1")),
            (b"p:json", None, Some(br#"{"__proto__":7}"#)),
            (b"p:expired", Some(5), Some(b"2")),
            (b"p:undefined", None, None),
            (&long_key, None, Some(b"3")),
            (b"q:outside", None, Some(b"5")),
        ],
    );
    let range = KeyRange {
        prefix: b"p:".to_vec(),
        lower: None,
        upper: None,
    };
    for reverse in [false, true] {
        let (mut cursor, mut keys): (Option<Vec<u8>>, Vec<String>) = (None, Vec::new());
        loop {
            let (mut out, mut expired) = (Vec::new(), Vec::new());
            let (count, end) = store
                .scan_keys_page(
                    &range,
                    reverse,
                    cursor.as_deref(),
                    10,
                    2,
                    1 << 20,
                    &mut out,
                    &mut expired,
                )
                .unwrap();
            let page: Vec<String> = rmp_serde::from_slice(&out).unwrap();
            assert_eq!(page.len(), count);
            keys.extend(page);
            match end {
                PageEnd::Done => break,
                PageEnd::After(c) => cursor = Some(c),
            }
        }
        let mut expected = vec!["a".to_string(), "json".into(), "x".repeat(600)];
        if reverse {
            expected.reverse();
        }
        assert_eq!(keys, expected, "reverse: {reverse}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_page_skips_at_most_max_skipped_entries_and_the_next_page_resumes_after_them() {
    let (dir, store) = fresh_store("skip");
    // More expired (and undefined) entries than one page may skip, then two live ones.
    let skipped_total = MAX_SKIPPED_PER_PAGE * 2 + 10;
    let keys: Vec<Vec<u8>> = (0..skipped_total)
        .map(|i| format!("p:{i:08}").into_bytes())
        .collect();
    let mut records: Vec<TestRecord<'_>> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            if i % 5 == 0 {
                (&k[..], None, None)
            } else {
                (&k[..], Some(5), Some(b"0".as_slice()))
            }
        })
        .collect();
    records.push((b"p:zz1", None, Some(b"1")));
    records.push((b"p:zz2", None, Some(b"2")));
    put_records(&store, &records);
    let range = KeyRange {
        prefix: b"p:".to_vec(),
        lower: None,
        upper: None,
    };
    let (mut after, mut pages, mut live, mut expired_seen) = (None, 0, Vec::new(), 0);
    loop {
        let (mut out, mut expired) = (Vec::new(), Vec::new());
        let (count, end) = store
            .scan_page(
                &range,
                false,
                after.as_deref(),
                10,
                100,
                1 << 20,
                &mut out,
                &mut Vec::new(),
                &mut expired,
            )
            .unwrap();
        assert!(
            expired.len() <= MAX_SKIPPED_PER_PAGE,
            "page {pages} held {} expired keys",
            expired.len()
        );
        expired_seen += expired.len();
        let json: Vec<(String, u32)> = rmp_serde::from_slice(&out).unwrap();
        assert_eq!(json.len(), count);
        live.extend(json);
        pages += 1;
        match end {
            PageEnd::Done => break,
            PageEnd::After(cursor) => after = Some(cursor),
        }
    }
    assert_eq!(live, vec![("zz1".to_string(), 1), ("zz2".to_string(), 2)]);
    assert_eq!(expired_seen, skipped_total - skipped_total.div_ceil(5));
    assert_eq!(
        pages, 3,
        "two pages end early at the skip limit, the third finds the live entries"
    );

    // Counting crosses them in bounded chunks too, and agrees.
    let (mut after, mut total) = (None, 0);
    loop {
        let mut expired = Vec::new();
        let (count, end) = store
            .count_page(&range, after.as_deref(), 10, 100_000, &mut expired)
            .unwrap();
        assert!(expired.len() <= MAX_SKIPPED_PER_PAGE);
        total += count;
        match end {
            PageEnd::Done => break,
            PageEnd::After(cursor) => after = Some(cursor),
        }
    }
    assert_eq!(total, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_scan_page_is_one_messagepack_array_of_key_value_pairs_without_the_prefix_and_count_agrees() {
    let (dir, store) = fresh_store("scan");
    let long_key = [b"p:".as_slice(), &[b'x'; 600]].concat();
    put_records(
        &store,
        &[
            (b"p:a", None, Some(b"1")),
            (b"p:json", None, Some(br#"{"__proto__":7}"#)),
            (b"p:q\"uote\\back\nline\x01", None, Some(br#"{"s":"t"}"#)),
            (b"p:expired", Some(5), Some(b"2")),
            (b"p:undefined", None, None),
            (&long_key, None, Some(b"3")),
            ("p:\u{1F600}".as_bytes(), Some(50), Some(b"[4]")),
            (b"q:outside", None, Some(b"5")),
        ],
    );
    let range = KeyRange {
        prefix: b"p:".to_vec(),
        lower: None,
        upper: None,
    };
    let page = |after: Option<&[u8]>, max_entries: usize| {
        let (mut out, mut json_values, mut expired) = (Vec::new(), Vec::new(), Vec::new());
        let (count, end) = store
            .scan_page(
                &range,
                false,
                after,
                10,
                max_entries,
                1 << 20,
                &mut out,
                &mut json_values,
                &mut expired,
            )
            .unwrap();
        let mut json: serde_json::Value = rmp_serde::from_slice(&out).unwrap();
        // Values kept as JSON arrive as their text, their pairs listed: parse them, as JS does.
        for i in json_values {
            let pair = &mut json[i as usize];
            pair[1] = serde_json::from_str(pair[1].as_str().unwrap()).unwrap();
        }
        (count, end, json, expired.len())
    };
    let long_logical = "x".repeat(600);
    let expected = serde_json::json!([
        ["a", 1],
        ["json", { "__proto__": 7 }],
        ["q\"uote\\back\nline\u{1}", { "s": "t" }],
        [long_logical, 3],
        ["\u{1F600}", [4]],
    ]);
    let (count, end, json, expired) = page(None, 100);
    assert_eq!((count, json, expired), (5, expected.clone(), 1));
    assert!(matches!(end, PageEnd::Done));

    // Two entries per page: the cursor continues exactly after the last one.
    let (count, end, first, _) = page(None, 2);
    assert_eq!(
        (count, first),
        (2, serde_json::json!([expected[0], expected[1]]))
    );
    let PageEnd::After(cursor) = end else {
        panic!("a full page must return a cursor")
    };
    let (count, end, rest, _) = page(Some(&cursor), 2);
    assert_eq!(
        (count, rest),
        (2, serde_json::json!([expected[2], expected[3]]))
    );
    let PageEnd::After(cursor) = end else {
        panic!("a full page must return a cursor")
    };
    let (count, end, last, _) = page(Some(&cursor), 2);
    assert_eq!((count, last), (1, serde_json::json!([expected[4]])));
    assert!(matches!(end, PageEnd::Done));

    // Counting walks the same entries and writes nothing.
    let mut expired = Vec::new();
    let (count, end) = store
        .count_page(&range, None, 10, 100, &mut expired)
        .unwrap();
    assert_eq!((count, expired.len()), (5, 1));
    assert!(matches!(end, PageEnd::Done));
    let (count, end) = store
        .count_page(&range, None, 10, 3, &mut Vec::new())
        .unwrap();
    assert_eq!(count, 3);
    let PageEnd::After(cursor) = end else {
        panic!("a full count chunk must return a cursor")
    };
    let (count, _) = store
        .count_page(&range, Some(&cursor), 10, 3, &mut Vec::new())
        .unwrap();
    assert_eq!(count, 2);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
