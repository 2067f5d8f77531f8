//! Shapes: the key lists that stored objects share, kept once per directory in the meta
//! database, so that a record holds an object's values without its keys.
//!
//! A stored MessagePack payload is the subset [`crate::codec`] describes plus record
//! references, the layout msgpackr's `Unpackr` reads with shared structures
//! (`getStructures`): a byte 0x40..=0x5f is shape id 0..=31; a byte 0x60..=0x7f followed by a
//! byte `h` is shape id 32 + (b & 0x1f) + 32·h. The object's values follow, in the shape's key
//! order. Positive fixints 0x40..=0x7f are therefore never stored as such: 64..=127 take the
//! two-byte 0xcc form.
//!
//! The writer thread turns maps into references as it writes ([`ShapeTable::shape`]), inside
//! the write transaction, where the table in the file is authoritative: processes never race
//! for an id.
//!
//! Invariants:
//! * Ids are dense and append-only. Id n is stored in the transaction that first uses it and
//!   never changes meaning; a reader that meets an id it does not know reloads the table, and
//!   finds it there, since the record and the shape were committed together.
//! * A shape has 1..=[`MAX_SHAPE_KEYS`] distinct keys, none of them `__proto__` (msgpackr
//!   renames that key; JSON.parse keeps it).
//! * Every stored shape carries a CRC-32C of its key and body; a shape that fails it is never
//!   used, and the table stops growing there (a later id could not be told from the damaged
//!   one).

use std::collections::{HashMap, HashSet};
use std::fmt;

/// The most shapes a directory holds; objects of other shapes stay maps. (msgpackr reads ids
/// up to 8,223.)
pub const MAX_SHAPES: u32 = 4096;
/// Objects with more keys than this stay maps: they are dictionaries more often than records.
pub const MAX_SHAPE_KEYS: usize = 32;
/// Shape key lists seen once and remembered, waiting for a second sighting; then forgotten.
const MAX_CANDIDATES: usize = 16_384;
/// Deeper than any encoder of this package nests (128); a guard for the recursion only.
const MAX_DEPTH: u32 = 256;

/// The meta database key of shape `id` is this prefix and the id as a big-endian u32.
pub const SHAPE_KEY_PREFIX: &[u8] = b"shape/";
const CRC_LEN: usize = 4;

/// Why a payload could not be shaped, or a stored shape could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeError {
    /// The payload is not in the MessagePack subset this package writes (a bug upstream).
    Malformed { at: usize, detail: &'static str },
    /// The stored shape `id` failed its checksum or does not decode.
    Damaged { id: u32, detail: String },
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeError::Malformed { at, detail } => {
                write!(f, "a value to store is not MessagePack this package writes: {detail} at byte {at}")
            }
            ShapeError::Damaged { id, detail } => {
                write!(f, "the stored shape {id} is damaged: {detail}")
            }
        }
    }
}

impl std::error::Error for ShapeError {}

/// The meta database key of shape `id`.
pub fn stored_key(id: u32) -> [u8; 10] {
    let mut key = [0u8; 10];
    key[..6].copy_from_slice(SHAPE_KEY_PREFIX);
    key[6..].copy_from_slice(&id.to_be_bytes());
    key
}

/// The id a meta database key names, if it is a shape's key.
pub fn id_of_key(key: &[u8]) -> Option<u32> {
    let rest = key.strip_prefix(SHAPE_KEY_PREFIX)?;
    Some(u32::from_be_bytes(rest.try_into().ok()?))
}

/// The stored form of a shape: `[u32 LE CRC-32C of key ‖ body][body]`, the body a MessagePack
/// array of the keys as str. `signature` is the keys' str encodings, concatenated.
pub fn encode_stored(id: u32, signature: &[u8], key_count: usize) -> Vec<u8> {
    let mut out = vec![0; CRC_LEN];
    write_array_header(&mut out, key_count);
    out.extend_from_slice(signature);
    let sum = crc32c::crc32c_append(crc32c::crc32c(&stored_key(id)), &out[CRC_LEN..]);
    out[..CRC_LEN].copy_from_slice(&sum.to_le_bytes());
    out
}

/// The keys of a stored shape, checked against its checksum and the invariants above.
pub fn decode_stored(id: u32, bytes: &[u8]) -> Result<Vec<String>, ShapeError> {
    let damaged = |detail: &str| ShapeError::Damaged {
        id,
        detail: detail.to_string(),
    };
    if bytes.len() < CRC_LEN {
        return Err(damaged("shorter than its checksum"));
    }
    let (sum, body) = bytes.split_at(CRC_LEN);
    let expected = crc32c::crc32c_append(crc32c::crc32c(&stored_key(id)), body);
    if sum != expected.to_le_bytes() {
        return Err(damaged("checksum mismatch"));
    }
    let mut c = Cursor { b: body, pos: 0 };
    let n = match c.byte() {
        Ok(t @ 0x90..=0x9f) => (t & 0x0f) as usize,
        Ok(0xdc) => c.be(2).map_err(|_| damaged("truncated"))? as usize,
        _ => return Err(damaged("not an array of keys")),
    };
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        let key = c.str().map_err(|_| damaged("a key is not a string"))?;
        let key = std::str::from_utf8(key).map_err(|_| damaged("a key is not UTF-8"))?;
        keys.push(key.to_string());
    }
    if c.pos != body.len() {
        return Err(damaged("trailing bytes"));
    }
    let distinct: HashSet<&String> = keys.iter().collect();
    if n == 0
        || n > MAX_SHAPE_KEYS
        || distinct.len() != n
        || distinct.contains(&"__proto__".to_string())
    {
        return Err(damaged("not a key list this package stores"));
    }
    Ok(keys)
}

/// The shapes of one directory as the writer thread knows them, and the candidates it has
/// seen once.
#[derive(Default)]
pub struct ShapeTable {
    ids: HashMap<Vec<u8>, u32>,
    /// Signature by id.
    signatures: Vec<Vec<u8>>,
    /// How many ids the file held after the last commit of this writer.
    committed: usize,
    /// A stored shape was damaged: no more ids are given (the next one is taken).
    frozen: bool,
    seen: HashSet<Vec<u8>>,
    /// Ids given since the last [`ShapeTable::take_registered`], to store.
    registered: Vec<u32>,
    /// Scratch: the signature of the map being looked at.
    sig: Vec<u8>,
}

impl ShapeTable {
    /// The number of ids known (stored, or given in the open transaction).
    pub fn len(&self) -> u32 {
        self.signatures.len() as u32
    }

    /// Forgets ids given since the last commit (their transaction was aborted).
    pub fn rollback(&mut self) {
        for sig in self.signatures.drain(self.committed..) {
            self.ids.remove(&sig);
            // Seen twice already: the next sighting gives it an id again.
            self.seen.insert(sig);
        }
        self.registered.clear();
    }

    /// The open transaction committed: its ids are stored.
    pub fn mark_committed(&mut self) {
        self.committed = self.signatures.len();
    }

    /// Adds the stored shape that has the next id; a damaged one freezes the table.
    pub fn load(&mut self, id: u32, stored: &[u8]) -> Result<(), ShapeError> {
        if id != self.len() {
            self.frozen = true;
            return Err(ShapeError::Damaged {
                id: self.len(),
                detail: format!("missing (the next stored shape is {id})"),
            });
        }
        let keys = decode_stored(id, stored).inspect_err(|_| self.frozen = true)?;
        let mut sig = Vec::new();
        for key in &keys {
            write_str(&mut sig, key.as_bytes());
        }
        self.seen.remove(&sig);
        self.ids.insert(sig.clone(), id);
        self.signatures.push(sig);
        self.committed = self.signatures.len();
        Ok(())
    }

    /// The shapes given since the last call, as `(id, stored bytes)`, to put in the meta
    /// database in the same transaction.
    pub fn take_registered(&mut self) -> Vec<(u32, Vec<u8>)> {
        let ids = std::mem::take(&mut self.registered);
        ids.into_iter()
            .map(|id| {
                let sig = &self.signatures[id as usize];
                (id, encode_stored(id, sig, count_strs(sig)))
            })
            .collect()
    }

    /// Appends to `out` the MessagePack `input` with every map of a known shape written as a
    /// reference and its values, and positive fixints 0x40..=0x7f in their 0xcc form. A map
    /// whose key list is seen for the second time is given an id first.
    pub fn shape(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), ShapeError> {
        let mut c = Cursor { b: input, pos: 0 };
        self.shape_value(&mut c, out, 0)?;
        if c.pos != input.len() {
            return Err(c.malformed("trailing bytes"));
        }
        Ok(())
    }

    fn shape_value(
        &mut self,
        c: &mut Cursor<'_>,
        out: &mut Vec<u8>,
        depth: u32,
    ) -> Result<(), ShapeError> {
        if depth > MAX_DEPTH {
            return Err(c.malformed("nested too deep"));
        }
        let start = c.pos;
        let t = c.byte()?;
        match t {
            0x40..=0x7f => out.extend_from_slice(&[0xcc, t]),
            0x80..=0x8f => self.shape_map(c, out, start, (t & 0x0f) as usize, depth)?,
            0xde | 0xdf => {
                let n = c.be(if t == 0xde { 2 } else { 4 })? as usize;
                self.shape_map(c, out, start, n, depth)?
            }
            0x90..=0x9f | 0xdc | 0xdd => {
                let n = match t {
                    0xdc => c.be(2)? as usize,
                    0xdd => c.be(4)? as usize,
                    _ => (t & 0x0f) as usize,
                };
                out.extend_from_slice(&c.b[start..c.pos]);
                for _ in 0..n {
                    self.shape_value(c, out, depth + 1)?;
                }
            }
            _ => {
                c.pos = start;
                c.skip_scalar()?;
                out.extend_from_slice(&c.b[start..c.pos]);
            }
        }
        Ok(())
    }

    /// A map of `n` entries whose header is `c.b[header_at..c.pos]`.
    fn shape_map(
        &mut self,
        c: &mut Cursor<'_>,
        out: &mut Vec<u8>,
        header_at: usize,
        n: usize,
        depth: u32,
    ) -> Result<(), ShapeError> {
        let entries_at = c.pos;
        let id = if n == 0 || n > MAX_SHAPE_KEYS {
            None
        } else {
            let mut sig = std::mem::take(&mut self.sig);
            sig.clear();
            let mut eligible = true;
            for _ in 0..n {
                let key = c.str()?;
                eligible &= key != b"__proto__";
                write_str(&mut sig, key);
                c.skip_value(depth + 1)?;
            }
            c.pos = entries_at;
            let id = if eligible { self.id_for(&sig, n) } else { None };
            self.sig = sig;
            id
        };
        match id {
            Some(id) => write_ref(out, id),
            None => out.extend_from_slice(&c.b[header_at..entries_at]),
        }
        for _ in 0..n {
            let key_at = c.pos;
            c.str()?;
            if id.is_none() {
                out.extend_from_slice(&c.b[key_at..c.pos]);
            }
            self.shape_value(c, out, depth + 1)?;
        }
        Ok(())
    }

    /// The id of the key list `sig` (`n` keys): known, or given now at its second sighting.
    fn id_for(&mut self, sig: &[u8], n: usize) -> Option<u32> {
        if let Some(&id) = self.ids.get(sig) {
            return Some(id);
        }
        if self.frozen || self.len() >= MAX_SHAPES {
            return None;
        }
        if !self.seen.remove(sig) {
            if self.seen.len() >= MAX_CANDIDATES {
                self.seen.clear();
            }
            self.seen.insert(sig.to_vec());
            return None;
        }
        if !keys_distinct(sig, n) {
            return None;
        }
        let id = self.len();
        self.ids.insert(sig.to_vec(), id);
        self.signatures.push(sig.to_vec());
        self.registered.push(id);
        Some(id)
    }

    /// `input` with every record reference written back as a map (for tests and tools).
    #[cfg(test)]
    pub fn unshape(&self, input: &[u8]) -> Result<Vec<u8>, ShapeError> {
        let mut out = Vec::new();
        let mut c = Cursor { b: input, pos: 0 };
        self.unshape_value(&mut c, &mut out)?;
        Ok(out)
    }

    #[cfg(test)]
    fn unshape_value(&self, c: &mut Cursor<'_>, out: &mut Vec<u8>) -> Result<(), ShapeError> {
        let start = c.pos;
        let t = c.byte()?;
        let (n, map) = match t {
            0x40..=0x7f => {
                let id = if t < 0x60 {
                    (t - 0x40) as usize
                } else {
                    32 + (t & 0x1f) as usize + 32 * c.byte()? as usize
                };
                let sig = self
                    .signatures
                    .get(id)
                    .ok_or(c.malformed("unknown shape"))?;
                let mut keys = Cursor { b: sig, pos: 0 };
                write_map_header(out, count_strs(sig));
                while keys.pos < sig.len() {
                    let key_at = keys.pos;
                    keys.str()?;
                    out.extend_from_slice(&sig[key_at..keys.pos]);
                    self.unshape_value(c, out)?;
                }
                return Ok(());
            }
            0x80..=0x8f => ((t & 0x0f) as usize, true),
            0xde => (c.be(2)? as usize, true),
            0xdf => (c.be(4)? as usize, true),
            0x90..=0x9f => ((t & 0x0f) as usize, false),
            0xdc => (c.be(2)? as usize, false),
            0xdd => (c.be(4)? as usize, false),
            _ => {
                c.pos = start;
                c.skip_scalar()?;
                out.extend_from_slice(&c.b[start..c.pos]);
                return Ok(());
            }
        };
        out.extend_from_slice(&c.b[start..c.pos]);
        for _ in 0..n * if map { 2 } else { 1 } {
            self.unshape_value(c, out)?;
        }
        Ok(())
    }
}

fn write_ref(out: &mut Vec<u8>, id: u32) {
    if id < 32 {
        out.push(0x40 | id as u8);
    } else {
        let r = id - 32;
        out.extend_from_slice(&[0x60 | (r & 0x1f) as u8, (r >> 5) as u8]);
    }
}

fn write_str(out: &mut Vec<u8>, s: &[u8]) {
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_str_len(out, s.len() as u32);
    out.extend_from_slice(s);
}

fn write_array_header(out: &mut Vec<u8>, n: usize) {
    let _ = rmp::encode::write_array_len(out, n as u32);
}

#[cfg(test)]
fn write_map_header(out: &mut Vec<u8>, n: usize) {
    let _ = rmp::encode::write_map_len(out, n as u32);
}

/// The number of str encodings in a signature.
fn count_strs(sig: &[u8]) -> usize {
    let mut c = Cursor { b: sig, pos: 0 };
    let mut n = 0;
    while c.pos < sig.len() && c.str().is_ok() {
        n += 1;
    }
    n
}

fn keys_distinct(sig: &[u8], n: usize) -> bool {
    let mut c = Cursor { b: sig, pos: 0 };
    let mut keys = Vec::with_capacity(n);
    while c.pos < sig.len() {
        match c.str() {
            Ok(k) => keys.push(k),
            Err(_) => return false,
        }
    }
    let set: HashSet<&[u8]> = keys.iter().copied().collect();
    set.len() == keys.len()
}

/// A bounds-checked reader over MessagePack bytes.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn malformed(&self, detail: &'static str) -> ShapeError {
        ShapeError::Malformed {
            at: self.pos,
            detail,
        }
    }

    fn byte(&mut self) -> Result<u8, ShapeError> {
        let b = *self.b.get(self.pos).ok_or(self.malformed("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ShapeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or(self.malformed("truncated"))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// A big-endian unsigned integer of `n` bytes.
    fn be(&mut self, n: usize) -> Result<u64, ShapeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| acc << 8 | b as u64))
    }

    /// A str's bytes.
    fn str(&mut self) -> Result<&'a [u8], ShapeError> {
        let n = match self.byte()? {
            t @ 0xa0..=0xbf => (t & 0x1f) as usize,
            0xd9 => self.be(1)? as usize,
            0xda => self.be(2)? as usize,
            0xdb => self.be(4)? as usize,
            _ => {
                self.pos -= 1;
                return Err(self.malformed("a map key is not a string"));
            }
        };
        self.take(n)
    }

    /// Skips a value that is not a container (or the reference-free subset's scalars).
    fn skip_scalar(&mut self) -> Result<(), ShapeError> {
        let t = self.byte()?;
        let n = match t {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => 0,
            0xa0..=0xbf => (t & 0x1f) as usize,
            0xd9 => self.be(1)? as usize,
            0xda => self.be(2)? as usize,
            0xdb => self.be(4)? as usize,
            0xcc | 0xd0 => 1,
            0xcd | 0xd1 => 2,
            0xce | 0xd2 => 4,
            0xcb => 8,
            _ => {
                self.pos -= 1;
                return Err(self.malformed("a type this package never writes"));
            }
        };
        self.take(n).map(|_| ())
    }

    /// Skips one value of the input subset (no references).
    fn skip_value(&mut self, depth: u32) -> Result<(), ShapeError> {
        if depth > MAX_DEPTH {
            return Err(self.malformed("nested too deep"));
        }
        let t = *self.b.get(self.pos).ok_or(self.malformed("truncated"))?;
        let (n, per) = match t {
            0x80..=0x8f => ((t & 0x0f) as usize, 2),
            0x90..=0x9f => ((t & 0x0f) as usize, 1),
            0xde | 0xdc => {
                self.pos += 1;
                (self.be(2)? as usize, if t == 0xde { 2 } else { 1 })
            }
            0xdf | 0xdd => {
                self.pos += 1;
                (self.be(4)? as usize, if t == 0xdf { 2 } else { 1 })
            }
            _ => return self.skip_scalar(),
        };
        if t < 0xa0 {
            self.pos += 1;
        }
        for _ in 0..n * per {
            self.skip_value(depth + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::json_to_msgpack;
    use proptest::prelude::*;

    fn msgpack(json: &str) -> Vec<u8> {
        let mut out = Vec::new();
        json_to_msgpack(json.as_bytes(), &mut out).unwrap();
        out
    }

    fn shaped(table: &mut ShapeTable, json: &str) -> Vec<u8> {
        let mut out = Vec::new();
        table.shape(&msgpack(json), &mut out).unwrap();
        out
    }

    fn as_json(bytes: &[u8]) -> serde_json::Value {
        rmp_serde::from_slice(bytes).unwrap()
    }

    #[test]
    fn a_key_list_gets_an_id_at_its_second_sighting_and_is_then_a_reference() {
        let mut t = ShapeTable::default();
        let first = shaped(&mut t, r#"{"a":1,"b":"x"}"#);
        assert_eq!(
            first,
            msgpack(r#"{"a":1,"b":"x"}"#),
            "seen once: stays a map"
        );
        assert_eq!(t.len(), 0);
        let second = shaped(&mut t, r#"{"a":2,"b":"y"}"#);
        assert_eq!(second, vec![0x40, 0x02, 0xa1, b'y']);
        assert_eq!(t.take_registered().len(), 1);
        assert!(t.take_registered().is_empty());
    }

    #[test]
    fn fixints_from_64_take_the_two_byte_form_so_they_are_never_read_as_references() {
        let mut t = ShapeTable::default();
        assert_eq!(
            shaped(&mut t, "[63,64,127,128]"),
            vec![0x94, 63, 0xcc, 64, 0xcc, 127, 0xcc, 128]
        );
    }

    #[test]
    fn ids_past_31_take_two_bytes_as_msgpackr_reads_them() {
        let mut out = Vec::new();
        write_ref(&mut out, 31);
        write_ref(&mut out, 32);
        write_ref(&mut out, 63);
        write_ref(&mut out, 64);
        write_ref(&mut out, 4095);
        assert_eq!(out, vec![0x5f, 0x60, 0, 0x7f, 0, 0x60, 1, 0x60 | 31, 126]);
    }

    #[test]
    fn proto_keys_and_wide_maps_stay_maps() {
        let mut t = ShapeTable::default();
        let proto = r#"{"__proto__":1,"a":2}"#;
        let wide: String = format!(
            "{{{}}}",
            (0..=MAX_SHAPE_KEYS)
                .map(|i| format!("\"k{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        for _ in 0..3 {
            let mut out = Vec::new();
            // The transcoder refuses __proto__; build its MessagePack by hand.
            let mut input = vec![0x82];
            write_str(&mut input, b"__proto__");
            input.push(1);
            write_str(&mut input, b"a");
            input.push(2);
            t.shape(&input, &mut out).unwrap();
            assert_eq!(out, input, "{proto}");
            assert_eq!(shaped(&mut t, &wide), msgpack(&wide));
        }
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn a_rolled_back_id_is_given_again_and_committed_ids_stay() {
        let mut t = ShapeTable::default();
        shaped(&mut t, r#"{"a":1}"#);
        shaped(&mut t, r#"{"a":1}"#);
        t.mark_committed();
        shaped(&mut t, r#"{"b":1}"#);
        shaped(&mut t, r#"{"b":1}"#);
        assert_eq!(t.len(), 2);
        t.rollback();
        assert_eq!(t.len(), 1);
        assert_eq!(shaped(&mut t, r#"{"a":5}"#), vec![0x40, 5]);
        assert_eq!(
            shaped(&mut t, r#"{"b":5}"#),
            vec![0x41, 5],
            "seen before the rollback"
        );
    }

    #[test]
    fn stored_shapes_round_trip_and_damage_is_refused() {
        let mut t = ShapeTable::default();
        shaped(&mut t, r#"{"id":1,"name":"n"}"#);
        shaped(&mut t, r#"{"id":1,"name":"n"}"#);
        let stored = t.take_registered();
        assert_eq!(stored.len(), 1);
        let (id, bytes) = &stored[0];
        assert_eq!(decode_stored(*id, bytes).unwrap(), vec!["id", "name"]);
        assert!(
            decode_stored(id + 1, bytes).is_err(),
            "the checksum covers the id"
        );
        let mut other = ShapeTable::default();
        other.load(0, bytes).unwrap();
        assert_eq!(
            shaped(&mut other, r#"{"id":2,"name":"m"}"#),
            shaped(&mut t, r#"{"id":2,"name":"m"}"#)
        );
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x10;
            assert!(decode_stored(*id, &damaged).is_err(), "flip at {i}");
        }
        let mut frozen = ShapeTable::default();
        let mut damaged = bytes.clone();
        damaged[5] ^= 1;
        assert!(frozen.load(0, &damaged).is_err());
        shaped(&mut frozen, r#"{"x":1}"#);
        assert_eq!(
            shaped(&mut frozen, r#"{"x":1}"#),
            msgpack(r#"{"x":1}"#),
            "no id after damage"
        );
    }

    #[test]
    fn what_the_encoders_never_write_is_refused() {
        let mut t = ShapeTable::default();
        for bad in [
            &[0xcf, 0, 0, 0, 0, 0, 0, 0, 1][..],
            &[0x81, 0x01, 0x02],
            &[0x92, 0x01],
            &[0xc1],
            &[0x01, 0x02],
        ] {
            assert!(t.shape(bad, &mut Vec::new()).is_err(), "{bad:?}");
        }
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let key =
            prop::sample::select(vec!["a", "b", "id", "name", "tags", "__proto__x", "é", "0"]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-300i64..300).prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(Value::from),
            "[a-z]{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 200, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..6).prop_map(|kv| Value::Object(
                    kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            ]
        })
    }

    proptest! {
        #[test]
        fn shaping_then_unshaping_gives_the_same_value(values in prop::collection::vec(json_value(), 1..12)) {
            let mut t = ShapeTable::default();
            for v in &values {
                let input = msgpack(&v.to_string());
                let mut out = Vec::new();
                t.shape(&input, &mut out).unwrap();
                prop_assert_eq!(as_json(&t.unshape(&out).unwrap()), as_json(&input));
                // Shaped again, with every shape now known: still the same value.
                let mut again = Vec::new();
                t.shape(&input, &mut again).unwrap();
                prop_assert_eq!(as_json(&t.unshape(&again).unwrap()), as_json(&input));
            }
        }
    }
}
