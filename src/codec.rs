//! The value codec: JSON text (as `JSON.stringify` wrote it) to MessagePack, on the writer
//! thread.
//!
//! JS stays the one authority on what a value is: it runs `JSON.stringify`, and what a read
//! returns must be exactly `JSON.parse` of that text. The MessagePack written here is the
//! subset the JS decoder (msgpackr's `Unpackr`, `useRecords: false`) turns back into that same
//! value:
//!
//! * objects → maps with string keys, in text order; arrays → arrays; strings → str (UTF-8);
//!   `true`/`false`/`null` → bool/nil;
//! * numbers → an int only where the decoder gives back the same JS number (integers within
//!   ±2^31, never `-0`), else a float64 of the value `JSON.parse` gives (serde_json's
//!   `float_roundtrip` parses correctly rounded, as V8 does; an integer literal past 2^53 is
//!   rounded to the nearest double, as `JSON.parse` rounds it). msgpackr reads 64-bit ints
//!   as BigInt and float32 with its own rounding, so neither is ever written.
//!
//! Whatever this subset cannot carry with `JSON.parse` semantics is refused with a
//! [`TranscodeError`], and the record keeps the JSON text instead: a `"__proto__"` key (which
//! msgpackr renames; `JSON.parse` keeps it as an own property), a lone surrogate escape
//! (not UTF-8), nesting deeper than serde_json's limit of 128, a number out of the f64 range.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Why a JSON text is kept as JSON rather than transcoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscodeError(String);

impl fmt::Display for TranscodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kept as JSON: {}", self.0)
    }
}

impl std::error::Error for TranscodeError {}

impl serde::de::Error for TranscodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        TranscodeError(msg.to_string())
    }
}

/// Appends the MessagePack form of the JSON text `json` to `out`. On error `out` may hold a
/// partial encoding past its old length: the caller truncates it.
pub fn json_to_msgpack(json: &[u8], out: &mut Vec<u8>) -> Result<(), TranscodeError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    Value { out }
        .deserialize(&mut de)
        .map_err(|e| TranscodeError(e.to_string()))?;
    de.end().map_err(|e| TranscodeError(e.to_string()))
}

/// Integers the decoder reads back as the same JS number: int32/uint32 encodings only.
const INT_MIN: i64 = i32::MIN as i64;
const UINT_MAX: u64 = u32::MAX as u64;

fn write_f64(out: &mut Vec<u8>, x: f64) {
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_f64(out, x);
}

fn write_number(out: &mut Vec<u8>, x: f64) {
    // An integral double in int32 range is written as an int (smaller, read back equal);
    // -0 stays a double, so it reads back as -0.
    if x.fract() == 0.0
        && x >= INT_MIN as f64
        && x <= UINT_MAX as f64
        && !(x == 0.0 && x.is_sign_negative())
    {
        if x >= 0.0 {
            let _ = rmp::encode::write_uint(out, x as u64);
        } else {
            let _ = rmp::encode::write_sint(out, x as i64);
        }
    } else {
        write_f64(out, x);
    }
}

/// Replaces the 5-byte container header reserved at `at` by the smallest header for `len`
/// items, moving the items' bytes down over the unused part.
fn finish_header(
    out: &mut Vec<u8>,
    at: usize,
    len: usize,
    map: bool,
) -> Result<(), TranscodeError> {
    let len = u32::try_from(len).map_err(|_| TranscodeError("more than 2^32 items".into()))?;
    let mut header = Vec::with_capacity(5);
    let _ = if map {
        rmp::encode::write_map_len(&mut header, len)
    } else {
        rmp::encode::write_array_len(&mut header, len)
    };
    out[at..at + header.len()].copy_from_slice(&header);
    out.drain(at + header.len()..at + 5);
    Ok(())
}

/// Writes one JSON value as MessagePack.
struct Value<'o> {
    out: &'o mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for Value<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Value<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        let _ = rmp::encode::write_nil(self.out);
        Ok(())
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        let _ = rmp::encode::write_bool(self.out, v);
        Ok(())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        if v <= UINT_MAX {
            let _ = rmp::encode::write_uint(self.out, v);
        } else {
            // Round to nearest, ties to even: what JSON.parse does with the literal.
            write_f64(self.out, v as f64);
        }
        Ok(())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        if v >= INT_MIN {
            let _ = rmp::encode::write_sint(self.out, v);
        } else {
            write_f64(self.out, v as f64);
        }
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        if !v.is_finite() {
            return Err(E::custom("a number out of the double range"));
        }
        write_number(self.out, v);
        Ok(())
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        let _ = rmp::encode::write_str(self.out, v);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let at = self.out.len();
        self.out.extend_from_slice(&[0; 5]);
        let mut len = 0usize;
        while seq.next_element_seed(Value { out: self.out })?.is_some() {
            len += 1;
        }
        finish_header(self.out, at, len, false).map_err(serde::de::Error::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let at = self.out.len();
        self.out.extend_from_slice(&[0; 5]);
        let mut len = 0usize;
        while map.next_key_seed(Key { out: self.out })?.is_some() {
            map.next_value_seed(Value { out: self.out })?;
            len += 1;
        }
        finish_header(self.out, at, len, true).map_err(serde::de::Error::custom)
    }
}

/// Writes one object key as a MessagePack str.
struct Key<'o> {
    out: &'o mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        if v == "__proto__" {
            return Err(E::custom("a \"__proto__\" key"));
        }
        let _ = rmp::encode::write_str(self.out, v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcode(json: &str) -> Result<Vec<u8>, TranscodeError> {
        let mut out = Vec::new();
        json_to_msgpack(json.as_bytes(), &mut out).map(|()| out)
    }

    #[test]
    fn small_values_take_the_smallest_encodings() {
        assert_eq!(transcode("null").unwrap(), [0xc0]);
        assert_eq!(transcode("true").unwrap(), [0xc3]);
        assert_eq!(transcode("7").unwrap(), [0x07]);
        assert_eq!(transcode("-1").unwrap(), [0xff]);
        assert_eq!(transcode("\"ab\"").unwrap(), [0xa2, b'a', b'b']);
        assert_eq!(transcode("[]").unwrap(), [0x90]);
        assert_eq!(transcode("{\"a\":1}").unwrap(), [0x81, 0xa1, b'a', 0x01]);
        // 1e2 is the integer 100 to JSON.parse.
        assert_eq!(transcode("1e2").unwrap(), [0x64]);
    }

    #[test]
    fn numbers_outside_int32_become_doubles_never_64_bit_ints() {
        for (text, value) in [
            ("4294967296", 4294967296.0f64),
            ("-2147483649", -2147483649.0),
            ("9007199254740993", 9007199254740992.0),
            ("18446744073709551615", 18446744073709551616.0),
            ("18446744073709552000", 18446744073709551616.0),
            ("-0", -0.0),
            ("0.1", 0.1),
            ("5e-324", 5e-324),
        ] {
            let out = transcode(text).unwrap();
            assert_eq!(out[0], 0xcb, "{text}");
            let got = f64::from_be_bytes(out[1..9].try_into().unwrap());
            assert_eq!(got.to_bits(), value.to_bits(), "{text}");
        }
        assert_eq!(transcode("4294967295").unwrap()[0], 0xce);
        assert_eq!(transcode("-2147483648").unwrap()[0], 0xd2);
    }

    #[test]
    fn what_msgpack_cannot_carry_with_json_semantics_is_refused() {
        assert!(transcode("{\"__proto__\":{\"a\":1}}").is_err());
        assert!(transcode("[{\"b\":{\"__proto__\":1}}]").is_err());
        assert!(transcode("\"\\ud800\"").is_err());
        assert!(transcode("1e400").is_err());
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(transcode(&deep).is_err());
        assert!(transcode("[1,]").is_err());
        assert!(transcode("1 2").is_err());
        // A "__proto__" string that is not a key is an ordinary string.
        assert!(transcode("[\"__proto__\"]").is_ok());
    }

    #[test]
    fn container_headers_shrink_to_fit_and_keep_order() {
        let many: Vec<String> = (0..70_000).map(|i| i.to_string()).collect();
        let json = format!("[{}]", many.join(","));
        let out = transcode(&json).unwrap();
        assert_eq!(out[0], 0xdd);
        assert_eq!(u32::from_be_bytes(out[1..5].try_into().unwrap()), 70_000);
        let decoded: Vec<u32> = rmp_serde::from_slice(&out).unwrap();
        assert_eq!(decoded, (0..70_000).collect::<Vec<u32>>());
        let sixteen = format!("[{}]", vec!["0"; 16].join(","));
        assert_eq!(transcode(&sixteen).unwrap()[..3], [0xdc, 0, 16]);
    }
}
