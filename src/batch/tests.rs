//! Property tests of [`parse_batch`] and [`parse_flush`]: what JS encodes round-trips, and
//! random or damaged bytes (truncations, appended bytes, flipped bits, length fields replaced
//! by huge values) are refused or parsed into slices of the input: never a panic, never an
//! allocation by a declared count.

use super::*;
use crate::protocol::BATCH_HEADER_LEN;
use crate::test_strategies::{apply, byte, bytes, damage, is_subslice};
use proptest::prelude::*;

/// The fewest bytes one op takes (kind, flags, key length): a declared count cannot exceed
/// what is there.
const MIN_OP_LEN: usize = 1 + 1 + U32_LEN;

#[derive(Debug, Clone)]
struct OwnedOp {
    put: bool,
    expiry: Option<f64>,
    key: Vec<u8>,
    /// The value bytes; None: a stored undefined (a put) or no value (a del).
    value: Option<Vec<u8>>,
    msgpack: bool,
}

fn expiry() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-1e300),
        (0u64..4_000_000_000_000).prop_map(|ms| ms as f64),
    ]
}

fn op() -> impl Strategy<Value = OwnedOp> {
    let key = prop_oneof![9 => proptest::collection::vec(byte(), 0..30), 1 => bytes(70_000)];
    let value = prop_oneof![9 => proptest::collection::vec(byte(), 0..50), 1 => bytes(70_000)];
    (
        proptest::bool::weighted(0.7),
        proptest::option::weighted(0.4, expiry()),
        key,
        proptest::option::weighted(0.85, value),
        any::<bool>(),
    )
        .prop_map(|(put, expiry, key, value, msgpack)| OwnedOp {
            put,
            expiry,
            key,
            value: if put { value } else { None },
            msgpack,
        })
}

fn ops() -> impl Strategy<Value = Vec<OwnedOp>> {
    prop_oneof![
        1 => Just(Vec::new()),
        7 => proptest::collection::vec(op(), 1..=4),
        2 => proptest::collection::vec(op(), 0..40),
    ]
}

/// The JS encoding of a batch (lib/write-queue.cjs writeOps): the bytes and the offsets of
/// its length fields (count, key lengths, value lengths).
fn encode_ops(ops: &[OwnedOp]) -> (Vec<u8>, Vec<usize>) {
    let mut out = (ops.len() as u32).to_le_bytes().to_vec();
    let mut fields = vec![0];
    for op in ops {
        out.push(if op.put { OP_PUT } else { OP_DEL });
        let mut flags = 0u8;
        if op.expiry.is_some() {
            flags |= OP_FLAG_EXPIRY;
        }
        if op.put && op.value.is_none() {
            flags |= OP_FLAG_UNDEFINED;
        }
        if op.msgpack {
            flags |= OP_FLAG_MSGPACK;
        }
        out.push(flags);
        if let Some(x) = op.expiry {
            out.extend_from_slice(&x.to_le_bytes());
        }
        fields.push(out.len());
        out.extend_from_slice(&(op.key.len() as u32).to_le_bytes());
        out.extend_from_slice(&op.key);
        if let (true, Some(value)) = (op.put, &op.value) {
            fields.push(out.len());
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
        }
    }
    (out, fields)
}

/// A request of a flush, as lib/write-queue.cjs builds it.
#[derive(Debug, Clone)]
struct OwnedRequest {
    handle: u32,
    ticket: u32,
    now: f64,
    /// None: a sweep.
    ops: Option<Vec<OwnedOp>>,
}

fn requests() -> impl Strategy<Value = Vec<OwnedRequest>> {
    let request = (
        any::<u32>(),
        any::<u32>(),
        any::<u64>().prop_map(f64::from_bits),
        proptest::option::weighted(0.8, ops()),
    )
        .prop_map(|(handle, ticket, now, ops)| OwnedRequest {
            handle,
            ticket,
            now,
            ops,
        });
    proptest::collection::vec(request, 0..6)
}

/// The flush's bytes and the offsets of its length fields (count, payload lengths).
fn encode_flush(requests: &[OwnedRequest]) -> (Vec<u8>, Vec<usize>) {
    let mut out = (requests.len() as u32).to_le_bytes().to_vec();
    let mut fields = vec![0];
    for r in requests {
        out.extend_from_slice(&r.handle.to_le_bytes());
        out.extend_from_slice(&r.ticket.to_le_bytes());
        out.push(if r.ops.is_some() {
            REQUEST_BATCH
        } else {
            REQUEST_SWEEP
        });
        out.extend_from_slice(&r.now.to_le_bytes());
        let payload = r.ops.as_deref().map_or(Vec::new(), |ops| encode_ops(ops).0);
        fields.push(out.len());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&payload);
    }
    (out, fields)
}

fn check_batch(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(ops) = parse_batch(bytes) {
        for op in &ops {
            match op {
                Op::Put {
                    full_key, value, ..
                } => {
                    prop_assert!(is_subslice(full_key, bytes));
                    if let Some(v) = value.bytes() {
                        prop_assert!(is_subslice(v, bytes));
                    }
                }
                Op::Del { full_key }
                | Op::DelLive { full_key }
                | Op::LeaseTake { full_key, .. }
                | Op::LeaseDrop { full_key, .. } => prop_assert!(is_subslice(full_key, bytes)),
            }
        }
        prop_assert!(BATCH_HEADER_LEN + ops.len() * MIN_OP_LEN <= bytes.len());
    }
    Ok(())
}

fn check_flush(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(requests) = parse_flush(bytes) {
        prop_assert!(requests.len() * REQUEST_HEADER_LEN <= bytes.len());
        for request in &requests {
            prop_assert!(is_subslice(request.payload, bytes));
            // The batch inside is untrusted too.
            check_batch(request.payload)?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn parse_batch_round_trips_what_js_encodes(
        ops in ops(),
        cut in any::<prop::sample::Index>(),
        extra in byte(),
    ) {
        let (bytes, _) = encode_ops(&ops);
        let parsed = parse_batch(&bytes).expect("a well-formed batch parses");
        prop_assert_eq!(parsed.len(), ops.len());
        for (got, want) in parsed.iter().zip(&ops) {
            let expiry = want.expiry.and_then(expiry_from_js);
            match got {
                Op::Put { full_key, expiry: e, value } => {
                    prop_assert!(want.put);
                    prop_assert_eq!(*full_key, &want.key[..]);
                    prop_assert_eq!(*e, expiry);
                    prop_assert_eq!(value.bytes().map(<[u8]>::to_vec), want.value.clone());
                    let kind_ok = match value {
                        Payload::Undefined => want.value.is_none(),
                        Payload::MsgPack(_) => want.msgpack,
                        Payload::Json(_) => !want.msgpack,
                    };
                    prop_assert!(kind_ok);
                }
                Op::Del { full_key } => {
                    prop_assert!(!want.put);
                    prop_assert_eq!(*full_key, &want.key[..]);
                }
                other => prop_assert!(false, "only puts and deletes were encoded, got {:?}", other),
            }
        }
        // Every strict prefix is refused (ops are self-delimiting), as is any extra byte.
        let cut = cut.index(bytes.len());
        prop_assert!(parse_batch(&bytes[..cut]).is_err(), "prefix of {} bytes", cut);
        let mut longer = bytes.clone();
        longer.push(extra);
        prop_assert!(parse_batch(&longer).is_err());
    }

    #[test]
    fn parse_batch_never_panics_on_random_bytes(bytes in bytes(4096)) {
        check_batch(&bytes)?;
    }

    #[test]
    fn parse_batch_never_panics_on_damaged_batches(ops in ops(), damage in proptest::collection::vec(damage(), 4)) {
        let (good, fields) = encode_ops(&ops);
        for d in &damage {
            check_batch(&apply(&good, &fields, d))?;
        }
    }

    #[test]
    fn parse_flush_round_trips_what_js_encodes(requests in requests()) {
        let (bytes, _) = encode_flush(&requests);
        let parsed = parse_flush(&bytes).expect("a well-formed flush parses");
        prop_assert_eq!(parsed.len(), requests.len());
        for (got, want) in parsed.iter().zip(&requests) {
            prop_assert_eq!(got.handle, want.handle);
            prop_assert_eq!(got.ticket, want.ticket);
            prop_assert_eq!(got.now.to_bits(), want.now.to_bits());
            match &want.ops {
                None => prop_assert_eq!(got.kind, REQUEST_SWEEP),
                Some(ops) => {
                    prop_assert_eq!(got.kind, REQUEST_BATCH);
                    prop_assert_eq!(parse_batch(got.payload).unwrap().len(), ops.len());
                }
            }
        }
    }

    #[test]
    fn parse_flush_never_panics_on_random_bytes(bytes in bytes(4096)) {
        check_flush(&bytes)?;
    }

    #[test]
    fn parse_flush_never_panics_on_damaged_flushes(requests in requests(), damage in proptest::collection::vec(damage(), 4)) {
        let (good, fields) = encode_flush(&requests);
        for d in &damage {
            check_flush(&apply(&good, &fields, d))?;
        }
    }
}

/// Declared counts and lengths of up to 4 billion with a few bytes behind them: refused
/// without looping over or allocating for the declared count.
#[test]
fn parse_batch_with_huge_declared_counts_and_lengths_is_refused() {
    for count in [u32::MAX, 0x8000_0000, 1_000_000, 2] {
        for key_len in [u32::MAX, 0x8000_0000, 0x7fff_ffff, 1 << 20, 3] {
            for kind in [0u8, OP_PUT, OP_DEL, 3, 0xff] {
                for flags in [0u8, 1, 2, 3, 0xff] {
                    let mut bytes = count.to_le_bytes().to_vec();
                    bytes.extend_from_slice(&[kind, flags]);
                    if flags & OP_FLAG_EXPIRY != 0 {
                        bytes.extend_from_slice(&1e12f64.to_le_bytes());
                    }
                    bytes.extend_from_slice(&key_len.to_le_bytes());
                    bytes.extend_from_slice(b"abc");
                    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
                    check_batch(&bytes).unwrap();
                    assert!(parse_batch(&bytes).is_err());
                }
            }
        }
    }
}
