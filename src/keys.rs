//! Mapping of logical keys to LMDB keys.
//!
//! A logical key is the UTF-8 of the full key name (`namespace + U+241F + key`, or just `key`).
//! LMDB keys must be 1 to 511 bytes, so:
//!
//! * **direct form**: a full key of at most [`DIRECT_KEY_MAX`] bytes is stored as its bytes
//!   followed by one `0x00` byte. Appending a constant byte keeps byte order, and makes the
//!   empty key storable.
//! * **long form**: a longer full key is stored as its first [`DIRECT_KEY_MAX`] bytes, the byte
//!   `0xFF` (which never occurs in UTF-8, so it sorts after every direct key with that prefix)
//!   and a 16-byte FNV-1a-128 hash of the whole key. The full key is kept in the record, so a
//!   reader can check it and `entries()` can yield it.
//!
//! Stored order is exact except among long keys sharing their first 480 bytes (a group),
//! which sort by hash; scans read a group whole and sort it (see `Store::scan_page`).
//! The two forms are told apart by length alone: direct keys are at most 481 bytes, long
//! keys exactly [`LONG_KEY_LEN`].

/// Full keys up to this many bytes are stored directly.
pub const DIRECT_KEY_MAX: usize = 480;
/// Length of every long-form stored key.
pub const LONG_KEY_LEN: usize = DIRECT_KEY_MAX + 1 + 16;
/// Largest stored key of either form; fits LMDB's 511-byte limit.
pub const STORED_KEY_MAX: usize = LONG_KEY_LEN;

const DIRECT_TERMINATOR: u8 = 0x00;
const LONG_MARKER: u8 = 0xFF;

/// A stored key built on the stack.
#[derive(Clone)]
pub struct StoredKey {
    bytes: [u8; STORED_KEY_MAX],
    len: usize,
}

impl StoredKey {
    /// Maps a full logical key to its stored form.
    pub fn encode(full_key: &[u8]) -> StoredKey {
        let mut bytes = [0u8; STORED_KEY_MAX];
        if full_key.len() <= DIRECT_KEY_MAX {
            bytes[..full_key.len()].copy_from_slice(full_key);
            bytes[full_key.len()] = DIRECT_TERMINATOR;
            StoredKey {
                bytes,
                len: full_key.len() + 1,
            }
        } else {
            bytes[..DIRECT_KEY_MAX].copy_from_slice(&full_key[..DIRECT_KEY_MAX]);
            bytes[DIRECT_KEY_MAX] = LONG_MARKER;
            bytes[DIRECT_KEY_MAX + 1..].copy_from_slice(&fnv1a_128(full_key).to_be_bytes());
            StoredKey {
                bytes,
                len: LONG_KEY_LEN,
            }
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Whether the full key lives in the record rather than in the stored key.
    pub fn is_long(&self) -> bool {
        self.len == LONG_KEY_LEN
    }
}

/// What a stored key tells about its logical key.
#[derive(Debug, PartialEq, Eq)]
pub enum StoredKind<'a> {
    /// The full key, recovered from the stored key.
    Direct(&'a [u8]),
    /// A long key: the full key must be read from the record.
    Long,
}

/// Classifies a stored key; `None` for bytes that are neither form (not written by us).
pub fn classify(stored: &[u8]) -> Option<StoredKind<'_>> {
    match stored.len() {
        0 => None,
        LONG_KEY_LEN if stored[DIRECT_KEY_MAX] == LONG_MARKER => Some(StoredKind::Long),
        n if n <= DIRECT_KEY_MAX + 1 && stored[n - 1] == DIRECT_TERMINATOR => {
            Some(StoredKind::Direct(&stored[..n - 1]))
        }
        _ => None,
    }
}

/// Where a scan for all full keys starting with `prefix` begins: every matching stored key is
/// `>=` this and starts with it (a long prefix can only match long-form keys).
pub fn scan_start(prefix: &[u8]) -> Vec<u8> {
    if prefix.len() <= DIRECT_KEY_MAX {
        prefix.to_vec()
    } else {
        let mut start = prefix[..DIRECT_KEY_MAX].to_vec();
        start.push(LONG_MARKER);
        start
    }
}

/// Whether two stored keys are long keys of one group (the same first 480 bytes).
pub fn same_long_group(a: &[u8], b: &[u8]) -> bool {
    a.len() == LONG_KEY_LEN
        && b.len() == LONG_KEY_LEN
        && a[DIRECT_KEY_MAX] == LONG_MARKER
        && a[..=DIRECT_KEY_MAX] == b[..=DIRECT_KEY_MAX]
}

/// A stored-key position before every member of the long-key group of `full` (and after
/// every direct key with the same first 480 bytes).
pub fn long_group_start(full: &[u8]) -> Vec<u8> {
    let mut k = head(full).to_vec();
    k.push(LONG_MARKER);
    k
}

/// A stored-key position after every member of the long-key group of `full`.
pub fn long_group_end(full: &[u8]) -> Vec<u8> {
    let mut k = head(full).to_vec();
    k.extend_from_slice(&[LONG_MARKER; 17]);
    k
}

/// The first bytes of a full key that its stored key starts with (all of it when direct).
fn head(full: &[u8]) -> &[u8] {
    &full[..full.len().min(DIRECT_KEY_MAX)]
}

/// The full keys a scan wants: those starting with `prefix` (a namespace), within optional
/// bounds that are full keys too (`(key, inclusive)`).
///
/// Stored order is full-key order except inside a group of long keys sharing their first
/// [`DIRECT_KEY_MAX`] bytes, so every method works on those first bytes ("heads") to find
/// where to start and stop, and [`KeyRange::contains`] checks the exact full key.
#[derive(Debug, Clone, Default)]
pub struct KeyRange {
    pub prefix: Vec<u8>,
    pub lower: Option<(Vec<u8>, bool)>,
    pub upper: Option<(Vec<u8>, bool)>,
}

/// Where a scan starts: a stored key and whether it is itself included; `None` for the very
/// first (forward) or last (reverse) key.
pub type ScanStart = Option<(Vec<u8>, bool)>;

impl KeyRange {
    pub fn contains(&self, full: &[u8]) -> bool {
        full.starts_with(&self.prefix)
            && self
                .lower
                .as_ref()
                .is_none_or(|(l, incl)| if *incl { full >= &l[..] } else { full > &l[..] })
            && self
                .upper
                .as_ref()
                .is_none_or(|(u, incl)| if *incl { full <= &u[..] } else { full < &u[..] })
    }

    pub fn forward_start(&self) -> ScanStart {
        match &self.lower {
            Some((l, incl)) if l.len() <= DIRECT_KEY_MAX => {
                Some((StoredKey::encode(l).as_bytes().to_vec(), *incl))
            }
            Some((l, _)) => Some((head(l).to_vec(), true)),
            None => Some((scan_start(&self.prefix), true)).filter(|(s, _)| !s.is_empty()),
        }
    }

    /// Whether a forward scan that reached `stored` (full key `full`) can stop.
    pub fn forward_done(&self, stored: &[u8], full: &[u8]) -> bool {
        let start = scan_start(&self.prefix);
        (!stored.starts_with(&start) && stored > &start[..])
            || self
                .upper
                .as_ref()
                .is_some_and(|(u, _)| head(full) > head(u))
    }

    pub fn reverse_start(&self) -> ScanStart {
        let after_head = |h: &[u8]| {
            let mut k = h.to_vec();
            k.extend_from_slice(&[LONG_MARKER; 17]);
            k
        };
        match &self.upper {
            Some((u, incl)) if u.len() <= DIRECT_KEY_MAX => {
                Some((StoredKey::encode(u).as_bytes().to_vec(), *incl))
            }
            Some((u, _)) => Some((after_head(head(u)), true)),
            None if self.prefix.is_empty() => None,
            None => Some((after_head(head(&self.prefix)), true)),
        }
    }

    /// Whether a reverse scan that reached `stored` (full key `full`) can stop.
    pub fn reverse_done(&self, stored: &[u8], full: &[u8]) -> bool {
        let start = scan_start(&self.prefix);
        stored < &start[..]
            || self
                .lower
                .as_ref()
                .is_some_and(|(l, _)| head(full) < head(l))
    }
}

/// FNV-1a with 128-bit state: stable across platforms and releases, as an on-disk hash must be.
pub fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut hash = OFFSET;
    for &b in bytes {
        hash ^= b as u128;
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_key_of(stored: &[u8], record_key: &[u8]) -> Vec<u8> {
        match classify(stored).unwrap() {
            StoredKind::Direct(k) => k.to_vec(),
            StoredKind::Long => record_key.to_vec(),
        }
    }

    #[test]
    fn empty_key_maps_to_a_storable_key() {
        let k = StoredKey::encode(b"");
        assert_eq!(k.as_bytes(), &[0u8]);
        assert_eq!(classify(k.as_bytes()), Some(StoredKind::Direct(b"")));
    }

    #[test]
    fn direct_keys_round_trip() {
        for key in [
            &b"a"[..],
            b"a\0",
            "\u{241F}x".as_bytes(),
            &[b'z'; DIRECT_KEY_MAX],
        ] {
            let k = StoredKey::encode(key);
            assert!(!k.is_long());
            assert_eq!(full_key_of(k.as_bytes(), b""), key);
        }
    }

    #[test]
    fn long_keys_fit_lmdb_and_differ_by_hash() {
        let a = vec![b'x'; 600];
        let mut b = a.clone();
        b[599] = b'y';
        let (ka, kb) = (StoredKey::encode(&a), StoredKey::encode(&b));
        assert!(ka.is_long() && kb.is_long());
        assert!(ka.as_bytes().len() <= 511);
        assert_ne!(ka.as_bytes(), kb.as_bytes());
        assert_eq!(classify(ka.as_bytes()), Some(StoredKind::Long));
    }

    #[test]
    fn stored_order_follows_byte_order_of_full_keys() {
        let long_a = [vec![b'a'; 500], b"zz".to_vec()].concat();
        let mut keys: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\0".to_vec(),
            b"a".to_vec(),
            b"a\0".to_vec(),
            b"a\0b".to_vec(),
            b"ab".to_vec(),
            vec![b'a'; DIRECT_KEY_MAX],
            long_a,
            "é".as_bytes().to_vec(),
            "😀".as_bytes().to_vec(),
            b"b".to_vec(),
        ];
        keys.sort();
        let stored: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| StoredKey::encode(k).as_bytes().to_vec())
            .collect();
        let mut sorted = stored.clone();
        sorted.sort();
        assert_eq!(stored, sorted);
    }

    #[test]
    fn prefix_scan_start_is_a_prefix_of_every_matching_stored_key() {
        for prefix_len in [0usize, 3, 480, 481, 700] {
            let prefix = vec![b'p'; prefix_len];
            let start = scan_start(&prefix);
            for extra in [0usize, 1, 10, 600] {
                let full = [prefix.clone(), vec![b'q'; extra]].concat();
                let stored = StoredKey::encode(&full);
                assert!(
                    stored.as_bytes().starts_with(&start),
                    "prefix {prefix_len} extra {extra}"
                );
            }
        }
    }

    /// A brute-force check of KeyRange against sorting: every (bounds, direction) over a
    /// key set with long-key groups gives exactly the keys in range.
    #[test]
    fn key_range_scans_find_exactly_the_keys_in_range() {
        let long = |tail: &str| {
            [
                b"n\xe2\x90\x9f".to_vec(),
                vec![b'a'; 500],
                tail.as_bytes().to_vec(),
            ]
            .concat()
        };
        let ns = |k: &str| [b"n\xe2\x90\x9f".to_vec(), k.as_bytes().to_vec()].concat();
        let mut full_keys: Vec<Vec<u8>> = vec![
            ns(""),
            ns("a"),
            ns("ab"),
            ns("b"),
            ns("b\0"),
            ns("c"),
            b"m".to_vec(),
            b"o".to_vec(),
        ];
        full_keys.extend([
            long("1"),
            long("2"),
            long(""),
            ns(&"a".repeat(480)),
            b"n\xe2\x90\x9fz".to_vec(),
        ]);
        assert!(
            full_keys
                .iter()
                .filter(|k| k.len() > DIRECT_KEY_MAX)
                .count()
                >= 4
        );
        let mut stored: Vec<(Vec<u8>, Vec<u8>)> = full_keys
            .iter()
            .map(|k| (StoredKey::encode(k).as_bytes().to_vec(), k.clone()))
            .collect();
        stored.sort();
        let prefix = b"n\xe2\x90\x9f".to_vec();
        let bounds: Vec<Option<(Vec<u8>, bool)>> = std::iter::once(None)
            .chain(
                full_keys
                    .iter()
                    .filter(|k| k.starts_with(&prefix))
                    .flat_map(|k| [Some((k.clone(), true)), Some((k.clone(), false))]),
            )
            .collect();
        for lower in &bounds {
            for upper in &bounds {
                let range = KeyRange {
                    prefix: prefix.clone(),
                    lower: lower.clone(),
                    upper: upper.clone(),
                };
                let mut expected: Vec<Vec<u8>> = full_keys
                    .iter()
                    .filter(|k| range.contains(k))
                    .cloned()
                    .collect();
                expected.sort();
                // forward
                let mut got = Vec::new();
                let start = range.forward_start();
                for (s, f) in &stored {
                    if let Some((k, incl)) = &start {
                        if s < k || (!incl && s == k) {
                            continue;
                        }
                    }
                    if range.forward_done(s, f) {
                        break;
                    }
                    if range.contains(f) {
                        got.push(f.clone());
                    }
                }
                got.sort();
                assert_eq!(got, expected, "forward {lower:?} {upper:?}");
                // reverse
                let mut got = Vec::new();
                let start = range.reverse_start();
                for (s, f) in stored.iter().rev() {
                    if let Some((k, incl)) = &start {
                        if s > k || (!incl && s == k) {
                            continue;
                        }
                    }
                    if range.reverse_done(s, f) {
                        break;
                    }
                    if range.contains(f) {
                        got.push(f.clone());
                    }
                }
                got.sort();
                assert_eq!(got, expected, "reverse {lower:?} {upper:?}");
            }
        }
    }

    #[test]
    fn classify_rejects_foreign_bytes() {
        assert_eq!(classify(b""), None);
        assert_eq!(classify(b"abc"), None);
        assert_eq!(classify(&[1u8; LONG_KEY_LEN]), None);
    }

    #[test]
    fn fnv_hash_is_stable() {
        // Pinned: the on-disk format depends on this value never changing.
        assert_eq!(fnv1a_128(b""), 0x6c62272e07bb014262b821756295c58d);
        assert_eq!(fnv1a_128(b"a"), 0xd228cb696f1a8caf78912b704e4a8964);
    }

    // Properties over generated keys (strategies: crate::test_strategies).

    use crate::test_strategies::{byte, bytes};
    use proptest::prelude::*;

    fn check_classify(stored: &[u8]) -> Result<(), TestCaseError> {
        match classify(stored) {
            Some(StoredKind::Direct(k)) => {
                prop_assert!(k.len() <= DIRECT_KEY_MAX);
                prop_assert_eq!(stored.len(), k.len() + 1);
                prop_assert_eq!(&stored[..k.len()], k);
                prop_assert_eq!(stored[k.len()], 0x00);
                let again = StoredKey::encode(k);
                prop_assert_eq!(again.as_bytes(), stored);
            }
            Some(StoredKind::Long) => {
                prop_assert_eq!(stored.len(), LONG_KEY_LEN);
                prop_assert_eq!(stored[DIRECT_KEY_MAX], 0xff);
            }
            None => {}
        }
        Ok(())
    }

    /// A change near `base`: one byte replaced, a cut, or bytes appended.
    #[derive(Debug, Clone)]
    enum Neighbour {
        Replace(prop::sample::Index, u8),
        Cut(prop::sample::Index),
        Append(Vec<u8>),
    }

    fn neighbour() -> impl Strategy<Value = Neighbour> {
        prop_oneof![
            (any::<prop::sample::Index>(), byte()).prop_map(|(at, b)| Neighbour::Replace(at, b)),
            any::<prop::sample::Index>().prop_map(Neighbour::Cut),
            proptest::collection::vec(byte(), 1..=600).prop_map(Neighbour::Append),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(6_000))]

        /// Any bytes met in the database: classified or refused, never a panic, and what is
        /// classified agrees with the encoder. Bytes that look like either form (a final 0x00,
        /// a 0xFF marker) are drawn often.
        #[test]
        fn classify_never_panics_and_agrees_with_the_encoder(
            mut stored in bytes(2048),
            terminate in any::<bool>(),
            mark in any::<bool>(),
        ) {
            if terminate && !stored.is_empty() {
                *stored.last_mut().unwrap() = 0x00;
            }
            if mark && stored.len() > DIRECT_KEY_MAX {
                stored[DIRECT_KEY_MAX] = 0xff;
            }
            check_classify(&stored)?;
        }

        #[test]
        fn any_full_key_encodes_to_a_storable_key_that_classifies_back(
            full in bytes(4096),
            cut in any::<prop::sample::Index>(),
        ) {
            let stored = StoredKey::encode(&full);
            prop_assert!(!stored.as_bytes().is_empty() && stored.as_bytes().len() <= 511);
            match classify(stored.as_bytes()) {
                Some(StoredKind::Direct(k)) => prop_assert_eq!(k, &full[..]),
                Some(StoredKind::Long) => {
                    prop_assert!(full.len() > DIRECT_KEY_MAX);
                    prop_assert!(stored.is_long());
                }
                None => prop_assert!(false, "our own stored key of a {}-byte key is not recognised", full.len()),
            }
            // Every key with a given prefix is found by the prefix scan.
            let cut = cut.index(full.len() + 1);
            prop_assert!(stored.as_bytes().starts_with(&scan_start(&full[..cut])));
        }

        /// Stored order is full-key order, except between two long keys sharing their first
        /// DIRECT_KEY_MAX bytes (which must still differ).
        #[test]
        fn stored_key_order_follows_full_key_order(base in bytes(600), change in neighbour()) {
            let mut other = base.clone();
            match change {
                Neighbour::Replace(at, b) if !other.is_empty() => {
                    let i = at.index(other.len());
                    other[i] = b;
                }
                Neighbour::Cut(at) => other.truncate(at.index(other.len() + 1)),
                Neighbour::Append(extra) => other.extend_from_slice(&extra),
                Neighbour::Replace(..) => {}
            }
            let (a, b) = (StoredKey::encode(&base), StoredKey::encode(&other));
            let both_long_same_prefix =
                a.is_long() && b.is_long() && base[..DIRECT_KEY_MAX] == other[..DIRECT_KEY_MAX];
            if !both_long_same_prefix {
                prop_assert_eq!(base.cmp(&other), a.as_bytes().cmp(b.as_bytes()));
            } else if base != other {
                prop_assert_ne!(a.as_bytes(), b.as_bytes(), "distinct long keys share a slot");
            }
        }
    }
}
