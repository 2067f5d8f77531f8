//! Scans of a key range: entries pages (keys and values, for `entries()`) and count chunks
//! (for `count()`), each bounded and resumable from a cursor.

use std::ops::Bound;

use super::{naming_key, ExpiredEntry, PageEnd, Store};
use crate::error::{CacheError, CacheResult};
use crate::keys::{self, KeyRange, StoredKind};
use crate::record::{Payload, Record};

impl Store {
    /// Appends to `out` the live entries of `range`, in full-key byte order (descending when
    /// `reverse`; a group of long keys, stored in hash order, is read whole and sorted),
    /// continuing after the cursor `after` (a stored key, or [`LONG_CURSOR_TAG`] and the full
    /// key of a long one; `None` for the start of the range),
    /// until `max_entries` or about `max_bytes` were written. Expired entries are skipped and
    /// reported in `expired`; entries holding `undefined` are skipped (they are absent for
    /// get/has too).
    ///
    /// The page is one MessagePack array of `[key, value]` pairs: the key is the full key
    /// without `range.prefix`, as a str; the value is the stored MessagePack as it is, or, for
    /// a value stored as JSON, its text as a str, whose pair index goes to `json_values` (JS
    /// parses those). JS decodes the whole page with one call, which costs less than decoding
    /// each key and value with separate calls. Every record is checked against its checksum
    /// first: a page never carries bytes that failed it.
    #[allow(clippy::too_many_arguments)]
    pub fn scan_page(
        &self,
        range: &KeyRange,
        reverse: bool,
        after: Option<&[u8]>,
        now: u64,
        max_entries: usize,
        max_bytes: usize,
        out: &mut Vec<u8>,
        json_values: &mut Vec<u32>,
        expired: &mut Vec<ExpiredEntry>,
    ) -> CacheResult<(usize, PageEnd)> {
        let limits = (now, max_entries, max_bytes);
        self.scan_into(
            range,
            reverse,
            after,
            limits,
            out,
            json_values,
            false,
            expired,
        )
    }

    /// [`Store::scan_page`] without the values: the page is a MessagePack array of the keys
    /// (without `range.prefix`). Values are neither copied nor checked against their
    /// checksum: only the record header is read, as when counting.
    #[allow(clippy::too_many_arguments)]
    pub fn scan_keys_page(
        &self,
        range: &KeyRange,
        reverse: bool,
        after: Option<&[u8]>,
        now: u64,
        max_entries: usize,
        max_bytes: usize,
        out: &mut Vec<u8>,
        expired: &mut Vec<ExpiredEntry>,
    ) -> CacheResult<(usize, PageEnd)> {
        let limits = (now, max_entries, max_bytes);
        let mut no_json = Vec::new();
        self.scan_into(
            range,
            reverse,
            after,
            limits,
            out,
            &mut no_json,
            true,
            expired,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn scan_into(
        &self,
        range: &KeyRange,
        reverse: bool,
        after: Option<&[u8]>,
        (now, max_entries, max_bytes): (u64, usize, usize),
        out: &mut Vec<u8>,
        json_values: &mut Vec<u32>,
        keys_only: bool,
        expired: &mut Vec<ExpiredEntry>,
    ) -> CacheResult<(usize, PageEnd)> {
        let page_start = out.len();
        // An array32 header, its length filled in below.
        out.extend_from_slice(&[0xdd, 0, 0, 0, 0]);
        let result = self.scan(
            range,
            reverse,
            after,
            PageWriter {
                out: Some(PageOut {
                    body: &mut *out,
                    json_values,
                    keys_only,
                }),
                expired,
                count: 0,
                skipped: 0,
                max_entries,
                max_bytes: max_bytes.saturating_add(page_start),
                now,
            },
        );
        if let Ok((count, _)) = &result {
            out[page_start + 1..page_start + 5].copy_from_slice(&(*count as u32).to_be_bytes());
        }
        result
    }

    /// Counts the live entries of `range` (ascending), after the stored key `after`, up to
    /// `max_entries`; expired ones are skipped and reported in `expired`, as in `scan_page`.
    /// Nothing is copied out of the map: it costs a B-tree walk and a record header per entry.
    pub fn count_page(
        &self,
        range: &KeyRange,
        after: Option<&[u8]>,
        now: u64,
        max_entries: usize,
        expired: &mut Vec<ExpiredEntry>,
    ) -> CacheResult<(usize, PageEnd)> {
        let page = PageWriter {
            out: None,
            expired,
            count: 0,
            skipped: 0,
            max_entries,
            max_bytes: usize::MAX,
            now,
        };
        self.scan(range, false, after, page)
    }

    /// Walks `range` from `after` (or its start) with `page`, which decides what to keep and
    /// where to stop.
    fn scan(
        &self,
        range: &KeyRange,
        reverse: bool,
        after: Option<&[u8]>,
        mut page: PageWriter<'_>,
    ) -> CacheResult<(usize, PageEnd)> {
        // A cursor after a long key resumes at its group's start (or end, in reverse); the
        // group is read again and the members up to the cursor skipped.
        let resume_long = after
            .filter(|a| a.first() == Some(&LONG_CURSOR_TAG))
            .map(|a| &a[1..]);
        let start = if reverse {
            range.reverse_start()
        } else {
            range.forward_start()
        };
        let bound = |k: &[u8], inclusive: bool| {
            if inclusive {
                Bound::Included(k.to_vec())
            } else {
                Bound::Excluded(k.to_vec())
            }
        };
        let from = match (resume_long, after, &start) {
            (Some(full), _, _) => Bound::Included(if reverse {
                keys::long_group_end(full)
            } else {
                keys::long_group_start(full)
            }),
            (None, Some(a), _) => bound(a, false),
            (None, None, Some((k, inclusive))) => bound(k, *inclusive),
            (None, None, None) => Bound::Unbounded,
        };
        let spec = ScanSpec {
            range,
            reverse,
            resume_long: resume_long.map(|full| (full, keys::long_group_start(full))),
        };
        // Through a lock file nobody else uses, pages may be reused under the scan.
        self.check_lock_file()?;
        let floor = match &from {
            Bound::Excluded(k) => Some(&k[..]),
            _ => None,
        };
        self.read(|txn| {
            let heed_err = |e| self.heed_error(e);
            if reverse {
                let bounds = (Bound::Unbounded, as_slice_bound(&from));
                let iter = self.entries.rev_range(txn, &bounds).map_err(heed_err)?;
                page.fill(
                    InOrder::new(self, iter.map(|i| i.map_err(heed_err)), floor, true),
                    |stored, full| range.reverse_done(stored, full),
                    &spec,
                )
            } else {
                let bounds = (as_slice_bound(&from), Bound::Unbounded);
                let iter = self.entries.range(txn, &bounds).map_err(heed_err)?;
                page.fill(
                    InOrder::new(self, iter.map(|i| i.map_err(heed_err)), floor, false),
                    |stored, full| range.forward_done(stored, full),
                    &spec,
                )
            }
        })
    }
}

/// Passes on stored keys only while they move in the scan's direction, past the cursor: on a
/// damaged tree (or one written through a replaced lock file) LMDB's cursor can go back or
/// cycle, and a scan resumed page after page would then never end. ERR_INVALID_DATABASE then.
struct InOrder<'s, 't, I> {
    store: &'s Store,
    iter: I,
    last: Option<&'t [u8]>,
    reverse: bool,
}

impl<'s, 't, I> InOrder<'s, 't, I> {
    fn new(store: &'s Store, iter: I, floor: Option<&'t [u8]>, reverse: bool) -> Self {
        InOrder {
            store,
            iter,
            last: floor,
            reverse,
        }
    }
}

impl<'t, I: Iterator<Item = CacheResult<(&'t [u8], &'t [u8])>>> Iterator for InOrder<'_, 't, I> {
    type Item = CacheResult<(&'t [u8], &'t [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.iter.next()?;
        Some(item.and_then(|(stored, bytes)| {
            let reverse = self.reverse;
            if self
                .last
                .is_some_and(|p| if reverse { stored >= p } else { stored <= p })
            {
                return Err(self.store.damaged("a scan met stored keys out of order"));
            }
            self.last = Some(stored);
            Ok((stored, bytes))
        }))
    }
}

fn as_slice_bound(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(&k[..]),
        Bound::Excluded(k) => Bound::Excluded(&k[..]),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Appends `bytes` (UTF-8 written from a JS string) as a MessagePack str. Bytes that are not
/// UTF-8 become U+FFFD, as decoding them in JS would.
fn write_msgpack_str(out: &mut Vec<u8>, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_str(out, &text);
}

/// Most entries one page (or count chunk) may skip (expired, or holding `undefined`) before it
/// ends early with a cursor: a namespace of millions of expired entries is then crossed in
/// bounded steps, each holding at most this many keys for their lazy deletes, rather than in
/// one call that holds them all.
pub const MAX_SKIPPED_PER_PAGE: usize = 16_384;

/// Where a page's entries go.
struct PageOut<'o> {
    /// The MessagePack body.
    body: &'o mut Vec<u8>,
    /// Indexes of the pairs whose value is JSON text.
    json_values: &'o mut Vec<u32>,
    /// Keys only: no values, so no checksum check either (the header is enough).
    keys_only: bool,
}

/// Collects one page of a scan.
struct PageWriter<'o> {
    /// Where the entries go; `None` when only counting.
    out: Option<PageOut<'o>>,
    expired: &'o mut Vec<ExpiredEntry>,
    count: usize,
    /// Entries skipped so far; the page ends at [`MAX_SKIPPED_PER_PAGE`].
    skipped: usize,
    max_entries: usize,
    max_bytes: usize,
    now: u64,
}

impl PageWriter<'_> {
    /// Decodes a record; checks its checksum only when it goes into a page (counting reads
    /// only the header).
    fn decode<'t>(&self, stored: &[u8], bytes: &'t [u8]) -> CacheResult<Record<'t>> {
        if self.takes_values() {
            Record::decode(stored, bytes)
        } else {
            Record::decode_unverified(bytes)
        }
    }

    /// Whether values go into the page (and so are checked against their checksum first).
    fn takes_values(&self) -> bool {
        self.out.as_ref().is_some_and(|o| !o.keys_only)
    }

    /// Counts a skipped entry; true when the page must end after it.
    fn skip(&mut self) -> bool {
        self.skipped += 1;
        self.skipped >= MAX_SKIPPED_PER_PAGE
    }

    fn fill<'t>(
        &mut self,
        iter: impl Iterator<Item = CacheResult<(&'t [u8], &'t [u8])>>,
        done: impl Fn(&[u8], &[u8]) -> bool,
        scan: &ScanSpec<'_>,
    ) -> CacheResult<(usize, PageEnd)> {
        let mut iter = iter.peekable();
        while let Some(item) = iter.next() {
            let (stored, bytes) = item?;
            // Classify before decoding: the main database also holds the records of the
            // named databases, which are not entries.
            let Some(kind) = keys::classify(stored) else {
                continue;
            };
            if let StoredKind::Direct(full_key) = kind {
                // Outside the range: leave it before decoding (the record may be damaged,
                // and it is not this scan's to report).
                if done(stored, full_key) {
                    return Ok((self.count, PageEnd::Done));
                }
                if !scan.range.contains(full_key) {
                    continue;
                }
                let record = self
                    .decode(stored, bytes)
                    .map_err(|e| naming_key(e, full_key))?;
                if let Some(end) =
                    self.visit(stored, full_key, &record, &done, scan.range, false)?
                {
                    return Ok(end);
                }
                continue;
            }
            // A group of long keys sharing their first 480 bytes is stored in hash order:
            // read it whole and visit it in full-key order, so that entries() keeps exact byte
            // order and a `gt: lastKey` cursor skips nothing.
            // Members are checked against their checksum only when they go into the page:
            // a group can be far larger than the part of it in the range.
            let mut members = vec![long_member(stored, bytes)?];
            while let Some(Ok((next, _))) = iter.peek() {
                if !keys::same_long_group(stored, next) {
                    break;
                }
                if let Some(Ok((next, next_bytes))) = iter.next() {
                    members.push(long_member(next, next_bytes)?);
                }
            }
            // Resuming inside this group: members up to the cursor were visited already.
            if let Some((resume, group_start)) = &scan.resume_long {
                if stored.starts_with(group_start) {
                    members.retain(|m| {
                        if scan.reverse {
                            m.1 < *resume
                        } else {
                            m.1 > *resume
                        }
                    });
                }
            }
            let order = |a: &LongMember<'t>, b: &LongMember<'t>| {
                if scan.reverse {
                    b.1.cmp(a.1)
                } else {
                    a.1.cmp(b.1)
                }
            };
            // Only the first members in order are needed for this page: select them (linear)
            // rather than sort the whole group, which a long group would pay on every page;
            // more are selected if skipped (expired) ones leave the page short.
            let mut rest = &mut members[..];
            let mut wanted = self
                .max_entries
                .saturating_sub(self.count)
                .saturating_mul(2)
                + 16;
            while !rest.is_empty() {
                let k = wanted.min(rest.len());
                if k < rest.len() {
                    rest.select_nth_unstable_by(k - 1, order);
                }
                let (first, tail) = rest.split_at_mut(k);
                first.sort_unstable_by(order);
                for (member, full_key, record, bytes) in first.iter() {
                    if self.takes_values()
                        && scan.range.contains(full_key)
                        && !done(member, full_key)
                    {
                        Record::verify(member, bytes).map_err(|e| naming_key(e, full_key))?;
                    }
                    if let Some(end) =
                        self.visit(member, full_key, record, &done, scan.range, true)?
                    {
                        return Ok(end);
                    }
                }
                rest = tail;
                wanted = wanted.saturating_mul(2);
            }
        }
        Ok((self.count, PageEnd::Done))
    }

    /// Takes one entry into the page; `Some` when the page ends with it. `long`: the entry
    /// belongs to a long-key group, so the cursor after it names its full key.
    // Inlined: it runs once per entry of every scan.
    #[inline(always)]
    fn visit(
        &mut self,
        stored: &[u8],
        full_key: &[u8],
        record: &Record<'_>,
        done: &impl Fn(&[u8], &[u8]) -> bool,
        range: &KeyRange,
        long: bool,
    ) -> CacheResult<Option<(usize, PageEnd)>> {
        let cursor = || {
            if long {
                let mut c = Vec::with_capacity(1 + full_key.len());
                c.push(LONG_CURSOR_TAG);
                c.extend_from_slice(full_key);
                PageEnd::After(c)
            } else {
                PageEnd::After(stored.to_vec())
            }
        };
        if done(stored, full_key) {
            return Ok(Some((self.count, PageEnd::Done)));
        }
        if !range.contains(full_key) {
            return Ok(None);
        }
        if record.is_expired(self.now) {
            self.expired.push(ExpiredEntry {
                full_key: full_key.to_vec(),
            });
            return Ok(self.skip().then(|| (self.count, cursor())));
        }
        // A stored undefined is absent for get/has, so entries() skips it too, as
        // level-cache does.
        if record.payload == Payload::Undefined {
            return Ok(self.skip().then(|| (self.count, cursor())));
        }
        let mut written = 0;
        if let Some(PageOut {
            body,
            json_values,
            keys_only,
        }) = self.out.as_mut()
        {
            if *keys_only {
                write_msgpack_str(body, &full_key[range.prefix.len()..]);
                written = body.len();
                self.count += 1;
                return Ok(self
                    .page_full(written, long)
                    .then(|| (self.count, cursor())));
            }
            body.push(0x92); // a pair
            write_msgpack_str(body, &full_key[range.prefix.len()..]);
            match record.payload {
                Payload::MsgPack(value) => body.extend_from_slice(value),
                Payload::Json(text) => {
                    json_values.push(self.count as u32);
                    write_msgpack_str(body, text);
                }
                Payload::Undefined => unreachable!("skipped above"),
            }
            written = body.len();
        }
        self.count += 1;
        Ok(self
            .page_full(written, long)
            .then(|| (self.count, cursor())))
    }

    /// Whether the page ends after an entry that left `written` bytes in it.
    fn page_full(&self, written: usize, long: bool) -> bool {
        // Members of a long-key group get a larger byte budget: each page inside a group
        // walks the whole group again, so fewer, larger pages cost less.
        let max_bytes = if long {
            self.max_bytes.saturating_add(GROUP_PAGE_EXTRA_BYTES)
        } else {
            self.max_bytes
        };
        self.count >= self.max_entries || written >= max_bytes
    }
}

/// A long-key entry: its stored key, full key (from the record), record and record bytes.
type LongMember<'t> = (&'t [u8], &'t [u8], Record<'t>, &'t [u8]);

/// Decodes a long-key entry's record; its checksum is checked when it is visited.
fn long_member<'t>(stored: &'t [u8], bytes: &'t [u8]) -> CacheResult<LongMember<'t>> {
    let record = Record::decode_unverified(bytes)
        .map_err(|e| naming_key(e, &stored[..keys::DIRECT_KEY_MAX]))?;
    let full_key = record.full_key.ok_or_else(|| CacheError::CorruptRecord {
        detail: "long key record without its key".into(),
    })?;
    Ok((stored, full_key, record, bytes))
}

/// Extra page bytes allowed while inside a long-key group (see `PageWriter::visit`).
const GROUP_PAGE_EXTRA_BYTES: usize = 1 << 20;

/// First byte of a cursor that continues after a long key, followed by that full key. Every
/// other cursor is a stored key, which starts with a UTF-8 byte (never 0xFF).
const LONG_CURSOR_TAG: u8 = 0xFF;

/// What a scan walks: the range, its direction, and the full key of a long-key cursor it
/// resumes after, if any, with the start of that key's group.
struct ScanSpec<'a> {
    range: &'a KeyRange,
    reverse: bool,
    resume_long: Option<(&'a [u8], Vec<u8>)>,
}

#[cfg(test)]
mod tests;
