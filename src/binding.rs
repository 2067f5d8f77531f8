//! The thin napi layer: JS calls in, the pure core does the work.
//!
//! Per JS thread (main thread or worker; Node runs each on its own OS thread) there is one
//! [`ThreadState`] in a thread-local (`binding/thread.rs`): the handle table
//! (`binding/handles.rs`), a scratch buffer shared with JS, and the completion ports
//! (`binding/completions.rs`) through which the writer thread resolves this thread's promises.
//!
//! The read hot path (`lookup`, `expire`, `noop`) is registered as raw N-API callbacks that
//! take no arguments: JS writes the handle id, key length and key bytes into the scratch
//! buffer, native code writes the status, expiry and value bytes back. This avoids napi-rs'
//! argument conversion and JS string conversion, which cost more than the LMDB read itself.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

use crate::batch::{parse_flush, SharedBytes};
use crate::error::{CacheError, CacheResult};
use crate::eviction::BoundSetting;
use crate::keys::KeyRange;
use crate::record::expiry_from_js;
use crate::registry::{self, SharedStore};
use crate::store::{ExpiredEntry, PageEnd, Store, StoreOptions};
use crate::writer::{Completion, CompletionSink, Durability, Reply, WriteKind, WriteRequest};

// The scratch-buffer layout, lookup statuses and page layout are the protocol's.
use crate::protocol::*;

mod completions;
mod handles;
mod lookups;
mod thread;

use completions::{
    attach_port_raw, detach_port_raw, hold_loop_raw, release_loop_raw, CompletionPort,
};
use thread::{expire_raw, lookup_raw, settle, with_thread, Handle, ThreadState, THREAD};

/// The JS error code carried by every error this module throws.
pub struct ErrorCode(&'static str);

impl AsRef<str> for ErrorCode {
    fn as_ref(&self) -> &str {
        self.0
    }
}

/// The one place where a core error becomes a JS error: `error.code` is the stable code.
pub fn to_js_error(err: CacheError) -> napi::Error<ErrorCode> {
    napi::Error::new(ErrorCode(err.code()), err.to_string())
}

/// Returns the value, or throws the error as a JS exception and returns `None` (the pending
/// exception is what JS sees).
fn or_throw<T>(env: &Env, result: CacheResult<T>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            // SAFETY: called on the JS thread of `env` inside a napi callback.
            unsafe { JsError::from(to_js_error(e)).throw_into(env.raw()) };
            None
        }
    }
}

fn parse_durability(code: u32) -> CacheResult<Durability> {
    match code {
        0 => Ok(Durability::NoSync),
        1 => Ok(Durability::Durable),
        2 => Ok(Durability::Strict),
        _ => Err(CacheError::InvalidRequest {
            detail: format!("durability {code}"),
        }),
    }
}

/// Sets up this JS thread for one copy of `index.cjs`: creates the thread's scratch buffer
/// (first call only) and a completion port for `on_writes_done`, and returns them with the
/// raw hot-path functions, the layout constants and the port's number.
#[napi(
    ts_return_type = "{ scratch: Buffer; layout: Record<string, number>; hot: Record<string, Function>; port: number }"
)]
pub fn init<'env>(
    env: &'env Env,
    on_writes_done: Function<FnArgs<(Uint32Array, Float64Array, Vec<Unknown>)>, ()>,
) -> Result<Object<'env>> {
    let raw_env = env.raw();
    let buffer = thread::scratch_buffer(raw_env)?;
    let port = CompletionPort::new(env, on_writes_done.raw())?;
    let port_number = thread::add_port(port);

    let mut hot = Object::new(env)?;
    for (name, cb) in [
        ("lookup", lookup_raw as RawCallback),
        ("expire", expire_raw),
        ("noop", noop_raw),
        ("holdLoop", hold_loop_raw),
        ("releaseLoop", release_loop_raw),
        ("attachPort", attach_port_raw),
        ("detachPort", detach_port_raw),
    ] {
        // The loop and port functions act on this init()'s port, passed as the function's data.
        hot.set_named_property(name, raw_function(raw_env, name, cb, port_number)?)?;
    }
    let mut layout = Object::new(env)?;
    for (name, value) in EXPORTED {
        layout.set_named_property(name, *value as f64)?;
    }
    // SAFETY: `buffer` is a live napi_value created above in this same call scope.
    let buffer_value = unsafe { Unknown::from_raw_unchecked(raw_env, buffer) };
    let mut result = Object::new(env)?;
    result.set_named_property("scratch", buffer_value)?;
    result.set_named_property("layout", layout)?;
    result.set_named_property("hot", hot)?;
    result.set_named_property("port", port_number as u32)?;
    Ok(result)
}

fn check(status: sys::napi_status) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(
            Status::GenericFailure,
            format!("N-API call failed with status {status}"),
        ))
    }
}

type RawCallback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;

/// A function calling `cb` with `data` (a number, not a pointer) as its callback data.
fn raw_function(
    env: sys::napi_env,
    name: &str,
    cb: RawCallback,
    data: usize,
) -> Result<Unknown<'static>> {
    let mut f = ptr::null_mut();
    // SAFETY: creates a function on the current env; `name` outlives the call; `data` is an
    // integer smuggled in the pointer slot and never dereferenced.
    unsafe {
        check(sys::napi_create_function(
            env,
            name.as_ptr().cast(),
            name.len() as isize,
            Some(cb),
            data as *mut c_void,
            &mut f,
        ))?;
        Ok(Unknown::from_raw_unchecked(env, f))
    }
}

/// Exposes `noop` at module level, so benchmarks can measure the floor of a native call
/// without initialising a thread.
#[napi(module_exports)]
pub fn register_module_level(mut exports: Object, env: Env) -> Result<()> {
    exports.set_named_property("noop", raw_function(env.raw(), "noop", noop_raw, 0)?)?;
    Ok(())
}

/// `noop()`: the floor of a native call, for benchmarks.
unsafe extern "C" fn noop_raw(
    _env: sys::napi_env,
    _info: sys::napi_callback_info,
) -> sys::napi_value {
    ptr::null_mut()
}

/// Throws the error a raw call reported with LOOKUP_FAILED.
#[napi]
pub fn throw_last_error(env: Env) {
    let err = THREAD.with(|cell| cell.borrow_mut().as_mut().and_then(|t| t.last_error.take()));
    or_throw::<()>(
        &env,
        Err(err.unwrap_or(CacheError::Internal {
            detail: "a read failed without reporting why".into(),
        })),
    );
}

/// The value of the last LOOKUP_FOUND_LARGE.
#[napi]
pub fn take_large_value(env: Env) -> Option<Buffer> {
    let value = with_thread(|t| {
        t.large_value.take().ok_or(CacheError::InvalidRequest {
            detail: "no large value pending".into(),
        })
    });
    or_throw(&env, value).map(Buffer::from)
}

/// Opens a handle on the cache directory `path`. `max_entries` / `max_bytes`: the
/// directory's bounds to store (negative or absent: keep the stored one; Infinity: remove it).
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn open(
    env: Env,
    path: String,
    initial_map_size: f64,
    max_map_size: f64,
    max_readers: u32,
    durability: u32,
    keep_expired: Option<bool>,
    max_entries: Option<f64>,
    max_bytes: Option<f64>,
) -> Option<u32> {
    let bounds = (
        BoundSetting::from_js(max_entries.unwrap_or(-1.0)),
        BoundSetting::from_js(max_bytes.unwrap_or(-1.0)),
    );
    or_throw(
        &env,
        open_handle(
            path,
            initial_map_size,
            max_map_size,
            max_readers,
            durability,
            keep_expired.unwrap_or(false),
            bounds,
        ),
    )
}

fn open_handle(
    path: String,
    initial_map_size: f64,
    max_map_size: f64,
    max_readers: u32,
    durability: u32,
    keep_expired: bool,
    (max_entries, max_bytes): (BoundSetting, BoundSetting),
) -> CacheResult<u32> {
    let durability = parse_durability(durability)?;
    let opts = StoreOptions {
        initial_map_size: initial_map_size.max(0.0) as u64,
        max_map_size: max_map_size.max(0.0) as u64,
        max_readers: max_readers.max(1),
    };
    with_thread(|t| {
        let shared = registry::acquire(std::path::Path::new(&path), &opts)?;
        if shared
            .store_bounds(max_entries, max_bytes, durability)
            .is_err()
        {
            registry::release(shared);
            return Err(CacheError::Closed);
        }
        t.handles
            .insert(Handle {
                shared,
                durability,
                keep_expired,
            })
            .map_err(|refused| {
                registry::release(refused.shared);
                CacheError::TooManyHandles {
                    limit: handles::MAX_SLOTS as u32,
                }
            })
    })
}

/// Blocks until every write queued in this process (any thread, any store) is committed, or
/// until `timeout_ms` has passed; returns whether all were. Called only from index.cjs's
/// `process.on('exit')` hook, so that writes not yet awaited survive `process.exit()`.
#[napi]
pub fn drain_sync(timeout_ms: f64) -> bool {
    let timeout = std::time::Duration::from_millis(timeout_ms.clamp(0.0, 3_600_000.0) as u64);
    registry::drain_all(timeout)
}

/// Closes a handle without waiting. Returns true when that is all (other handles on the
/// directory remain, or the handle was closed already); false when it was the last handle in
/// this process: the writer thread closes LMDB after the queued writes, then `ticket` completes
/// through completion `port` (so the JS thread never waits for another process's write
/// transaction to end).
#[napi]
pub fn close(env: Env, handle: u32, ticket: u32, port: u32) -> Option<bool> {
    let closed = with_thread(|t| {
        let sink: Arc<dyn CompletionSink> = t.port(port as usize)?.clone();
        let Some(h) = t.handles.remove(handle) else {
            return Ok(true);
        };
        Ok(!registry::release_then_reply(
            h.shared,
            Reply { sink, ticket },
        ))
    });
    or_throw(&env, closed)
}

/// Same as the raw `lookup`, for keys too long for the scratch buffer.
#[napi]
pub fn lookup_key(handle: u32, key: &[u8], want_value: bool) -> i32 {
    settle(catch_unwind(AssertUnwindSafe(|| {
        with_thread(|t| t.lookup_and_keep(handle, Some(key), want_value))
    })))
}

/// Same as the raw `expire`, for keys too long for the scratch buffer.
#[napi]
pub fn expire_key(handle: u32, key: &[u8], now: f64) -> i32 {
    settle(catch_unwind(AssertUnwindSafe(|| {
        with_thread(|t| t.expire_and_release(handle, Some(key), now).map(|()| 0))
    })))
}

/// Queues the writes JS collected during one turn (layout: `batch::parse_flush`). Each
/// request's result arrives through `onWritesDone` with its ticket, failures included (a
/// handle closed meanwhile gets ERR_CACHE_CLOSED there).
#[napi]
pub fn enqueue_requests(env: Env, flush: &[u8], port: u32) {
    let queued = with_thread(|t| {
        let requests = parse_flush(flush)?;
        // One copy of the flush for all its requests (see `SharedBytes`).
        let copied: Arc<[u8]> = Arc::from(flush);
        let port = Arc::clone(t.port(port as usize)?);
        let sink: Arc<dyn CompletionSink> = port.clone();
        let mut failures = Vec::new();
        let mut by_store: Vec<(Arc<SharedStore>, Vec<WriteRequest>)> = Vec::new();
        for request in requests {
            let handle = match t.handle(request.handle) {
                Ok(h) => h,
                Err(e) => {
                    failures.push(Completion {
                        ticket: request.ticket,
                        result: Err(e),
                    });
                    continue;
                }
            };
            let now = expiry_from_js(request.now).unwrap_or(u64::MAX);
            let kind = match request.kind {
                REQUEST_SWEEP => WriteKind::Sweep { now },
                REQUEST_CLEAR => WriteKind::Clear {
                    prefix: request.payload.to_vec(),
                },
                _ => WriteKind::Batch {
                    ops: SharedBytes::part(
                        &copied,
                        request.payload_at..request.payload_at + request.payload.len(),
                    ),
                    now,
                },
            };
            let write = WriteRequest {
                kind,
                durability: handle.durability,
                reply: Some(Reply {
                    sink: Arc::clone(&sink),
                    ticket: request.ticket,
                }),
            };
            match by_store
                .iter_mut()
                .find(|(s, _)| Arc::ptr_eq(s, &handle.shared))
            {
                Some((_, list)) => list.push(write),
                None => by_store.push((Arc::clone(&handle.shared), vec![write])),
            }
        }
        for (shared, list) in by_store {
            if let Err(refused) = shared.enqueue_many(list) {
                failures.extend(refused.into_iter().filter_map(|w| w.reply).map(|reply| {
                    Completion {
                        ticket: reply.ticket,
                        result: Err(CacheError::Closed),
                    }
                }));
            }
        }
        if !failures.is_empty() {
            port.complete(failures);
        }
        Ok(())
    });
    or_throw(&env, queued);
}

/// The range of a scan, from the bounds as JS passes them.
fn key_range(
    prefix: &[u8],
    lower: Option<&[u8]>,
    lower_inclusive: bool,
    upper: Option<&[u8]>,
    upper_inclusive: bool,
) -> KeyRange {
    KeyRange {
        prefix: prefix.to_vec(),
        lower: lower.map(|l| (l.to_vec(), lower_inclusive)),
        upper: upper.map(|u| (u.to_vec(), upper_inclusive)),
    }
}

/// One page of `entries()`: live entries whose full key starts with `prefix` and lies within
/// the optional full-key bounds, ascending (or descending when `reverse`), after the cursor
/// `after` of the previous page. The page's layout is the protocol's (see `protocol`); its
/// body is `Store::scan_page`'s; the cursor (opaque to JS, to continue after; empty when
/// done) fills the rest. It is written into the scratch buffer's value area (returns null,
/// length in CTL_VALUE_LEN), or returned as a Buffer when larger than that area. Expired
/// entries met are queued for lazy deletion. With `keys_only`, the body holds the keys alone
/// (`Store::scan_keys_page`).
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn entries_page(
    env: Env,
    handle: u32,
    prefix: &[u8],
    lower: Option<&[u8]>,
    lower_inclusive: bool,
    upper: Option<&[u8]>,
    upper_inclusive: bool,
    reverse: bool,
    after: Option<&[u8]>,
    now: f64,
    max_entries: u32,
    max_bytes: u32,
    keys_only: Option<bool>,
) -> Option<Buffer> {
    let range = key_range(prefix, lower, lower_inclusive, upper, upper_inclusive);
    let page = with_thread(|t| {
        let mut out = std::mem::take(&mut t.page_out);
        out.clear();
        out.resize(PAGE_HEADER_LEN, 0);
        let mut json_values = Vec::new();
        let (count, end) = scan_store(t, handle, now, |store, now_ms, expired| {
            let (max_entries, max_bytes) = (max_entries.max(1) as usize, max_bytes.max(1) as usize);
            if keys_only == Some(true) {
                return store.scan_keys_page(
                    &range,
                    reverse,
                    after,
                    now_ms,
                    max_entries,
                    max_bytes,
                    &mut out,
                    expired,
                );
            }
            store.scan_page(
                &range,
                reverse,
                after,
                now_ms,
                max_entries,
                max_bytes,
                &mut out,
                &mut json_values,
                expired,
            )
        })?;
        let body_len = out.len() - PAGE_HEADER_LEN;
        out[0] = if matches!(end, PageEnd::Done) {
            PAGE_FLAG_DONE
        } else {
            0
        };
        let put_u32 = |out: &mut Vec<u8>, at: usize, n: usize| {
            out[at..at + U32_LEN].copy_from_slice(&(n as u32).to_le_bytes())
        };
        put_u32(&mut out, PAGE_COUNT_AT, count);
        put_u32(&mut out, PAGE_BODY_LEN_AT, body_len);
        put_u32(&mut out, PAGE_JSON_COUNT_AT, json_values.len());
        for i in json_values {
            out.extend_from_slice(&i.to_le_bytes());
        }
        if let PageEnd::After(cursor) = &end {
            out.extend_from_slice(cursor);
        }
        Ok(hand_over_page(t, out))
    });
    // None: the page is in the scratch buffer (or an exception is pending).
    or_throw(&env, page).flatten().map(Buffer::from)
}

/// Puts a page in the scratch buffer's value area (None; its length in CTL_VALUE_LEN, the
/// buffer kept for the next page) or, when larger than that area, gives it back to be
/// returned as a Buffer.
fn hand_over_page(t: &mut ThreadState, out: Vec<u8>) -> Option<Vec<u8>> {
    if out.len() > VALUE_CAPACITY {
        return Some(out);
    }
    // SAFETY: out.len() <= VALUE_CAPACITY, so the copy stays inside the live scratch
    // buffer; JS reads it before it makes another native call.
    unsafe { ptr::copy_nonoverlapping(out.as_ptr(), t.scratch.add(VALUE_OFFSET), out.len()) };
    t.set_ctl(CTL_VALUE_LEN, out.len() as f64);
    if out.capacity() <= 4 * VALUE_CAPACITY {
        t.page_out = out;
    }
    None
}

/// One chunk of `count()`: live entries whose full key starts with `prefix` and lies within
/// the optional full-key bounds, ascending, after the cursor `after` of the previous chunk,
/// at most `max_entries`. Returns `[u8 done][u32 LE count][cursor]` (the cursor is opaque to
/// JS and empty when done). Expired entries met are queued for lazy deletion.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn count_page(
    env: Env,
    handle: u32,
    prefix: &[u8],
    lower: Option<&[u8]>,
    lower_inclusive: bool,
    upper: Option<&[u8]>,
    upper_inclusive: bool,
    after: Option<&[u8]>,
    now: f64,
    max_entries: u32,
) -> Option<Buffer> {
    let range = key_range(prefix, lower, lower_inclusive, upper, upper_inclusive);
    let page = with_thread(|t| {
        let (count, end) = scan_store(t, handle, now, |store, now_ms, expired| {
            store.count_page(&range, after, now_ms, max_entries.max(1) as usize, expired)
        })?;
        let mut out = Vec::with_capacity(COUNT_HEADER_LEN + 64);
        out.push(if matches!(end, PageEnd::Done) {
            PAGE_FLAG_DONE
        } else {
            0
        });
        out.extend_from_slice(&(count as u32).to_le_bytes());
        if let PageEnd::After(cursor) = &end {
            out.extend_from_slice(cursor);
        }
        Ok(out)
    });
    or_throw(&env, page).map(Buffer::from)
}

/// Runs `scan` over the store of `handle` at `now` (JS epoch ms), then queues lazy deletes of
/// the expired entries it met; best effort: a closed queue just means nobody needs them.
fn scan_store<R>(
    t: &ThreadState,
    handle: u32,
    now: f64,
    scan: impl FnOnce(&Store, u64, &mut Vec<ExpiredEntry>) -> CacheResult<R>,
) -> CacheResult<R> {
    let h = t.handle(handle)?;
    let now_ms = expiry_from_js(now).unwrap_or(u64::MAX);
    let mut expired = Vec::new();
    let result = scan(&h.shared.store, now_ms, &mut expired)?;
    if !h.keep_expired {
        h.shared.enqueue_lazy_deletes(
            expired.into_iter().map(|e| e.full_key),
            now_ms,
            h.durability,
        );
    }
    Ok(result)
}

#[napi(object)]
pub struct NativeStats {
    pub entries: f64,
    pub live_entries: f64,
    pub expired_entries: f64,
    pub file_size: f64,
    pub used_size: f64,
    pub free_pages: f64,
    pub page_size: u32,
    pub map_size: f64,
    pub max_map_size: f64,
    pub readers_in_use: u32,
    pub max_readers: u32,
    pub open_stores: u32,
    pub last_txn_id: f64,
    /// The directory's bounds (null: none), and its counted entries and bytes (null: the
    /// directory keeps no totals, having never been bounded).
    pub max_entries: Option<f64>,
    pub max_bytes: Option<f64>,
    pub counted_entries: Option<f64>,
    pub counted_bytes: Option<f64>,
    /// This process's reads that found an entry, found none, and entries its writer evicted.
    pub hits: f64,
    pub misses: f64,
    pub evictions: f64,
    /// The same summed over every process of a bounded directory, each up to its last write
    /// (null: not kept).
    pub directory_counters: Option<Vec<f64>>,
}

/// Size and usage figures of the handle's store.
#[napi]
pub fn stats(env: Env, handle: u32) -> Option<NativeStats> {
    let stats = with_thread(|t| {
        let store = &t.handle(handle)?.shared.store;
        let s = store.stats()?;
        let counter =
            |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed) as f64;
        let ev = &store.eviction;
        Ok(NativeStats {
            max_entries: s.bounds.max_entries.map(|n| n as f64),
            max_bytes: s.bounds.max_bytes.map(|n| n as f64),
            counted_entries: s.totals.map(|t| t.entries as f64),
            counted_bytes: s.totals.map(|t| t.bytes as f64),
            hits: counter(&ev.hits),
            misses: counter(&ev.misses),
            evictions: counter(&ev.evictions),
            directory_counters: s
                .counters
                .map(|c| vec![c.hits as f64, c.misses as f64, c.evictions as f64]),
            entries: s.entries as f64,
            live_entries: s.live_entries as f64,
            expired_entries: s.expired_entries as f64,
            file_size: s.file_size as f64,
            used_size: s.used_size as f64,
            free_pages: s.free_pages as f64,
            page_size: s.page_size as u32,
            map_size: s.map_size as f64,
            max_map_size: s.max_map_size as f64,
            readers_in_use: s.readers_in_use,
            max_readers: s.max_readers,
            open_stores: registry::open_store_count() as u32,
            last_txn_id: s.last_txn_id as f64,
        })
    });
    or_throw(&env, stats)
}

/// The key lists of the handle's stored shapes from id `from` on, as JSON text (an array of
/// arrays of strings): what the JS decoder needs to read record references (`shapes`).
#[napi]
pub fn shapes_from(env: Env, handle: u32, from: u32) -> Option<String> {
    let shapes = with_thread(|t| {
        let keys = t.handle(handle)?.shared.store.shapes_from(from)?;
        serde_json::to_string(&keys).map_err(|e| CacheError::Internal {
            detail: e.to_string(),
        })
    });
    or_throw(&env, shapes)
}

/// Writes a compacted copy of the handle's store to the file `dest` (see
/// `Store::copy_compacted`).
#[napi]
pub fn compact_copy(env: Env, handle: u32, dest: String) {
    let copied = with_thread(|t| {
        t.handle(handle)?
            .shared
            .store
            .copy_compacted(std::path::Path::new(&dest))
    });
    or_throw(&env, copied);
}

#[napi(object)]
pub struct NativeVerifyReport {
    pub entries: f64,
    pub expiry_rows: f64,
    /// `[key, what is wrong]` pairs, at most 100.
    pub undecodable: Vec<Vec<String>>,
    pub undecodable_count: f64,
    pub totals_checked: bool,
}

/// `lmdb-cache verify`'s walk (see `verify::walk`), for its child process only: calls
/// `on_progress(records, lastKey)` every 256 records.
#[napi]
pub fn verify_walk(
    env: Env,
    path: String,
    on_progress: Function<FnArgs<(f64, String)>, ()>,
) -> Option<NativeVerifyReport> {
    let mut progress = |n: u64, key: &str| {
        let _ = on_progress.call(FnArgs::from((n as f64, key.to_string())));
    };
    let report = crate::verify::walk(std::path::Path::new(&path), 256, &mut progress).map(|r| {
        NativeVerifyReport {
            entries: r.entries as f64,
            expiry_rows: r.expiry_rows as f64,
            undecodable: r.undecodable.into_iter().map(|(k, d)| vec![k, d]).collect(),
            undecodable_count: r.undecodable_count as f64,
            totals_checked: r.totals_checked,
        }
    });
    or_throw(&env, report)
}

#[napi(object)]
pub struct NativePageReport {
    pub pages: f64,
    /// `[page number, what is wrong]` pairs, at most 100.
    pub damaged: Vec<(f64, String)>,
    pub damaged_count: f64,
}

/// `lmdb-cache verify`'s page walk (see `page_walk::walk`), for its child process only: every
/// B-tree page of `data.mdb` read with file reads, never through LMDB's map.
#[napi]
pub fn verify_pages(env: Env, path: String) -> Option<NativePageReport> {
    let dir = std::path::Path::new(&path);
    let report = crate::page_walk::walk(dir)
        .map(|r| NativePageReport {
            pages: r.pages as f64,
            damaged: r
                .damaged
                .into_iter()
                .map(|(page, detail)| (page as f64, detail))
                .collect(),
            damaged_count: r.damaged_count as f64,
        })
        .map_err(|detail| CacheError::InvalidDatabase {
            path: dir.to_path_buf(),
            detail,
        });
    or_throw(&env, report)
}
