//! The stored record: a small header, then the value's JSON text.
//!
//! ```text
//! byte 0      : version (high nibble, currently 1) | flags (low nibble)
//!               flag 0x1 HAS_EXPIRY, 0x2 HAS_FULL_KEY, 0x4 UNDEFINED (no JSON payload)
//! [8 bytes]   : expiry, epoch milliseconds, u64 little-endian       (if HAS_EXPIRY)
//! [4 + n]     : full key length u32 LE, then its UTF-8 bytes         (if HAS_FULL_KEY)
//! rest        : the value as JSON text (UTF-8)                       (unless UNDEFINED)
//! ```
//!
//! Decoding never trusts the bytes: every length is bounds-checked.

use crate::error::{CacheError, CacheResult};

pub const RECORD_VERSION: u8 = 1;
const FLAG_HAS_EXPIRY: u8 = 0x1;
const FLAG_HAS_FULL_KEY: u8 = 0x2;
const FLAG_UNDEFINED: u8 = 0x4;
const KNOWN_FLAGS: u8 = FLAG_HAS_EXPIRY | FLAG_HAS_FULL_KEY | FLAG_UNDEFINED;

/// A decoded record borrowing the stored bytes.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Record<'a> {
    /// Absolute expiry in epoch ms; the entry is gone once `expiry <= now`.
    pub expiry: Option<u64>,
    /// The full logical key, for long-form keys only.
    pub full_key: Option<&'a [u8]>,
    /// The JSON text, or `None` for a stored `undefined`.
    pub json: Option<&'a [u8]>,
}

impl<'a> Record<'a> {
    pub fn is_expired(&self, now: u64) -> bool {
        matches!(self.expiry, Some(x) if x <= now)
    }

    /// Appends the encoded record to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut flags = 0u8;
        if self.expiry.is_some() {
            flags |= FLAG_HAS_EXPIRY;
        }
        if self.full_key.is_some() {
            flags |= FLAG_HAS_FULL_KEY;
        }
        if self.json.is_none() {
            flags |= FLAG_UNDEFINED;
        }
        out.push((RECORD_VERSION << 4) | flags);
        if let Some(x) = self.expiry {
            out.extend_from_slice(&x.to_le_bytes());
        }
        if let Some(k) = self.full_key {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k);
        }
        if let Some(j) = self.json {
            out.extend_from_slice(j);
        }
    }

    pub fn encoded_len(&self) -> usize {
        1 + self.expiry.map_or(0, |_| 8)
            + self.full_key.map_or(0, |k| 4 + k.len())
            + self.json.map_or(0, |j| j.len())
    }

    pub fn decode(bytes: &'a [u8]) -> CacheResult<Record<'a>> {
        let corrupt = |detail: &str| CacheError::CorruptRecord {
            detail: detail.to_string(),
        };
        let (&head, mut rest) = bytes.split_first().ok_or_else(|| corrupt("empty record"))?;
        if head >> 4 != RECORD_VERSION {
            return Err(corrupt("unknown record version"));
        }
        let flags = head & 0x0f;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(corrupt("unknown record flags"));
        }
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
        let json = if flags & FLAG_UNDEFINED != 0 {
            if !rest.is_empty() {
                return Err(corrupt("payload after undefined marker"));
            }
            None
        } else {
            Some(rest)
        };
        Ok(Record {
            expiry,
            full_key,
            json,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(r: Record<'_>) {
        let mut out = Vec::new();
        r.encode_into(&mut out);
        assert_eq!(out.len(), r.encoded_len());
        assert_eq!(Record::decode(&out).unwrap(), r);
    }

    #[test]
    fn records_round_trip_with_every_flag_combination() {
        for expiry in [None, Some(0), Some(1_700_000_000_000)] {
            for full_key in [None, Some(&b"k"[..]), Some(&[7u8; 600][..])] {
                for json in [None, Some(&b"{}"[..]), Some(&b""[..]), Some(&b"\"x\""[..])] {
                    round_trip(Record {
                        expiry,
                        full_key,
                        json,
                    });
                }
            }
        }
    }

    #[test]
    fn expired_means_expiry_at_or_before_now() {
        let r = Record {
            expiry: Some(10),
            full_key: None,
            json: None,
        };
        assert!(!r.is_expired(9));
        assert!(r.is_expired(10));
        assert!(r.is_expired(11));
        assert!(!Record { expiry: None, ..r }.is_expired(u64::MAX));
    }

    #[test]
    fn truncated_and_foreign_bytes_are_errors_not_panics() {
        let mut out = Vec::new();
        Record {
            expiry: Some(5),
            full_key: Some(b"abc"),
            json: Some(b"1"),
        }
        .encode_into(&mut out);
        for cut in 0..out.len() - 1 {
            // Every strict prefix but the one that only drops JSON bytes must fail to decode.
            let r = Record::decode(&out[..cut]);
            assert!(r.is_err() || cut >= 1 + 8 + 4 + 3, "cut {cut}");
        }
        assert!(Record::decode(&[0x00]).is_err());
        assert!(Record::decode(&[0x1f]).is_err());
        assert!(Record::decode(&[0x12, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A deterministic sweep over short inputs: decode must return, never panic.
        let mut state = 0x9e3779b97f4a7c15u64;
        for len in 0..64 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        (state & 0xff) as u8
                    })
                    .collect();
                let _ = Record::decode(&bytes);
                let _ = crate::keys::classify(&bytes);
            }
        }
    }

    #[test]
    fn js_expiry_rounds_up_and_treats_infinity_as_never() {
        assert_eq!(expiry_from_js(10.2), Some(11));
        assert_eq!(expiry_from_js(10.0), Some(10));
        assert_eq!(expiry_from_js(-5.0), Some(0));
        assert_eq!(expiry_from_js(f64::INFINITY), None);
    }
}
