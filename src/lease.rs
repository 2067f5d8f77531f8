//! getOrSet leases: the record in the meta database saying which caller computes a missing
//! key, and until when. The writer thread takes and drops them inside its write transactions
//! (LMDB's writer lock makes the take atomic across processes); readers look them up to
//! decide whether to wait. A lease lapses by itself: an owner that died frees the key for
//! another caller once its expiry has passed.
//!
//! Stored under `lease/` and the FNV-1a-128 hash of the full key (so any key length fits
//! LMDB's key limit): `[u64 BE expiry, epoch ms][8-byte owner token]`. Two keys with the same
//! hash would share a lease: a waiter would then wait for the other key's computation, which
//! costs time, never a wrong value.

use crate::keys::fnv1a_128;

pub const LEASE_KEY_PREFIX: &[u8] = b"lease/";
pub const LEASE_KEY_LEN: usize = 6 + 16;
pub const LEASE_VALUE_LEN: usize = 16;

/// A lease as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub expiry: u64,
    pub token: [u8; 8],
}

/// The meta database key of the lease of `full_key`.
pub fn stored_key(full_key: &[u8]) -> [u8; LEASE_KEY_LEN] {
    let mut key = [0u8; LEASE_KEY_LEN];
    key[..LEASE_KEY_PREFIX.len()].copy_from_slice(LEASE_KEY_PREFIX);
    key[LEASE_KEY_PREFIX.len()..].copy_from_slice(&fnv1a_128(full_key).to_be_bytes());
    key
}

impl Lease {
    pub fn encode(&self) -> [u8; LEASE_VALUE_LEN] {
        let mut out = [0u8; LEASE_VALUE_LEN];
        out[..8].copy_from_slice(&self.expiry.to_be_bytes());
        out[8..].copy_from_slice(&self.token);
        out
    }

    /// `None` for bytes that are not a lease (not written by this package): treated as no
    /// lease, so a damaged record can never block a key for good.
    pub fn decode(bytes: &[u8]) -> Option<Lease> {
        let (expiry, token) = bytes.split_first_chunk::<8>()?;
        Some(Lease {
            expiry: u64::from_be_bytes(*expiry),
            token: token.try_into().ok()?,
        })
    }

    /// Whether the lease still binds others at `now`.
    pub fn is_held(&self, now: u64) -> bool {
        self.expiry > now
    }
}

/// Whether `token` may take a key whose current lease is `existing` at `now`: no lease, a
/// lapsed one, or its own (a renewal).
pub fn may_take(existing: Option<Lease>, token: [u8; 8], now: u64) -> bool {
    match existing {
        None => true,
        Some(lease) => lease.token == token || !lease.is_held(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_round_trips_and_binds_others_until_it_lapses() {
        let lease = Lease {
            expiry: 1_000,
            token: [1, 2, 3, 4, 5, 6, 7, 8],
        };
        assert_eq!(Lease::decode(&lease.encode()), Some(lease));
        assert_eq!(Lease::decode(&[0; 15]), None, "too short");
        assert_eq!(Lease::decode(&[0; 17]), None, "too long");
        let other = [9; 8];
        assert!(may_take(None, other, 10));
        assert!(!may_take(Some(lease), other, 999), "held by another");
        assert!(may_take(Some(lease), other, 1_000), "lapsed at its expiry");
        assert!(
            may_take(Some(lease), lease.token, 10),
            "its owner renews it"
        );
    }

    #[test]
    fn lease_keys_are_fixed_length_per_full_key_and_outside_the_shape_keys() {
        let a = stored_key(b"ns\xe2\x90\x9fkey");
        assert_eq!(a.len(), LEASE_KEY_LEN);
        assert!(a.starts_with(LEASE_KEY_PREFIX));
        assert_ne!(a, stored_key(b"ns\xe2\x90\x9fkez"));
        assert_eq!(
            stored_key(&[b'x'; 5000]).len(),
            LEASE_KEY_LEN,
            "long keys fit"
        );
        assert!(crate::shapes::id_of_key(&a).is_none());
    }
}
