//! The stored record: a small header, then the value.
//!
//! Format 2 (written by this version):
//!
//! ```text
//! byte 0      : version (high nibble, 2) | flags (low nibble):
//!               0x1 HAS_EXPIRY, 0x2 HAS_FULL_KEY, 0x4 JSON_PAYLOAD, 0x8 HAS_ACCESS
//! bytes 1..5  : CRC-32C, u32 LE, of the stored (LMDB) key, byte 0, then bytes 5.. of the
//!               record
//! [4 bytes]   : last access, centiseconds since the Unix epoch mod 2^32, u32 LE
//!                                                                         (if HAS_ACCESS)
//! [8 bytes]   : expiry, epoch milliseconds, u64 LE                        (if HAS_EXPIRY)
//! [4 + n]     : full key length u32 LE, then its UTF-8 bytes              (if HAS_FULL_KEY)
//! rest        : the value: MessagePack (see `codec`), or its JSON text when JSON_PAYLOAD
//!               (what MessagePack cannot carry with JSON.parse semantics); empty for a
//!               stored `undefined` (never a valid MessagePack or JSON value)
//! ```
//!
//! HAS_ACCESS carries a bounded cache's recency (see `eviction`): puts into a bounded
//! directory stamp it, and the writer re-stamps records that reads found stale.
//! The checksum covers the stored key too, so a damaged key is caught as well as a damaged
//! value: LMDB has no checksums of its own.
//!
//! Format 1 (read only; written by 0.1): byte 0 = 1 << 4 | flags (0x1 HAS_EXPIRY,
//! 0x2 HAS_FULL_KEY, 0x4 UNDEFINED), then expiry and full key as above, then the JSON text;
//! no checksum.
//!
//! Decoding never trusts the bytes: every length is bounds-checked.

use crate::codec;
use crate::error::{CacheError, CacheResult};

pub const RECORD_VERSION: u8 = 2;
const V1: u8 = 1;
const FLAG_HAS_EXPIRY: u8 = 0x1;
const FLAG_HAS_FULL_KEY: u8 = 0x2;
const FLAG_JSON_PAYLOAD: u8 = 0x4;
const FLAG_HAS_ACCESS: u8 = 0x8;
const V1_FLAG_UNDEFINED: u8 = 0x4;
const V1_KNOWN_FLAGS: u8 = FLAG_HAS_EXPIRY | FLAG_HAS_FULL_KEY | V1_FLAG_UNDEFINED;
/// Bytes before the checksummed part: the version/flags byte and the checksum.
const CHECKED_FROM: usize = 5;

/// The stored value of a record.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Payload<'a> {
    /// A stored `undefined` (absent for reads).
    Undefined,
    /// MessagePack written by `codec::json_to_msgpack`.
    MsgPack(&'a [u8]),
    /// JSON text.
    Json(&'a [u8]),
}

impl<'a> Payload<'a> {
    #[cfg(test)]
    pub fn bytes(&self) -> Option<&'a [u8]> {
        match *self {
            Payload::Undefined => None,
            Payload::MsgPack(b) | Payload::Json(b) => Some(b),
        }
    }
}

/// A decoded record borrowing the stored bytes.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Record<'a> {
    /// Absolute expiry in epoch ms; the entry is gone once `expiry <= now`.
    pub expiry: Option<u64>,
    /// The full logical key, for long-form keys only.
    pub full_key: Option<&'a [u8]>,
    /// Last access (the `eviction` access clock: centiseconds since the Unix epoch, mod 2^32),
    /// where recorded.
    pub access: Option<u32>,
    pub payload: Payload<'a>,
}

fn corrupt(detail: &str) -> CacheError {
    CacheError::CorruptRecord {
        detail: detail.to_string(),
    }
}

/// The checksum of a format-2 record `bytes` (at least [`CHECKED_FROM`] long): its stored
/// key, its version/flags byte, then its bytes after the checksum.
fn checksum(stored_key: &[u8], bytes: &[u8]) -> u32 {
    let sum = crc32c::crc32c_append(crc32c::crc32c(stored_key), &bytes[..1]);
    crc32c::crc32c_append(sum, &bytes[CHECKED_FROM..])
}

impl<'a> Record<'a> {
    pub fn is_expired(&self, now: u64) -> bool {
        matches!(self.expiry, Some(x) if x <= now)
    }

    /// Appends the record, in format 2, to `out`; `stored_key` is the LMDB key it goes under.
    /// (Puts use [`encode_put`], which transcodes as it writes.)
    #[cfg(test)]
    pub fn encode_into(&self, stored_key: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; CHECKED_FROM]);
        self.encode_header_fields(out);
        let json = match self.payload {
            Payload::Undefined => false,
            Payload::MsgPack(b) => {
                out.extend_from_slice(b);
                false
            }
            Payload::Json(b) => {
                out.extend_from_slice(b);
                true
            }
        };
        seal(stored_key, out, start, self.flags(json));
    }

    fn flags(&self, json: bool) -> u8 {
        let mut flags = 0u8;
        if self.expiry.is_some() {
            flags |= FLAG_HAS_EXPIRY;
        }
        if self.full_key.is_some() {
            flags |= FLAG_HAS_FULL_KEY;
        }
        if json {
            flags |= FLAG_JSON_PAYLOAD;
        }
        if self.access.is_some() {
            flags |= FLAG_HAS_ACCESS;
        }
        flags
    }

    fn encode_header_fields(&self, out: &mut Vec<u8>) {
        if let Some(a) = self.access {
            out.extend_from_slice(&a.to_le_bytes());
        }
        if let Some(x) = self.expiry {
            out.extend_from_slice(&x.to_le_bytes());
        }
        if let Some(k) = self.full_key {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k);
        }
    }

    /// Decodes a record read under `stored_key` and checks its checksum (format 2).
    pub fn decode(stored_key: &[u8], bytes: &'a [u8]) -> CacheResult<Record<'a>> {
        let record = Record::decode_unverified(bytes)?;
        verify_decoded(stored_key, bytes)?;
        Ok(record)
    }

    /// Checks the checksum of a record that `decode_unverified` accepted (a format-1 record
    /// has none: it passes), without decoding it again.
    pub fn verify(stored_key: &[u8], bytes: &[u8]) -> CacheResult<()> {
        verify_decoded(stored_key, bytes)
    }

    /// Decodes a record without checking its checksum: for what reads only the header
    /// (counting, expiry), where a damaged value costs nothing.
    pub fn decode_unverified(bytes: &'a [u8]) -> CacheResult<Record<'a>> {
        let (&head, rest) = bytes.split_first().ok_or_else(|| corrupt("empty record"))?;
        let flags = head & 0x0f;
        match head >> 4 {
            RECORD_VERSION => {
                let rest = rest
                    .get(CHECKED_FROM - 1..)
                    .ok_or_else(|| corrupt("truncated checksum"))?;
                let (access, rest) = if flags & FLAG_HAS_ACCESS != 0 {
                    let (a, r) =
                        split_array::<4>(rest).ok_or_else(|| corrupt("truncated access time"))?;
                    (Some(u32::from_le_bytes(a)), r)
                } else {
                    (None, rest)
                };
                let (expiry, full_key, rest) = decode_expiry_and_key(flags, rest)?;
                let payload = match (flags & FLAG_JSON_PAYLOAD != 0, rest.is_empty()) {
                    (false, true) => Payload::Undefined,
                    (false, false) => Payload::MsgPack(rest),
                    (true, false) => Payload::Json(rest),
                    (true, true) => return Err(corrupt("empty JSON payload")),
                };
                Ok(Record {
                    expiry,
                    full_key,
                    access,
                    payload,
                })
            }
            V1 => {
                if flags & !V1_KNOWN_FLAGS != 0 {
                    return Err(corrupt("unknown record flags"));
                }
                let (expiry, full_key, rest) = decode_expiry_and_key(flags, rest)?;
                let payload = if flags & V1_FLAG_UNDEFINED != 0 {
                    if !rest.is_empty() {
                        return Err(corrupt("payload after undefined marker"));
                    }
                    Payload::Undefined
                } else {
                    Payload::Json(rest)
                };
                Ok(Record {
                    expiry,
                    full_key,
                    access: None,
                    payload,
                })
            }
            _ => Err(corrupt("unknown record version")),
        }
    }
}

/// Checks the checksum of `bytes`, a record that decodes (so a format-2 one holds one).
fn verify_decoded(stored_key: &[u8], bytes: &[u8]) -> CacheResult<()> {
    if bytes.first().map(|b| b >> 4) == Some(RECORD_VERSION) {
        if bytes.len() < CHECKED_FROM {
            return Err(corrupt("truncated checksum"));
        }
        let stored_sum = u32::from_le_bytes(bytes[1..CHECKED_FROM].try_into().expect("4 bytes"));
        if checksum(stored_key, bytes) != stored_sum {
            return Err(corrupt(
                "checksum mismatch (the record or its key is damaged)",
            ));
        }
    }
    Ok(())
}

/// Fills in the version/flags byte and the checksum of the record at `out[start..]`.
fn seal(stored_key: &[u8], out: &mut [u8], start: usize, flags: u8) {
    out[start] = (RECORD_VERSION << 4) | flags;
    let sum = checksum(stored_key, &out[start..]);
    out[start + 1..start + CHECKED_FROM].copy_from_slice(&sum.to_le_bytes());
}

/// Appends the format-2 record of a put to `out`. MessagePack (from JS) is stored as it is;
/// JSON text is transcoded to MessagePack, or kept as JSON where MessagePack cannot carry it.
#[cfg(test)]
pub fn encode_put(
    stored_key: &[u8],
    expiry: Option<u64>,
    full_key: Option<&[u8]>,
    value: Payload<'_>,
    out: &mut Vec<u8>,
) {
    encode_put_stamped(stored_key, expiry, full_key, None, value, out)
}

/// [`encode_put`] with a last-access stamp (HAS_ACCESS) where `access` is given.
pub fn encode_put_stamped(
    stored_key: &[u8],
    expiry: Option<u64>,
    full_key: Option<&[u8]>,
    access: Option<u32>,
    value: Payload<'_>,
    out: &mut Vec<u8>,
) {
    let record = Record {
        expiry,
        full_key,
        access,
        payload: Payload::Undefined,
    };
    let start = out.len();
    out.extend_from_slice(&[0; CHECKED_FROM]);
    record.encode_header_fields(out);
    let mut kept_json = false;
    match value {
        Payload::Undefined => {}
        Payload::MsgPack(bytes) => out.extend_from_slice(bytes),
        Payload::Json(json) => {
            let payload_at = out.len();
            if codec::json_to_msgpack(json, out).is_err() {
                out.truncate(payload_at);
                out.extend_from_slice(json);
                kept_json = true;
            }
        }
    }
    seal(stored_key, out, start, record.flags(kept_json));
}

/// Writes into `out` the format-2 record `bytes` (read under `stored_key`) with its last access
/// set to `access`, the rest unchanged and the checksum sealed again. A record that fails its
/// checksum, or a format-1 one, is refused (it is left for its key's owner to repair).
pub fn restamp(stored_key: &[u8], bytes: &[u8], access: u32, out: &mut Vec<u8>) -> CacheResult<()> {
    Record::decode_unverified(bytes)?;
    if bytes[0] >> 4 != RECORD_VERSION {
        return Err(corrupt("only format-2 records carry an access time"));
    }
    verify_decoded(stored_key, bytes)?;
    let flags = bytes[0] & 0x0f;
    let rest_from = if flags & FLAG_HAS_ACCESS != 0 {
        CHECKED_FROM + 4
    } else {
        CHECKED_FROM
    };
    out.clear();
    out.extend_from_slice(&[0; CHECKED_FROM]);
    out.extend_from_slice(&access.to_le_bytes());
    out.extend_from_slice(&bytes[rest_from..]);
    seal(stored_key, out, 0, flags | FLAG_HAS_ACCESS);
    Ok(())
}

/// The expiry and full key of a record header, and the bytes after them.
type ExpiryKeyRest<'a> = (Option<u64>, Option<&'a [u8]>, &'a [u8]);

fn decode_expiry_and_key(flags: u8, mut rest: &[u8]) -> CacheResult<ExpiryKeyRest<'_>> {
    let expiry = if flags & FLAG_HAS_EXPIRY != 0 {
        let (x, r) = split_array::<8>(rest).ok_or_else(|| corrupt("truncated expiry"))?;
        rest = r;
        Some(u64::from_le_bytes(x))
    } else {
        None
    };
    let full_key = if flags & FLAG_HAS_FULL_KEY != 0 {
        let (n, r) = split_array::<4>(rest).ok_or_else(|| corrupt("truncated key length"))?;
        let n = u32::from_le_bytes(n) as usize;
        if r.len() < n {
            return Err(corrupt("truncated key"));
        }
        let (k, r) = r.split_at(n);
        rest = r;
        Some(k)
    } else {
        None
    };
    Ok((expiry, full_key, rest))
}

fn split_array<const N: usize>(bytes: &[u8]) -> Option<([u8; N], &[u8])> {
    if bytes.len() < N {
        return None;
    }
    let (a, r) = bytes.split_at(N);
    Some((a.try_into().ok()?, r))
}

/// Converts a JS expiry (epoch ms as a double, may be fractional or out of range) to the
/// stored form. `x <= now` must keep its meaning for integer `now`, so fractions round up.
pub fn expiry_from_js(ms: f64) -> Option<u64> {
    if ms.is_nan() || ms == f64::INFINITY {
        None
    } else if ms <= 0.0 {
        Some(0)
    } else {
        Some(ms.ceil().min(u64::MAX as f64) as u64)
    }
}

/// Appends a format-1 record (as 0.1 wrote it), for tests of reading old directories.
#[cfg(test)]
pub fn encode_v1_into(record: &Record<'_>, out: &mut Vec<u8>) {
    let mut flags = 0u8;
    if record.expiry.is_some() {
        flags |= FLAG_HAS_EXPIRY;
    }
    if record.full_key.is_some() {
        flags |= FLAG_HAS_FULL_KEY;
    }
    if record.payload == Payload::Undefined {
        flags |= V1_FLAG_UNDEFINED;
    }
    out.push((V1 << 4) | flags);
    if let Some(x) = record.expiry {
        out.extend_from_slice(&x.to_le_bytes());
    }
    if let Some(k) = record.full_key {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
    }
    if let Payload::Json(j) = record.payload {
        out.extend_from_slice(j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_records<'a>(key: &'a [u8], body: &'a [u8]) -> Vec<Record<'a>> {
        let mut all = Vec::new();
        for expiry in [None, Some(0), Some(1_700_000_000_000)] {
            for full_key in [None, Some(&b"k"[..]), Some(key)] {
                for access in [None, Some(29_000_000)] {
                    for payload in [
                        Payload::Undefined,
                        Payload::MsgPack(&[0xc0]),
                        Payload::MsgPack(body),
                        Payload::Json(b"{}"),
                        Payload::Json(b"\"x\""),
                    ] {
                        all.push(Record {
                            expiry,
                            full_key,
                            access,
                            payload,
                        });
                    }
                }
            }
        }
        all
    }

    #[test]
    fn records_round_trip_with_every_flag_combination() {
        let long = [7u8; 600];
        for r in sample_records(&long, b"\x92\x01\x02") {
            let mut out = Vec::new();
            r.encode_into(b"stored\0", &mut out);
            assert_eq!(Record::decode(b"stored\0", &out).unwrap(), r);
        }
    }

    #[test]
    fn format_1_records_still_decode_and_carry_json() {
        let long = [7u8; 600];
        for r in sample_records(&long, b"") {
            if matches!(r.payload, Payload::MsgPack(_)) || r.access.is_some() {
                continue;
            }
            let mut out = Vec::new();
            encode_v1_into(&r, &mut out);
            assert_eq!(Record::decode(b"any key", &out).unwrap(), r);
        }
    }

    #[test]
    fn a_put_is_messagepack_unless_only_json_can_carry_it() {
        let mut out = Vec::new();
        encode_put(
            b"k\0",
            None,
            None,
            Payload::Json(br#"{"a":[1,"x"]}"#),
            &mut out,
        );
        let r = Record::decode(b"k\0", &out).unwrap();
        assert_eq!(
            r.payload,
            Payload::MsgPack(&[0x81, 0xa1, b'a', 0x92, 0x01, 0xa1, b'x'])
        );
        for json in [&br#"{"__proto__":1}"#[..], br#""\ud800""#] {
            out.clear();
            encode_put(b"k\0", Some(5), None, Payload::Json(json), &mut out);
            let r = Record::decode(b"k\0", &out).unwrap();
            assert_eq!(r.payload, Payload::Json(json));
            assert_eq!(r.expiry, Some(5));
        }
        out.clear();
        encode_put(b"k\0", None, None, Payload::Undefined, &mut out);
        assert_eq!(
            Record::decode(b"k\0", &out).unwrap().payload,
            Payload::Undefined
        );
        out.clear();
        encode_put(
            b"k\0",
            None,
            None,
            Payload::MsgPack(&[0x92, 0x01, 0x02]),
            &mut out,
        );
        assert_eq!(
            Record::decode(b"k\0", &out).unwrap().payload,
            Payload::MsgPack(&[0x92, 0x01, 0x02])
        );
        out.clear();
        encode_put(b"k\0", None, None, Payload::Undefined, &mut out);
        assert_eq!(
            Record::decode(b"k\0", &out).unwrap().payload,
            Payload::Undefined
        );
    }

    #[test]
    fn restamping_sets_the_access_time_and_keeps_everything_else() {
        let long = [7u8; 600];
        let mut out = Vec::new();
        let mut again = Vec::new();
        for r in sample_records(&long, b"\x92\x01\x02") {
            out.clear();
            r.encode_into(b"k\0", &mut out);
            restamp(b"k\0", &out, 1234, &mut again).unwrap();
            let got = Record::decode(b"k\0", &again).unwrap();
            assert_eq!(
                got,
                Record {
                    access: Some(1234),
                    ..r
                }
            );
            let extra = if r.access.is_some() { 0 } else { 4 };
            assert_eq!(again.len(), out.len() + extra);
        }
        // A damaged record is not restamped (that would seal the damage under a checksum).
        out.clear();
        encode_put(b"k\0", None, None, Payload::Json(b"1"), &mut out);
        let last = out.len() - 1;
        out[last] ^= 1;
        assert!(restamp(b"k\0", &out, 1, &mut again).is_err());
        let mut v1 = Vec::new();
        encode_v1_into(
            &Record {
                expiry: None,
                full_key: None,
                access: None,
                payload: Payload::Json(b"1"),
            },
            &mut v1,
        );
        assert!(restamp(b"k\0", &v1, 1, &mut again).is_err());
    }

    #[test]
    fn a_record_read_under_another_key_fails_its_checksum() {
        let mut out = Vec::new();
        encode_put(b"a\0", None, None, Payload::Json(b"1"), &mut out);
        assert!(Record::decode(b"b\0", &out).is_err());
        assert!(Record::decode_unverified(&out).is_ok());
    }

    #[test]
    fn expired_means_expiry_at_or_before_now() {
        let r = Record {
            expiry: Some(10),
            full_key: None,
            access: None,
            payload: Payload::Undefined,
        };
        assert!(!r.is_expired(9));
        assert!(r.is_expired(10));
        assert!(r.is_expired(11));
        assert!(!Record { expiry: None, ..r }.is_expired(u64::MAX));
    }

    #[test]
    fn js_expiry_rounds_up_and_treats_infinity_as_never() {
        assert_eq!(expiry_from_js(10.2), Some(11));
        assert_eq!(expiry_from_js(10.0), Some(10));
        assert_eq!(expiry_from_js(-5.0), Some(0));
        assert_eq!(expiry_from_js(f64::INFINITY), None);
    }

    /// Stored key, expiry, full key, access time, payload kind (0 undefined, 1 MessagePack,
    /// 2 JSON) and payload bytes of a generated record.
    type RecordParts = (
        Vec<u8>,
        Option<u64>,
        Option<Vec<u8>>,
        Option<u32>,
        u8,
        Vec<u8>,
    );

    fn any_record() -> impl Strategy<Value = RecordParts> {
        (
            proptest::collection::vec(any::<u8>(), 1..40),
            proptest::option::of(any::<u64>()),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..700)),
            proptest::option::of(any::<u32>()),
            0u8..3,
            proptest::collection::vec(any::<u8>(), 1..300),
        )
    }

    fn build(parts: &RecordParts) -> Record<'_> {
        let (_, expiry, full_key, access, kind, body) = parts;
        Record {
            expiry: *expiry,
            full_key: full_key.as_deref(),
            access: *access,
            payload: match kind {
                0 => Payload::Undefined,
                1 => Payload::MsgPack(body),
                _ => Payload::Json(body),
            },
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// Any double JS may send as an expiry is accepted: NaN and +Infinity are no expiry,
        /// anything else whole milliseconds at or after it (0 for the past, at most 2^64).
        #[test]
        fn expiry_from_js_accepts_any_double(bits in any::<u64>()) {
            let ms = f64::from_bits(bits);
            match expiry_from_js(ms) {
                None => prop_assert!(ms.is_nan() || ms == f64::INFINITY),
                Some(x) if ms > 0.0 && ms < u64::MAX as f64 => prop_assert!(x as f64 >= ms),
                Some(x) if ms <= 0.0 => prop_assert_eq!(x, 0),
                Some(x) => prop_assert_eq!(x, u64::MAX),
            }
        }
    }

    proptest! {
        #[test]
        fn every_record_round_trips(parts in any_record()) {
            let r = build(&parts);
            let mut out = Vec::new();
            r.encode_into(&parts.0, &mut out);
            prop_assert_eq!(Record::decode(&parts.0, &out).unwrap(), r);
        }

        /// One damaged byte anywhere in a record, or in its key, is always caught.
        #[test]
        fn any_flipped_byte_fails_the_checksum_or_the_parse(
            parts in any_record(),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
            in_key in any::<bool>(),
        ) {
            let r = build(&parts);
            let mut out = Vec::new();
            r.encode_into(&parts.0, &mut out);
            let mut key = parts.0.clone();
            if in_key {
                let i = at.index(key.len());
                key[i] ^= flip;
            } else {
                let i = at.index(out.len());
                out[i] ^= flip;
            }
            // The one damage a checksum cannot see: a version nibble flipped from 2 to 1, which
            // turns the record into a format-1 one (those have no checksum). Known gap: a
            // directory created in format 2 could refuse format-1 records; not done yet.
            let became_v1 = !in_key && out[0] >> 4 == V1;
            prop_assert!(became_v1 || Record::decode(&key, &out).is_err());
        }

        /// Arbitrary bytes never panic, and anything accepted re-encodes to the same bytes.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(r) = Record::decode_unverified(&bytes) {
                if bytes[0] >> 4 == RECORD_VERSION {
                    let mut again = Vec::new();
                    r.encode_into(b"", &mut again);
                    prop_assert_eq!(&again[CHECKED_FROM..], &bytes[CHECKED_FROM..]);
                }
            }
            let _ = Record::decode(b"key", &bytes);
        }
    }
}
