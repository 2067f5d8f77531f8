//! The thin napi layer: JS calls in, the pure core does the work.
//!
//! Per JS thread (main thread or worker; Node runs each on its own OS thread) there is one
//! [`ThreadState`] in a thread-local: the handle table, a scratch buffer shared with JS, and
//! the completion port through which the writer thread resolves this thread's promises.
//!
//! The read hot path (`lookup`, `expire`, `noop`) is registered as raw N-API callbacks that
//! take no arguments: JS writes the handle id, key length and key bytes into the scratch
//! buffer, native code writes the status, expiry and value bytes back. This avoids napi-rs'
//! argument conversion and JS string conversion, which cost more than the LMDB read itself.

use std::cell::RefCell;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use parking_lot::Mutex;

use crate::batch::parse_flush;
use crate::error::{CacheError, CacheResult};
use crate::keys::KeyRange;
use crate::record::expiry_from_js;
use crate::record::Payload;
use crate::registry::{self, SharedStore};
use crate::store::{ExpiredEntry, PageEnd, Store, StoreOptions};
use crate::writer::{Completion, CompletionSink, Durability, Reply, WriteKind, WriteRequest};

// The scratch-buffer layout, lookup statuses and page layout are the protocol's.
use crate::protocol::*;

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

struct Handle {
    id: u32,
    shared: Arc<SharedStore>,
    durability: Durability,
    /// Reads through this handle leave expired entries in place (no lazy deletes): for
    /// operator tools such as `lmdb-cache stats`, which must not change what they report on.
    keep_expired: bool,
}

struct ThreadState {
    /// Slot index in the low 16 bits of a handle id, the slot's generation in the high 16,
    /// so a closed id is never confused with a later handle in the same slot.
    handles: Vec<Option<Handle>>,
    generations: Vec<u16>,
    scratch: *mut u8,
    scratch_ref: sys::napi_ref,
    large_value: Option<Vec<u8>>,
    /// The buffer `entries_page` builds pages in, kept between calls: a fresh allocation per
    /// page cost more (page faults on new memory) than scanning the page.
    page_out: Vec<u8>,
    last_error: Option<CacheError>,
    /// One per `init()` call on this thread: each loaded copy of `index.cjs` (a test runner
    /// may load the module again with a fresh registry) gets its completions delivered to its
    /// own callback. Indexed by the port number `init()` returned.
    ports: Vec<Arc<CompletionPort>>,
}

thread_local! {
    static THREAD: RefCell<Option<ThreadState>> = const { RefCell::new(None) };
}

impl ThreadState {
    fn port(&self, number: usize) -> CacheResult<&Arc<CompletionPort>> {
        self.ports
            .get(number)
            .ok_or_else(|| CacheError::InvalidRequest {
                detail: format!("no completion port {number} on this thread"),
            })
    }

    fn handle(&self, id: u32) -> CacheResult<&Handle> {
        match self.handles.get((id & 0xffff) as usize) {
            Some(Some(h)) if h.id == id => Ok(h),
            _ => Err(CacheError::Closed),
        }
    }

    fn ctl(&self, slot: usize) -> f64 {
        // SAFETY: `scratch` points to SCRATCH_LEN bytes kept alive by `scratch_ref`, and the
        // control slots lie within them; unaligned reads avoid assuming the allocator's
        // alignment.
        unsafe { ptr::read_unaligned((self.scratch as *const f64).add(slot)) }
    }

    fn set_ctl(&self, slot: usize, value: f64) {
        // SAFETY: as in `ctl`; JS does not run while native code holds the thread.
        unsafe { ptr::write_unaligned((self.scratch as *mut f64).add(slot), value) }
    }

    /// The key JS wrote into the scratch buffer.
    fn scratch_key(&self) -> CacheResult<&[u8]> {
        let len = self.ctl(CTL_KEY_LEN) as usize;
        if len > KEY_CAPACITY {
            return Err(CacheError::InvalidRequest {
                detail: format!("key length {len} over the scratch capacity"),
            });
        }
        // SAFETY: KEY_OFFSET + len <= SCRATCH_LEN, within the live scratch buffer.
        Ok(unsafe { std::slice::from_raw_parts(self.scratch.add(KEY_OFFSET), len) })
    }

    /// Looks `key` up and reports through the scratch buffer (see the LOOKUP_* codes); a value
    /// too large for the buffer is returned instead, for `takeLargeValue()`.
    fn lookup(
        &self,
        handle: u32,
        key: &[u8],
        want_value: bool,
    ) -> CacheResult<(i32, Option<Vec<u8>>)> {
        let store = &self.handle(handle)?.shared.store;
        let scratch = self.scratch;
        let mut large = None;
        let status = store.lookup(key, |record| {
            let Some(record) = record else {
                return LOOKUP_MISSING;
            };
            self.set_ctl(
                CTL_HAS_EXPIRY,
                if record.expiry.is_some() { 1.0 } else { 0.0 },
            );
            self.set_ctl(CTL_EXPIRY, record.expiry.unwrap_or(0) as f64);
            let (value, kind) = match record.payload {
                Payload::Undefined => return LOOKUP_FOUND_UNDEFINED,
                Payload::MsgPack(v) => (v, VALUE_MSGPACK),
                Payload::Json(v) => (v, VALUE_JSON),
            };
            self.set_ctl(CTL_VALUE_LEN, value.len() as f64);
            if !want_value {
                return LOOKUP_FOUND;
            }
            self.set_ctl(CTL_VALUE_KIND, kind as f64);
            if kind == VALUE_JSON {
                self.set_ctl(CTL_VALUE_ASCII, if value.is_ascii() { 1.0 } else { 0.0 });
            }
            if value.len() <= VALUE_CAPACITY {
                // SAFETY: value.len() <= VALUE_CAPACITY, so the copy stays inside the scratch
                // buffer; the source is LMDB's map, valid during this read transaction.
                unsafe {
                    ptr::copy_nonoverlapping(value.as_ptr(), scratch.add(VALUE_OFFSET), value.len())
                };
                LOOKUP_FOUND
            } else {
                large = Some(value.to_vec());
                LOOKUP_FOUND_LARGE
            }
        })?;
        Ok((status, large))
    }

    /// `lookup` that keeps a large value for `takeLargeValue()`.
    fn lookup_and_keep(
        &mut self,
        handle: u32,
        key: Option<&[u8]>,
        want_value: bool,
    ) -> CacheResult<i32> {
        let (status, large) = match key {
            Some(k) => self.lookup(handle, k, want_value)?,
            None => self.lookup(handle, self.scratch_key()?, want_value)?,
        };
        if large.is_some() {
            self.large_value = large;
        }
        Ok(status)
    }

    fn expire(&self, handle: u32, key: &[u8], now: f64) -> CacheResult<()> {
        let h = self.handle(handle)?;
        let now = expiry_from_js(now).unwrap_or(u64::MAX);
        if !h.keep_expired {
            h.shared
                .enqueue_lazy_deletes([key.to_vec()], now, h.durability);
        }
        Ok(())
    }
}

/// Runs `f` with this thread's state; `Closed` if `init` never ran or the env is gone.
fn with_thread<R>(f: impl FnOnce(&mut ThreadState) -> CacheResult<R>) -> CacheResult<R> {
    THREAD.with(|cell| match cell.borrow_mut().as_mut() {
        Some(state) => f(state),
        None => Err(CacheError::Closed),
    })
}

fn remember_error(err: CacheError) {
    THREAD.with(|cell| {
        if let Some(state) = cell.borrow_mut().as_mut() {
            state.last_error = Some(err);
        }
    });
}

/// Delivers writer-thread completions to this JS thread through a threadsafe function.
struct CompletionPort {
    /// `None` once the JS environment is being torn down: no call may reach it after that.
    tsfn: Mutex<Option<TsfnPtr>>,
}

struct TsfnPtr(sys::napi_threadsafe_function);
// SAFETY: N-API documents napi_call_threadsafe_function as callable from any thread; the
// pointer is only used under `CompletionPort::tsfn`'s lock while the function is alive.
unsafe impl Send for TsfnPtr {}

impl CompletionSink for CompletionPort {
    fn complete(&self, done: Vec<Completion>) {
        let guard = self.tsfn.lock();
        let Some(tsfn) = guard.as_ref() else { return };
        let data = Box::into_raw(Box::new(done));
        // SAFETY: the tsfn is alive while it is stored here (the env cleanup hook removes it
        // under this lock before releasing it); ownership of `data` passes to
        // `deliver_to_js` on success.
        let status = unsafe {
            sys::napi_call_threadsafe_function(
                tsfn.0,
                data.cast(),
                sys::ThreadsafeFunctionCallMode::nonblocking,
            )
        };
        if status != sys::Status::napi_ok {
            // SAFETY: the call failed, so `data` was not handed over and is still ours.
            drop(unsafe { Box::from_raw(data) });
        }
    }
}

/// Runs on the JS thread: calls `onWritesDone(tickets, values, failures)`.
unsafe extern "C" fn deliver_to_js(
    env: sys::napi_env,
    js_callback: sys::napi_value,
    _ctx: *mut c_void,
    data: *mut c_void,
) {
    // SAFETY: `data` is the Box<Vec<Completion>> leaked by `CompletionPort::complete`.
    let done = unsafe { Box::from_raw(data.cast::<Vec<Completion>>()) };
    if env.is_null() || js_callback.is_null() {
        return; // the environment is shutting down; nobody is waiting any more
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let env = Env::from_raw(env);
        let tickets: Vec<u32> = done.iter().map(|c| c.ticket).collect();
        let values: Vec<f64> = done
            .iter()
            .map(|c| *c.result.as_ref().unwrap_or(&0.0))
            .collect();
        let failures: Vec<Unknown> = done
            .iter()
            .filter_map(|c| c.result.as_ref().err().map(|e| (c.ticket, e.clone())))
            .flat_map(|(ticket, e)| {
                let ticket = ticket.into_unknown(&env).ok();
                let error = JsError::from(to_js_error(e)).into_unknown(env);
                [ticket, Some(error)]
            })
            .flatten()
            .collect();
        let args = (
            Uint32Array::new(tickets),
            Float64Array::new(values),
            failures,
        );
        // SAFETY: `js_callback` is the live function value handed to this call_js callback.
        let callback: Function<FnArgs<(Uint32Array, Float64Array, Vec<Unknown>)>, ()> =
            unsafe { Function::from_napi_value(env.raw(), js_callback) }?;
        callback.call(FnArgs::from(args))
    }));
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
    let mut result = Object::new(env)?;
    let first = THREAD.with(|cell| cell.borrow().is_none());

    let mut data: *mut c_void = ptr::null_mut();
    let mut buffer: sys::napi_value = ptr::null_mut();
    let mut scratch_ref: sys::napi_ref = ptr::null_mut();
    let mut tsfn: sys::napi_threadsafe_function = ptr::null_mut();
    let name = env.create_string("lmdb-cache completions")?;
    if first {
        // SAFETY: plain N-API calls on the current env with out-pointers to locals; the buffer
        // is pinned by a strong reference for the life of the env.
        unsafe {
            check(sys::napi_create_buffer(
                raw_env,
                SCRATCH_LEN,
                &mut data,
                &mut buffer,
            ))?;
            check(sys::napi_create_reference(
                raw_env,
                buffer,
                1,
                &mut scratch_ref,
            ))?;
            // Once per env: N-API forbids adding the same hook twice.
            check(sys::napi_add_env_cleanup_hook(
                raw_env,
                Some(tear_down_thread),
                ptr::null_mut(),
            ))?;
        }
    } else {
        let existing = THREAD.with(|cell| cell.borrow().as_ref().map(|t| t.scratch_ref));
        if let Some(existing) = existing {
            // SAFETY: the reference was created on this env by the first init() and is never
            // deleted while the env lives.
            unsafe {
                check(sys::napi_get_reference_value(
                    raw_env,
                    existing,
                    &mut buffer,
                ))?
            };
        }
    }
    // SAFETY: plain N-API calls on the current env with out-pointers to locals.
    unsafe {
        check(sys::napi_create_threadsafe_function(
            raw_env,
            on_writes_done.raw(),
            ptr::null_mut(),
            name.raw(),
            0,
            1,
            ptr::null_mut(),
            None,
            ptr::null_mut(),
            Some(deliver_to_js),
            &mut tsfn,
        ))?;
        // Pending writes keep the loop alive only while JS holds it (holdLoop/releaseLoop).
        check(sys::napi_unref_threadsafe_function(raw_env, tsfn))?;
    }
    let port = Arc::new(CompletionPort {
        tsfn: Mutex::new(Some(TsfnPtr(tsfn))),
    });
    let port_number = THREAD.with(|cell| {
        let mut cell = cell.borrow_mut();
        let state = cell.get_or_insert_with(|| ThreadState {
            handles: Vec::new(),
            generations: Vec::new(),
            scratch: data.cast(),
            scratch_ref,
            large_value: None,
            page_out: Vec::new(),
            last_error: None,
            ports: Vec::new(),
        });
        state.ports.push(port);
        state.ports.len() - 1
    });

    let mut hot = Object::new(env)?;
    for (name, cb) in [
        ("lookup", lookup_raw as RawCallback),
        ("expire", expire_raw),
        ("noop", noop_raw),
        ("holdLoop", hold_loop_raw),
        ("releaseLoop", release_loop_raw),
    ] {
        // The loop functions act on this init()'s port, passed as the function's data.
        hot.set_named_property(name, raw_function(raw_env, name, cb, port_number)?)?;
    }
    let mut layout = Object::new(env)?;
    for (name, value) in EXPORTED {
        layout.set_named_property(name, *value as f64)?;
    }
    // SAFETY: `buffer` is a live napi_value created above in this same call scope.
    let buffer_value = unsafe { Unknown::from_raw_unchecked(raw_env, buffer) };
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

/// Env cleanup: the JS thread is going away (worker exit or terminate, process exit).
unsafe extern "C" fn tear_down_thread(_arg: *mut c_void) {
    let _ = catch_unwind(|| {
        let Some(state) = THREAD.with(|cell| cell.borrow_mut().take()) else {
            return;
        };
        for port in &state.ports {
            if let Some(tsfn) = port.tsfn.lock().take() {
                // SAFETY: the tsfn is alive (it was still stored); after this no thread calls
                // it, because `complete` only calls what is stored and we just removed it.
                unsafe {
                    sys::napi_release_threadsafe_function(
                        tsfn.0,
                        sys::ThreadsafeFunctionReleaseMode::abort,
                    )
                };
            }
        }
        // The scratch reference is freed with the env itself; the buffer is no longer used.
        let _ = state.scratch_ref;
        for handle in state.handles.into_iter().flatten() {
            registry::release(handle.shared);
        }
    });
}

fn int32(env: sys::napi_env, value: i32) -> sys::napi_value {
    let mut out = ptr::null_mut();
    // SAFETY: creates a number on the current env; on failure `out` stays null (undefined).
    unsafe { sys::napi_create_int32(env, value, &mut out) };
    out
}

/// `lookup()`: handle and key from the scratch buffer; returns a LOOKUP_* code.
unsafe extern "C" fn lookup_raw(
    env: sys::napi_env,
    _info: sys::napi_callback_info,
) -> sys::napi_value {
    let status = catch_unwind(|| {
        with_thread(|t| {
            let handle = t.ctl(CTL_HANDLE) as u32;
            let want = t.ctl(CTL_WANT_VALUE) != 0.0;
            t.lookup_and_keep(handle, None, want)
        })
    });
    int32(env, settle(status))
}

/// `expire()`: queue a lazy delete of the scratch key if it is still expired at CTL_NOW.
unsafe extern "C" fn expire_raw(
    env: sys::napi_env,
    _info: sys::napi_callback_info,
) -> sys::napi_value {
    let status = catch_unwind(|| {
        with_thread(|t| {
            let key = t.scratch_key()?;
            t.expire(t.ctl(CTL_HANDLE) as u32, key, t.ctl(CTL_NOW))?;
            Ok(0)
        })
    });
    int32(env, settle(status))
}

fn settle(status: std::thread::Result<CacheResult<i32>>) -> i32 {
    match status {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            remember_error(e);
            LOOKUP_FAILED
        }
        Err(_) => {
            remember_error(CacheError::Internal {
                detail: "panic in a read".into(),
            });
            LOOKUP_FAILED
        }
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

fn set_loop_hold(env: sys::napi_env, info: sys::napi_callback_info, hold: bool) {
    let mut data: *mut c_void = ptr::null_mut();
    // SAFETY: reads the callback data of the current call; no arguments are requested.
    unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            &mut data,
        )
    };
    let port_number = data as usize;
    let _ = catch_unwind(|| {
        let _ = with_thread(|t| {
            let port = t.port(port_number)?;
            if let Some(tsfn) = port.tsfn.lock().as_ref() {
                // SAFETY: called on the JS thread that owns the live tsfn.
                unsafe {
                    if hold {
                        sys::napi_ref_threadsafe_function(env, tsfn.0);
                    } else {
                        sys::napi_unref_threadsafe_function(env, tsfn.0);
                    }
                }
            }
            Ok(())
        });
    });
}

/// `holdLoop()`: keep the event loop alive while writes are pending.
unsafe extern "C" fn hold_loop_raw(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    set_loop_hold(env, info, true);
    ptr::null_mut()
}

/// `releaseLoop()`: no pending writes any more.
unsafe extern "C" fn release_loop_raw(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    set_loop_hold(env, info, false);
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

/// Opens a handle on the cache directory `path`.
#[napi]
pub fn open(
    env: Env,
    path: String,
    initial_map_size: f64,
    max_map_size: f64,
    max_readers: u32,
    durability: u32,
    keep_expired: Option<bool>,
) -> Option<u32> {
    or_throw(
        &env,
        open_handle(
            path,
            initial_map_size,
            max_map_size,
            max_readers,
            durability,
            keep_expired.unwrap_or(false),
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
) -> CacheResult<u32> {
    let durability = parse_durability(durability)?;
    let opts = StoreOptions {
        initial_map_size: initial_map_size.max(0.0) as u64,
        max_map_size: max_map_size.max(0.0) as u64,
        max_readers: max_readers.max(1),
    };
    with_thread(|t| {
        let shared = registry::acquire(std::path::Path::new(&path), &opts)?;
        let slot = match t.handles.iter().position(Option::is_none) {
            Some(i) => i,
            None if t.handles.len() < 0xffff => {
                t.handles.push(None);
                t.generations.push(0);
                t.handles.len() - 1
            }
            None => {
                registry::release(shared);
                return Err(CacheError::TooManyHandles { limit: 0xffff });
            }
        };
        t.generations[slot] = t.generations[slot].wrapping_add(1);
        let id = ((t.generations[slot] as u32) << 16) | slot as u32;
        t.handles[slot] = Some(Handle {
            id,
            shared,
            durability,
            keep_expired,
        });
        Ok(id)
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

/// Closes a handle; the last handle on a directory in this process closes LMDB after the
/// queued writes. Closing a closed handle does nothing.
#[napi]
pub fn close(handle: u32) {
    let taken = THREAD.with(|cell| {
        let mut state = cell.borrow_mut();
        let t = state.as_mut()?;
        let slot = t.handles.get_mut((handle & 0xffff) as usize)?;
        match slot {
            Some(h) if h.id == handle => slot.take(),
            _ => None,
        }
    });
    if let Some(h) = taken {
        registry::release(h.shared);
    }
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
        with_thread(|t| t.expire(handle, key, now).map(|()| 0))
    })))
}

/// Queues the writes JS collected during one turn (layout: `batch::parse_flush`). Each
/// request's result arrives through `onWritesDone` with its ticket, failures included (a
/// handle closed meanwhile gets ERR_CACHE_CLOSED there).
#[napi]
pub fn enqueue_requests(env: Env, flush: &[u8], port: u32) {
    let queued = with_thread(|t| {
        let requests = parse_flush(flush)?;
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
            let kind = match request.kind {
                REQUEST_SWEEP => WriteKind::Sweep {
                    now: expiry_from_js(request.now).unwrap_or(u64::MAX),
                },
                _ => WriteKind::Batch(request.payload.to_vec()),
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
/// entries met are queued for lazy deletion.
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
) -> Option<Buffer> {
    let range = key_range(prefix, lower, lower_inclusive, upper, upper_inclusive);
    let page = with_thread(|t| {
        let mut out = std::mem::take(&mut t.page_out);
        out.clear();
        out.resize(PAGE_HEADER_LEN, 0);
        let mut json_values = Vec::new();
        let (count, end) = scan_store(t, handle, now, |store, now_ms, expired| {
            store.scan_page(
                &range,
                reverse,
                after,
                now_ms,
                max_entries.max(1) as usize,
                max_bytes.max(1) as usize,
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
            out[at..at + 4].copy_from_slice(&(n as u32).to_le_bytes())
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
        if out.len() > VALUE_CAPACITY {
            return Ok(Some(out));
        }
        // SAFETY: out.len() <= VALUE_CAPACITY, so the copy stays inside the live scratch
        // buffer; JS reads it before it makes another native call.
        unsafe { ptr::copy_nonoverlapping(out.as_ptr(), t.scratch.add(VALUE_OFFSET), out.len()) };
        t.set_ctl(CTL_VALUE_LEN, out.len() as f64);
        if out.capacity() <= 4 * VALUE_CAPACITY {
            t.page_out = out;
        }
        Ok(None)
    });
    // None: the page is in the scratch buffer (or an exception is pending).
    or_throw(&env, page).flatten().map(Buffer::from)
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
}

/// Size and usage figures of the handle's store.
#[napi]
pub fn stats(env: Env, handle: u32) -> Option<NativeStats> {
    let stats = with_thread(|t| {
        let s = t.handle(handle)?.shared.store.stats()?;
        Ok(NativeStats {
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
        }
    });
    or_throw(&env, report)
}
