//! Parsing of the bytes JS sends for writes, laid out in [`crate::protocol`]: a flush (the
//! requests of one event-loop turn) and a batch (the ops of one request). Both are untrusted:
//! every length is checked against what is there, and nothing is allocated by a declared count.
//!
//! A new op is one [`Op`] variant, one `OP_*` kind in `protocol`, and one arm in
//! [`parse_batch`].

use crate::error::{CacheError, CacheResult};
use crate::protocol::{
    OP_DEL, OP_FLAG_EXPIRY, OP_FLAG_MSGPACK, OP_FLAG_UNDEFINED, OP_PUT, REQUEST_BATCH,
    REQUEST_HEADER_LEN, REQUEST_SWEEP, U32_LEN,
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
            other => return Err(invalid(format!("unknown op kind {other}"))),
        });
    }
    if r.pos != bytes.len() {
        return Err(invalid("trailing bytes after the last op".into()));
    }
    Ok(ops)
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
        let payload = r.take(len)?;
        if kind != REQUEST_BATCH && kind != REQUEST_SWEEP {
            return Err(invalid(format!("unknown request kind {kind}")));
        }
        requests.push(FlushedRequest {
            handle,
            ticket,
            kind,
            now,
            payload,
        });
    }
    if r.pos != bytes.len() {
        return Err(invalid("trailing bytes after the last request".into()));
    }
    Ok(requests)
}

#[cfg(test)]
mod tests;
