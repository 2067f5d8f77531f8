//! The writer's ops beyond a plain put and delete: the delete that reports whether it removed
//! a live entry, getOrSet's leases (see `crate::lease`), and the bounded chunks of `clear()`.
//! Each runs inside the writer's current write transaction, so a lease is taken or refused
//! atomically with respect to every other process's writes.

use std::cell::Cell;

use heed::RwTxn;

use super::{Failure, Writer};
use crate::batch::Op;
use crate::keys::{self, StoredKey, StoredKind};
use crate::lease::{self, Lease};
use crate::record::{Payload, Record};

/// Whether a record is an entry reads would return at `now`.
fn is_live(record: &Record<'_>, now: u64) -> bool {
    !record.is_expired(now) && record.payload != Payload::Undefined
}

impl Writer {
    /// Applies one op of a batch; returns 1 when a counted op took effect (a live entry
    /// deleted, a lease taken), else 0.
    pub(super) fn apply_op(
        &mut self,
        txn: &mut RwTxn<'_>,
        op: &Op<'_>,
        now: u64,
    ) -> Result<f64, Failure> {
        match *op {
            Op::Put {
                full_key,
                expiry,
                value,
            } => self.put(txn, full_key, expiry, value)?,
            // A record that cannot be decoded is deleted too: deleting it (or overwriting
            // it) is how a caller repairs the key.
            Op::Del { full_key } => {
                self.delete_if(txn, full_key, |_| true)?;
            }
            Op::DelLive { full_key } => {
                let live = Cell::new(false);
                self.delete_if(txn, full_key, |r| {
                    live.set(r.is_some_and(|r| is_live(r, now)));
                    true
                })?;
                return Ok(if live.get() { 1.0 } else { 0.0 });
            }
            Op::LeaseTake {
                full_key,
                expiry,
                token,
            } => {
                let taken = self.take_lease(txn, full_key, expiry, token, now)?;
                return Ok(if taken { 1.0 } else { 0.0 });
            }
            Op::LeaseDrop { full_key, token } => self.drop_lease(txn, full_key, token)?,
        }
        Ok(0.0)
    }

    /// Takes the lease of `full_key` for `token` unless the key holds a live entry (its value
    /// is already there: nothing to compute) or another owner's lease binds at `now`.
    fn take_lease(
        &mut self,
        txn: &mut RwTxn<'_>,
        full_key: &[u8],
        expiry: u64,
        token: [u8; 8],
        now: u64,
    ) -> Result<bool, Failure> {
        let stored = StoredKey::encode(full_key);
        let raw = self
            .store
            .entries
            .get(txn, stored.as_bytes())
            .map_err(|e| self.classify(e))?;
        if let Some(bytes) = raw {
            if let Ok(record) = Record::decode_unverified(bytes) {
                let same_key = !stored.is_long() || record.full_key == Some(full_key);
                if same_key && is_live(&record, now) {
                    return Ok(false);
                }
            }
        }
        let key = lease::stored_key(full_key);
        let existing = self
            .store
            .meta
            .get(txn, &key)
            .map_err(|e| self.classify(e))?
            .and_then(Lease::decode);
        if !lease::may_take(existing, token, now) {
            return Ok(false);
        }
        self.store
            .meta
            .put(txn, &key, &Lease { expiry, token }.encode())
            .map_err(|e| self.classify(e))?;
        Ok(true)
    }

    /// Drops the lease of `full_key` if `token` still holds it (a lapsed lease another caller
    /// took since is left alone).
    fn drop_lease(
        &mut self,
        txn: &mut RwTxn<'_>,
        full_key: &[u8],
        token: [u8; 8],
    ) -> Result<(), Failure> {
        let key = lease::stored_key(full_key);
        let held = self
            .store
            .meta
            .get(txn, &key)
            .map_err(|e| self.classify(e))?
            .and_then(Lease::decode)
            .is_some_and(|l| l.token == token);
        if held {
            self.store
                .meta
                .delete(txn, &key)
                .map_err(|e| self.classify(e))?;
        }
        Ok(())
    }

    /// Deletes up to `limit` entries whose full key starts with `prefix` (all entries for an
    /// empty prefix), expired and undefined ones included, with their expiry index rows.
    /// Values are never read: a record's header gives its expiry (and a long key's full key).
    /// Returns the count; fewer than `limit` means none is left.
    pub(super) fn clear_chunk(
        &self,
        txn: &mut RwTxn<'_>,
        prefix: &[u8],
        limit: usize,
    ) -> Result<f64, Failure> {
        let start = keys::scan_start(prefix);
        let head = &start[..prefix.len().min(keys::DIRECT_KEY_MAX)];
        // Collect first: LMDB iterators must not outlive the deletes below.
        let mut doomed: Vec<(Vec<u8>, Option<u64>, usize)> = Vec::new();
        {
            // LMDB refuses an empty key, even as a bound.
            let from = if start.is_empty() {
                std::ops::Bound::Unbounded
            } else {
                std::ops::Bound::Included(&start[..])
            };
            let bounds = (from, std::ops::Bound::Unbounded);
            let iter = self
                .store
                .entries
                .range(txn, &bounds)
                .map_err(|e| self.classify(e))?;
            for item in iter {
                let (stored, bytes) = item.map_err(|e| self.classify(e))?;
                if !stored.starts_with(head) || doomed.len() >= limit {
                    break;
                }
                // The main database also holds the named databases' records: not entries.
                let Some(kind) = keys::classify(stored) else {
                    continue;
                };
                let record = Record::decode_unverified(bytes).ok();
                let full_key = match kind {
                    StoredKind::Direct(full) => Some(full),
                    StoredKind::Long => record.and_then(|r| r.full_key),
                };
                // An undecodable long record names no key: only a clear of everything takes
                // it (no other prefix can tell whether it is its own).
                if full_key.map_or(prefix.is_empty(), |k| k.starts_with(prefix)) {
                    doomed.push((stored.to_vec(), record.and_then(|r| r.expiry), bytes.len()));
                }
            }
        }
        let count = doomed.len();
        for (stored, expiry, record_len) in doomed {
            self.remove_entry(txn, &stored, record_len, expiry)?;
        }
        Ok(count as f64)
    }
}

#[cfg(test)]
mod tests {
    use crate::batch::test_encode::{batch, op};
    use crate::protocol::*;
    use crate::registry::tests::{with_store, Replies};
    use crate::writer::WriteKind;

    fn at(now: u64, ops: &[Vec<u8>]) -> WriteKind {
        WriteKind::Batch {
            ops: batch(ops).into(),
            now,
        }
    }

    fn put(key: &[u8], expiry: Option<f64>) -> Vec<u8> {
        op(OP_PUT, expiry, key, Some(b"1"))
    }

    #[test]
    fn a_counted_delete_reports_only_live_entries_and_deletes_expired_ones_too() {
        with_store("del-live", |shared| {
            let r = Replies::new();
            let setup = at(0, &[put(b"live", None), put(b"old", Some(5.0))]);
            assert_eq!(r.run(shared, vec![setup]), vec![Ok(0.0)]);
            let dels =
                [b"live".as_slice(), b"old", b"never"].map(|k| op(OP_DEL_LIVE, None, k, None));
            assert_eq!(r.run(shared, vec![at(10, &dels)]), vec![Ok(1.0)]);
            let found = shared.store.lookup(b"old", |r| r.is_some()).unwrap();
            assert!(!found, "the expired entry went too");
            let again = at(10, &[op(OP_DEL_LIVE, None, b"live", None)]);
            assert_eq!(r.run(shared, vec![again]), vec![Ok(0.0)]);
        });
    }

    #[test]
    fn a_lease_is_taken_once_until_it_lapses_or_its_owner_drops_it_and_never_over_a_value() {
        with_store("lease", |shared| {
            let r = Replies::new();
            let take =
                |token: u8, until: f64| op(OP_LEASE_TAKE, Some(until), b"k", Some(&[token; 8]));
            let drop = |token: u8| op(OP_LEASE_DROP, None, b"k", Some(&[token; 8]));
            // One group: the first take wins, the second finds it held.
            let done = r.run(
                shared,
                vec![at(10, &[take(1, 100.0)]), at(10, &[take(2, 100.0)])],
            );
            assert_eq!(done, vec![Ok(1.0), Ok(0.0)]);
            assert_eq!(
                shared.store.lease_of(b"k").unwrap().map(|l| l.token),
                Some([1; 8])
            );
            // Another owner's drop leaves it; after its expiry anyone takes it.
            assert_eq!(
                r.run(shared, vec![at(20, &[drop(2), take(2, 100.0)])]),
                vec![Ok(0.0)]
            );
            assert_eq!(
                r.run(shared, vec![at(100, &[take(2, 200.0)])]),
                vec![Ok(1.0)]
            );
            // The owner's value and drop in one batch: the key is then not to be computed.
            assert_eq!(
                r.run(shared, vec![at(110, &[put(b"k", None), drop(2)])]),
                vec![Ok(0.0)]
            );
            assert_eq!(shared.store.lease_of(b"k").unwrap(), None);
            assert_eq!(
                r.run(shared, vec![at(120, &[take(3, 300.0)])]),
                vec![Ok(0.0)]
            );
        });
    }

    #[test]
    fn clear_deletes_a_prefix_in_bounded_chunks_with_its_expiry_rows_and_leaves_the_rest() {
        with_store("clear", |shared| {
            let r = Replies::new();
            let mut ops: Vec<Vec<u8>> = (0..CLEAR_CHUNK + 10)
                .map(|i| put(format!("a\u{241f}{i}").as_bytes(), Some(1e12)))
                .collect();
            ops.push(put(
                &[b"a\xe2\x90\x9f".as_slice(), &[b'x'; 700]].concat(),
                None,
            ));
            ops.push(put(b"b\xe2\x90\x9fkept", None));
            ops.push(put(b"a", None));
            assert_eq!(r.run(shared, vec![at(0, &ops)]), vec![Ok(0.0)]);
            let clear = |prefix: &[u8]| WriteKind::Clear {
                prefix: prefix.to_vec(),
            };
            let first = r.run(shared, vec![clear(b"a\xe2\x90\x9f")]);
            assert_eq!(
                first,
                vec![Ok(CLEAR_CHUNK as f64)],
                "a full chunk: maybe more"
            );
            let second = r.run(shared, vec![clear(b"a\xe2\x90\x9f")]);
            assert_eq!(
                second,
                vec![Ok(11.0)],
                "the rest, the long key included: done"
            );
            let stats = shared.store.stats().unwrap();
            assert_eq!(stats.entries, 2, "b's entry and the key 'a' stay");
            assert_eq!(
                r.run(shared, vec![WriteKind::Sweep { now: u64::MAX - 1 }]),
                vec![Ok(0.0)],
                "no expiry row was left behind"
            );
            assert_eq!(r.run(shared, vec![clear(b"")]), vec![Ok(2.0)], "everything");
            assert_eq!(shared.store.stats().unwrap().entries, 0);
        });
    }
}
