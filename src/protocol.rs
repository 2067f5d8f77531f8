//! The wire protocol between index.cjs and native code: every number and layout both sides
//! must agree on, in one place. JS holds none of its own: `init()` hands it [`EXPORTED`].
//!
//! * The scratch buffer (one per JS thread): `CTL_SLOTS` f64 control slots, then the key
//!   area, then the value area. Reads pass the handle and key in, the status, expiry and
//!   value come back out.
//! * A flush (the writes of one event-loop turn): `[u32 LE request count]`, then per request
//!   `[u32 LE handle][u32 LE ticket][u8 kind][f64 LE now][u32 LE payload length][payload]`.
//! * A batch payload: `[u32 LE op count]`, then per op `[u8 kind][u8 flags][f64 LE expiry, if
//!   OP_FLAG_EXPIRY][u32 LE key length][key UTF-8][u32 LE value length][value: MessagePack
//!   with OP_FLAG_MSGPACK, else JSON text; absent for a del or with OP_FLAG_UNDEFINED]`.
//! * An entries page: `[u8 flags][u32 LE pair count][u32 LE body length][u32 LE JSON value
//!   count][body: a MessagePack array of [key, value] pairs][u32 LE index of each pair whose
//!   value is JSON text][cursor: the rest]`.
//! * A count chunk: `[u8 flags][u32 LE count][cursor: the rest]`.
//! * A keys-only entries page: the entries page layout, its body a MessagePack array of keys.
//! * A getMany request: `[u32 LE key count]`, then per key `[u32 LE length][full key UTF-8]`;
//!   its answer: the entries page layout, its body a MessagePack array of one value per key
//!   (nil where there is none) and after the JSON indexes `[u8 per key: 1 found, 0 not]`.
//! * A clear request's payload: the full-key prefix of the view (empty: every entry).

// Scratch buffer: control slots (indexes into a Float64Array over its first bytes).
pub const CTL_HANDLE: usize = 0;
pub const CTL_KEY_LEN: usize = 1;
pub const CTL_WANT_VALUE: usize = 2;
pub const CTL_EXPIRY: usize = 3;
pub const CTL_HAS_EXPIRY: usize = 4;
pub const CTL_NOW: usize = 5;
pub const CTL_VALUE_LEN: usize = 6;
/// 1 when a JSON value's bytes are all ASCII: JS then decodes them as Latin-1, a plain copy,
/// instead of running the UTF-8 decoder (which matters for values of kilobytes).
pub const CTL_VALUE_ASCII: usize = 7;
/// How the found value is encoded: one of the VALUE_* kinds.
pub const CTL_VALUE_KIND: usize = 8;
pub const CTL_SLOTS: usize = 9;
// Scratch buffer: byte areas.
pub const KEY_OFFSET: usize = CTL_SLOTS * 8;
pub const KEY_CAPACITY: usize = 8 * 1024;
pub const VALUE_OFFSET: usize = KEY_OFFSET + KEY_CAPACITY;
pub const VALUE_CAPACITY: usize = 64 * 1024;
pub const SCRATCH_LEN: usize = VALUE_OFFSET + VALUE_CAPACITY;

/// Value encodings (CTL_VALUE_KIND).
pub const VALUE_MSGPACK: i32 = 0;
pub const VALUE_JSON: i32 = 1;

/// What a lookup found (the return value of `lookup`).
pub const LOOKUP_MISSING: i32 = 0;
pub const LOOKUP_FOUND: i32 = 1;
pub const LOOKUP_FOUND_UNDEFINED: i32 = 2;
pub const LOOKUP_FOUND_LARGE: i32 = 3;
pub const LOOKUP_FAILED: i32 = -1;

/// The width of every count and length field (all u32 LE): a flush's request count, a
/// request's payload length, a batch's op count, an op's key and value lengths, an entries
/// page's JSON value indexes.
pub const U32_LEN: usize = 4;

/// A flush: the request count before the requests.
pub const FLUSH_HEADER_LEN: usize = U32_LEN;
/// Flush requests: the offsets of the header's fields from the request's start, the header
/// before each payload, and the kinds.
pub const REQUEST_HANDLE_AT: usize = 0;
pub const REQUEST_TICKET_AT: usize = 4;
pub const REQUEST_KIND_AT: usize = 8;
pub const REQUEST_NOW_AT: usize = 9;
pub const REQUEST_PAYLOAD_LEN_AT: usize = 17;
pub const REQUEST_HEADER_LEN: usize = 21;
pub const REQUEST_BATCH: u8 = 0;
pub const REQUEST_SWEEP: u8 = 1;
/// Deletes up to CLEAR_CHUNK entries whose full key starts with the payload, in one
/// transaction; completes with the count. JS repeats it until a chunk comes back short.
pub const REQUEST_CLEAR: u8 = 2;
pub const CLEAR_CHUNK: usize = 4096;

/// Batch ops: kinds, flags, and the fixed bytes of one op (kind, flags, expiry, two lengths).
pub const OP_PUT: u8 = 1;
pub const OP_DEL: u8 = 2;
/// A delete that counts toward the request's result when it removed a live entry (present,
/// not expired at the request's `now`, not a stored undefined).
pub const OP_DEL_LIVE: u8 = 3;
/// Takes the getOrSet lease of a key (value: the 8-byte owner token; expiry: when the lease
/// lapses) unless the key holds a live entry or another owner's lease is unexpired at the
/// request's `now`; counts toward the result when taken.
pub const OP_LEASE_TAKE: u8 = 4;
/// Drops the key's lease if the 8-byte owner token (value) still holds it.
pub const OP_LEASE_DROP: u8 = 5;
pub const OP_FLAG_EXPIRY: u8 = 1;
pub const OP_FLAG_UNDEFINED: u8 = 2;
/// The value bytes are MessagePack (encoded by lib/msgpack-encode.cjs), not JSON text.
pub const OP_FLAG_MSGPACK: u8 = 4;
pub const OP_FIXED_LEN: usize = 18;
/// A batch payload: the op count before the ops.
pub const BATCH_HEADER_LEN: usize = U32_LEN;

/// Entries pages and count chunks.
pub const PAGE_FLAG_DONE: u8 = 1;
pub const PAGE_COUNT_AT: usize = 1;
pub const PAGE_BODY_LEN_AT: usize = 5;
pub const PAGE_JSON_COUNT_AT: usize = 9;
pub const PAGE_HEADER_LEN: usize = 13;
/// The bytes of one index in an entries page's list of JSON values.
pub const PAGE_JSON_INDEX_LEN: usize = U32_LEN;
pub const COUNT_HEADER_LEN: usize = 5;

/// Every number above, by name, as `init()` gives them to JS.
pub const EXPORTED: &[(&str, i64)] = &[
    ("CTL_HANDLE", CTL_HANDLE as i64),
    ("CTL_KEY_LEN", CTL_KEY_LEN as i64),
    ("CTL_WANT_VALUE", CTL_WANT_VALUE as i64),
    ("CTL_EXPIRY", CTL_EXPIRY as i64),
    ("CTL_HAS_EXPIRY", CTL_HAS_EXPIRY as i64),
    ("CTL_NOW", CTL_NOW as i64),
    ("CTL_VALUE_LEN", CTL_VALUE_LEN as i64),
    ("CTL_VALUE_ASCII", CTL_VALUE_ASCII as i64),
    ("CTL_VALUE_KIND", CTL_VALUE_KIND as i64),
    ("CTL_SLOTS", CTL_SLOTS as i64),
    ("KEY_OFFSET", KEY_OFFSET as i64),
    ("KEY_CAPACITY", KEY_CAPACITY as i64),
    ("VALUE_OFFSET", VALUE_OFFSET as i64),
    ("VALUE_CAPACITY", VALUE_CAPACITY as i64),
    ("VALUE_MSGPACK", VALUE_MSGPACK as i64),
    ("VALUE_JSON", VALUE_JSON as i64),
    ("LOOKUP_MISSING", LOOKUP_MISSING as i64),
    ("LOOKUP_FOUND", LOOKUP_FOUND as i64),
    ("LOOKUP_FOUND_UNDEFINED", LOOKUP_FOUND_UNDEFINED as i64),
    ("LOOKUP_FOUND_LARGE", LOOKUP_FOUND_LARGE as i64),
    ("LOOKUP_FAILED", LOOKUP_FAILED as i64),
    ("U32_LEN", U32_LEN as i64),
    ("FLUSH_HEADER_LEN", FLUSH_HEADER_LEN as i64),
    ("REQUEST_HANDLE_AT", REQUEST_HANDLE_AT as i64),
    ("REQUEST_TICKET_AT", REQUEST_TICKET_AT as i64),
    ("REQUEST_KIND_AT", REQUEST_KIND_AT as i64),
    ("REQUEST_NOW_AT", REQUEST_NOW_AT as i64),
    ("REQUEST_PAYLOAD_LEN_AT", REQUEST_PAYLOAD_LEN_AT as i64),
    ("REQUEST_HEADER_LEN", REQUEST_HEADER_LEN as i64),
    ("REQUEST_BATCH", REQUEST_BATCH as i64),
    ("REQUEST_SWEEP", REQUEST_SWEEP as i64),
    ("REQUEST_CLEAR", REQUEST_CLEAR as i64),
    ("CLEAR_CHUNK", CLEAR_CHUNK as i64),
    ("OP_PUT", OP_PUT as i64),
    ("OP_DEL", OP_DEL as i64),
    ("OP_DEL_LIVE", OP_DEL_LIVE as i64),
    ("OP_LEASE_TAKE", OP_LEASE_TAKE as i64),
    ("OP_LEASE_DROP", OP_LEASE_DROP as i64),
    ("OP_FLAG_EXPIRY", OP_FLAG_EXPIRY as i64),
    ("OP_FLAG_UNDEFINED", OP_FLAG_UNDEFINED as i64),
    ("OP_FLAG_MSGPACK", OP_FLAG_MSGPACK as i64),
    ("OP_FIXED_LEN", OP_FIXED_LEN as i64),
    ("BATCH_HEADER_LEN", BATCH_HEADER_LEN as i64),
    ("PAGE_FLAG_DONE", PAGE_FLAG_DONE as i64),
    ("PAGE_COUNT_AT", PAGE_COUNT_AT as i64),
    ("PAGE_BODY_LEN_AT", PAGE_BODY_LEN_AT as i64),
    ("PAGE_JSON_COUNT_AT", PAGE_JSON_COUNT_AT as i64),
    ("PAGE_HEADER_LEN", PAGE_HEADER_LEN as i64),
    ("PAGE_JSON_INDEX_LEN", PAGE_JSON_INDEX_LEN as i64),
    ("COUNT_HEADER_LEN", COUNT_HEADER_LEN as i64),
];

// The scratch areas never overlap (checked at compile time).
const _: () = assert!(KEY_OFFSET >= CTL_SLOTS * 8);
const _: () = assert!(VALUE_OFFSET >= KEY_OFFSET + KEY_CAPACITY);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_names_are_unique_and_headers_add_up() {
        let mut names: Vec<&str> = EXPORTED.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EXPORTED.len());
        assert_eq!(
            REQUEST_HEADER_LEN,
            4 + 4 + 1 + 8 + 4,
            "handle, ticket, kind, now, payload length"
        );
        // Each header field starts where the one before it ends.
        assert_eq!(REQUEST_TICKET_AT, REQUEST_HANDLE_AT + U32_LEN);
        assert_eq!(REQUEST_KIND_AT, REQUEST_TICKET_AT + U32_LEN);
        assert_eq!(REQUEST_NOW_AT, REQUEST_KIND_AT + 1);
        assert_eq!(REQUEST_PAYLOAD_LEN_AT, REQUEST_NOW_AT + 8);
        assert_eq!(REQUEST_HEADER_LEN, REQUEST_PAYLOAD_LEN_AT + U32_LEN);
        assert_eq!(PAGE_BODY_LEN_AT, PAGE_COUNT_AT + U32_LEN);
        assert_eq!(PAGE_JSON_COUNT_AT, PAGE_BODY_LEN_AT + U32_LEN);
        assert_eq!(COUNT_HEADER_LEN, PAGE_COUNT_AT + U32_LEN);
        assert_eq!(OP_FIXED_LEN, 1 + 1 + 8 + 4 + 4);
        assert_eq!(PAGE_HEADER_LEN, PAGE_JSON_COUNT_AT + 4);
    }
}
