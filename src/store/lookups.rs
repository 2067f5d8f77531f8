//! Reads beyond one key: many keys in one read transaction (`getMany`), and the getOrSet
//! lease of a key (see `crate::lease`).

use super::{naming_key, ExpiredEntry, Store};
use crate::error::CacheResult;
use crate::keys::StoredKey;
use crate::lease::{self, Lease};
use crate::record::{Payload, Record};

impl Store {
    /// Looks every full key of `full_keys` up in one read transaction (one snapshot) and
    /// appends to `out` a MessagePack array of one value per key: the stored MessagePack as
    /// it is, a JSON value's text as a str (its index goes to `json_values`), nil where there
    /// is no live entry. `found` gets one byte per key: 1 where a value was found. Expired
    /// entries met are reported in `expired`. Every record is checked against its checksum.
    pub fn get_many(
        &self,
        full_keys: &[&[u8]],
        now: u64,
        out: &mut Vec<u8>,
        json_values: &mut Vec<u32>,
        found: &mut Vec<u8>,
        expired: &mut Vec<ExpiredEntry>,
    ) -> CacheResult<()> {
        self.read(|txn| {
            out.push(0xdd); // array32
            out.extend_from_slice(&(full_keys.len() as u32).to_be_bytes());
            for (i, full_key) in full_keys.iter().enumerate() {
                let stored = StoredKey::encode(full_key);
                let raw = self
                    .entries
                    .get(txn, stored.as_bytes())
                    .map_err(|e| self.heed_error(e))?;
                let record = match raw {
                    Some(bytes) => Some(
                        Record::decode(stored.as_bytes(), bytes)
                            .map_err(|e| naming_key(e, full_key))?,
                    ),
                    None => None,
                }
                // A long key's slot may hold a different key with the same hash.
                .filter(|r| !stored.is_long() || r.full_key == Some(*full_key));
                let payload = match record {
                    Some(r) if r.is_expired(now) => {
                        expired.push(ExpiredEntry {
                            full_key: full_key.to_vec(),
                        });
                        None
                    }
                    Some(r) => Some(r.payload),
                    None => None,
                };
                match payload {
                    Some(Payload::MsgPack(value)) => out.extend_from_slice(value),
                    Some(Payload::Json(text)) => {
                        json_values.push(i as u32);
                        // Written by JS as UTF-8; lossy only for bytes JS would not decode either.
                        let _ = rmp::encode::write_str(out, &String::from_utf8_lossy(text));
                    }
                    Some(Payload::Undefined) | None => {
                        out.push(0xc0);
                        found.push(0);
                        continue;
                    }
                }
                found.push(1);
            }
            Ok(())
        })
    }

    /// The lease of `full_key`, if one is stored (lapsed or not).
    pub fn lease_of(&self, full_key: &[u8]) -> CacheResult<Option<Lease>> {
        let key = lease::stored_key(full_key);
        self.read(|txn| {
            let raw = self.meta.get(txn, &key).map_err(|e| self.heed_error(e))?;
            Ok(raw.and_then(Lease::decode))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::{fresh_store, put_records};

    #[test]
    fn get_many_reads_every_key_in_one_array_with_nil_and_a_zero_for_each_missing_one() {
        let (dir, store) = fresh_store("many");
        let long_key = [b"p:".as_slice(), &[b'x'; 600]].concat();
        put_records(
            &store,
            &[
                (b"p:a", None, Some(b"1")),
                (b"p:json", None, Some(br#"{"__proto__":7}"#)),
                (b"p:expired", Some(5), Some(b"2")),
                (b"p:undefined", None, None),
                (&long_key, None, Some(b"3")),
            ],
        );
        let keys: Vec<&[u8]> = vec![
            b"p:a",
            b"p:missing",
            b"p:json",
            b"p:expired",
            b"p:undefined",
            &long_key,
            b"p:a",
        ];
        let (mut out, mut json, mut found, mut expired) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        store
            .get_many(&keys, 10, &mut out, &mut json, &mut found, &mut expired)
            .unwrap();
        assert_eq!(found, vec![1, 0, 1, 0, 0, 1, 1]);
        assert_eq!(json, vec![2]);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].full_key, b"p:expired");
        let values: serde_json::Value = rmp_serde::from_slice(&out).unwrap();
        assert_eq!(
            values,
            serde_json::json!([1, null, "{\"__proto__\":7}", null, null, 3, 1])
        );
        assert_eq!(store.lease_of(b"p:a").unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
