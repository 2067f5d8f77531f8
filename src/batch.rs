//! Parsing of the bytes JS sends for writes, laid out in [`crate::protocol`]: a flush (the
//! requests of one event-loop turn) and a batch (the ops of one request). Both are untrusted:
//! every length is checked against what is there, and nothing is allocated by a declared count.
//!
//! A new op is one [`Op`] variant, one `OP_*` kind in `protocol`, and one arm in
//! [`parse_batch`].

use crate::error::{CacheError, CacheResult};
use crate::protocol::{
    OP_DEL, OP_DEL_LIVE, OP_FLAG_EXPIRY, OP_FLAG_MSGPACK, OP_FLAG_UNDEFINED, OP_LEASE_DROP,
    OP_LEASE_TAKE, OP_PUT, REQUEST_BATCH, REQUEST_CLEAR, REQUEST_HEADER_LEN, REQUEST_SWEEP,
    U32_LEN,
};
use crate::record::{expiry_from_js, Payload};

/// One operation of a batch, borrowing the encoded request.
#[derive(Debug, PartialEq)]
pub enum Op<'a> {
    Put {
        full_key: &'a [u8],
        expiry: Option<u64>,
        /// MessagePack from JS, or JSON text (transcoded on write where MessagePack can carry it).
        value: Payload<'a>,
    },
    Del {
        full_key: &'a [u8],
    },
    /// A delete that reports whether it removed a live entry.
    DelLive {
        full_key: &'a [u8],
    },
    /// Take the getOrSet lease of `full_key` for `token` until `expiry` (see [`crate::lease`]).
    LeaseTake {
        full_key: &'a [u8],
        expiry: u64,
        token: [u8; 8],
    },
    /// Drop the lease of `full_key` if `token` holds it.
    LeaseDrop {
        full_key: &'a [u8],
        token: [u8; 8],
    },
}

impl Op<'_> {
    /// Whether the op only removes data (a lease drop included): such requests may use the
    /// map's reserve and be committed in parts (see `writer`).
    pub fn only_deletes(&self) -> bool {
        matches!(
            self,
            Op::Del { .. } | Op::DelLive { .. } | Op::LeaseDrop { .. }
        )
    }
}

/// Parses a batch encoded by the JS layer (layout: the module doc of [`crate::protocol`]).
pub fn parse_batch(bytes: &[u8]) -> CacheResult<Vec<Op<'_>>> {
    let mut r = Reader { bytes, pos: 0 };
    let count = r.u32()? as usize;
    let mut ops = Vec::with_capacity(count.min(bytes.len() / 6));
    for _ in 0..count {
        let kind = r.u8()?;
        let flags = r.u8()?;
        let expiry = if flags & OP_FLAG_EXPIRY != 0 {
            expiry_from_js(r.f64()?)
        } else {
            None
        };
        let key_len = r.u32()? as usize;
        let full_key = r.take(key_len)?;
        ops.push(match kind {
            OP_PUT => {
                let value = if flags & OP_FLAG_UNDEFINED != 0 {
                    Payload::Undefined
                } else {
                    let n = r.u32()? as usize;
                    let bytes = r.take(n)?;
                    if flags & OP_FLAG_MSGPACK != 0 {
                        Payload::MsgPack(bytes)
                    } else {
                        Payload::Json(bytes)
                    }
                };
                Op::Put {
                    full_key,
                    expiry,
                    value,
                }
            }
            OP_DEL => Op::Del { full_key },
            OP_DEL_LIVE => Op::DelLive { full_key },
            OP_LEASE_TAKE => Op::LeaseTake {
                full_key,
                expiry: expiry.ok_or_else(|| invalid("a lease without its expiry".into()))?,
                token: token(&mut r)?,
            },
            OP_LEASE_DROP => Op::LeaseDrop {
                full_key,
                token: token(&mut r)?,
            },
            other => return Err(invalid(format!("unknown op kind {other}"))),
        });
    }
    if r.pos != bytes.len() {
        return Err(invalid("trailing bytes after the last op".into()));
    }
    Ok(ops)
}

/// A lease op's value: its owner token, 8 bytes.
fn token(r: &mut Reader<'_>) -> CacheResult<[u8; 8]> {
    let n = r.u32()? as usize;
    r.take(n)?
        .try_into()
        .map_err(|_| invalid(format!("a lease token of {n} bytes, not 8")))
}

fn invalid(detail: String) -> CacheError {
    CacheError::InvalidRequest { detail }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> CacheResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| invalid("truncated batch".into()))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> CacheResult<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> CacheResult<u32> {
        Ok(u32::from_le_bytes(
            self.take(U32_LEN)?.try_into().expect("4 bytes"),
        ))
    }
    fn f64(&mut self) -> CacheResult<f64> {
        Ok(f64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

/// Parses the keys of a getMany (layout: the module doc of [`crate::protocol`]).
pub fn parse_key_list(bytes: &[u8]) -> CacheResult<Vec<&[u8]>> {
    let mut r = Reader { bytes, pos: 0 };
    let count = r.u32()? as usize;
    let mut keys = Vec::with_capacity(count.min(bytes.len() / 4));
    for _ in 0..count {
        let n = r.u32()? as usize;
        keys.push(r.take(n)?);
    }
    if r.pos != bytes.len() {
        return Err(invalid("trailing bytes after the last key".into()));
    }
    Ok(keys)
}

/// One request's bytes inside a copy of its flush shared by the flush's requests: a flush is
/// copied out of its JS buffer once, not once per request (1,000 sets of 10 KB values: ~1,000
/// allocations and copies fewer on the JS thread's call).
#[derive(Clone)]
pub struct SharedBytes {
    flush: std::sync::Arc<[u8]>,
    range: std::ops::Range<usize>,
}

impl SharedBytes {
    /// The part `range` of `flush`.
    pub fn part(flush: &std::sync::Arc<[u8]>, range: std::ops::Range<usize>) -> SharedBytes {
        assert!(range.end <= flush.len(), "a request lies inside its flush");
        SharedBytes {
            flush: std::sync::Arc::clone(flush),
            range,
        }
    }
}

impl From<Vec<u8>> for SharedBytes {
    fn from(bytes: Vec<u8>) -> SharedBytes {
        let range = 0..bytes.len();
        SharedBytes {
            flush: bytes.into(),
            range,
        }
    }
}

impl std::ops::Deref for SharedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.flush[self.range.clone()]
    }
}

/// One request of a flush from the JS layer, borrowing the flush bytes.
#[derive(Debug, PartialEq)]
pub struct FlushedRequest<'a> {
    pub handle: u32,
    pub ticket: u32,
    pub kind: u8,
    /// `Date.now()` of the request, for sweeps.
    pub now: f64,
    /// An encoded batch (see [`parse_batch`]) for REQUEST_BATCH.
    pub payload: &'a [u8],
    /// Where `payload` starts in the flush.
    pub payload_at: usize,
}

/// Parses the writes JS collected during one turn of its event loop, sent in one call
/// (layout: the module doc of [`crate::protocol`]).
pub fn parse_flush(bytes: &[u8]) -> CacheResult<Vec<FlushedRequest<'_>>> {
    let mut r = Reader { bytes, pos: 0 };
    let count = r.u32()? as usize;
    let mut requests = Vec::with_capacity(count.min(bytes.len() / REQUEST_HEADER_LEN));
    for _ in 0..count {
        let handle = r.u32()?;
        let ticket = r.u32()?;
        let kind = r.u8()?;
        let now = r.f64()?;
        let len = r.u32()? as usize;
        let payload_at = r.pos;
        let payload = r.take(len)?;
        if ![REQUEST_BATCH, REQUEST_SWEEP, REQUEST_CLEAR].contains(&kind) {
            return Err(invalid(format!("unknown request kind {kind}")));
        }
        requests.push(FlushedRequest {
            handle,
            ticket,
            kind,
            now,
            payload,
            payload_at,
        });
    }
    if r.pos != bytes.len() {
        return Err(invalid("trailing bytes after the last request".into()));
    }
    Ok(requests)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod test_encode {
    //! Ops and batches encoded as the JS layer encodes them, for tests here and elsewhere.
    use super::*;

    /// One op as the JS layer encodes it.
    pub(crate) fn op(kind: u8, expiry: Option<f64>, key: &[u8], value: Option<&[u8]>) -> Vec<u8> {
        let mut out = vec![kind, if expiry.is_some() { OP_FLAG_EXPIRY } else { 0 }];
        if let Some(x) = expiry {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        if let Some(v) = value {
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
        out
    }

    pub(crate) fn batch(ops: &[Vec<u8>]) -> Vec<u8> {
        let mut out = (ops.len() as u32).to_le_bytes().to_vec();
        for o in ops {
            out.extend_from_slice(o);
        }
        out
    }

    #[test]
    fn counted_deletes_and_lease_ops_parse_with_their_tokens_and_bad_ones_are_refused() {
        let bytes = batch(&[
            op(OP_DEL_LIVE, None, b"a", None),
            op(OP_LEASE_TAKE, Some(50.0), b"k", Some(&[7; 8])),
            op(OP_LEASE_DROP, None, b"k", Some(&[7; 8])),
        ]);
        let ops = parse_batch(&bytes).unwrap();
        assert_eq!(
            ops,
            vec![
                Op::DelLive { full_key: b"a" },
                Op::LeaseTake {
                    full_key: b"k",
                    expiry: 50,
                    token: [7; 8]
                },
                Op::LeaseDrop {
                    full_key: b"k",
                    token: [7; 8]
                },
            ]
        );
        assert!(!ops[1].only_deletes() && ops[0].only_deletes() && ops[2].only_deletes());
        let keys = [
            2u32.to_le_bytes().as_slice(),
            &1u32.to_le_bytes(),
            b"a",
            &0u32.to_le_bytes(),
        ]
        .concat();
        assert_eq!(parse_key_list(&keys).unwrap(), vec![b"a".as_slice(), b""]);
        assert!(
            parse_key_list(&keys[..keys.len() - 1]).is_err(),
            "truncated"
        );
        // A lease needs its expiry and an 8-byte token.
        for bad in [
            op(OP_LEASE_TAKE, None, b"k", Some(&[7; 8])),
            op(OP_LEASE_TAKE, Some(50.0), b"k", Some(&[7; 7])),
            op(OP_LEASE_DROP, None, b"k", None),
        ] {
            let err = parse_batch(&batch(&[bad])).unwrap_err();
            assert!(matches!(err, CacheError::InvalidRequest { .. }), "{err}");
        }
    }
}
