//! Per-JS-thread state: the handle table, the scratch buffer shared with JS and its raw
//! hot-path callbacks (`lookup`, `expire`), the large-value and last-error slots, and the
//! completion ports. Lives in a thread-local; torn down with the JS environment.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::panic::catch_unwind;
use std::ptr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use napi::sys;

use super::check;
use super::completions::CompletionPort;
use super::handles::HandleTable;
use crate::error::{CacheError, CacheResult};
use crate::eviction;
use crate::protocol::*;
use crate::record::{expiry_from_js, Payload};
use crate::registry::{self, SharedStore};
use crate::writer::Durability;

pub(super) struct Handle {
    pub(super) shared: Arc<SharedStore>,
    pub(super) durability: Durability,
    /// Reads through this handle leave expired entries in place (no lazy deletes): for
    /// operator tools such as `lmdb-cache stats`, which must not change what they report on.
    pub(super) keep_expired: bool,
}

pub(super) struct ThreadState {
    pub(super) handles: HandleTable<Handle>,
    /// The scratch buffer shared with JS (`SCRATCH_LEN` bytes), pinned by `scratch_ref`.
    pub(super) scratch: *mut u8,
    pub(super) scratch_ref: sys::napi_ref,
    /// The value of the last LOOKUP_FOUND_LARGE, until `takeLargeValue()` or an `expire`.
    pub(super) large_value: Option<Vec<u8>>,
    /// The buffer `entries_page` builds pages in, kept between calls: a fresh allocation per
    /// page cost more (page faults on new memory) than scanning the page.
    pub(super) page_out: Vec<u8>,
    pub(super) last_error: Option<CacheError>,
    /// One per `init()` call on this thread: each loaded copy of `index.cjs` (a test runner
    /// may load the module again with a fresh registry) gets its completions delivered to its
    /// own callback. Indexed by the port number `init()` returned.
    pub(super) ports: Vec<Arc<CompletionPort>>,
    /// Touches this thread queued lately (key hash, access-clock time), direct-mapped: a key
    /// read again while its touch waits (or after the queue dropped it) is not offered again
    /// until another touch interval passed, which keeps hot reads off the queue's lock.
    pub(super) recent_touches: Box<[Cell<(u64, u32)>]>,
}

const RECENT_TOUCH_SLOTS: usize = 4096;

pub(super) fn recent_touches() -> Box<[Cell<(u64, u32)>]> {
    (0..RECENT_TOUCH_SLOTS).map(|_| Cell::new((0, 0))).collect()
}

/// FNV-1a, 64-bit: a cheap hash for the recent-touch filter (collisions only skip a touch).
fn key_hash(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

thread_local! {
    pub(super) static THREAD: RefCell<Option<ThreadState>> = const { RefCell::new(None) };
}

impl ThreadState {
    pub(super) fn port(&self, number: usize) -> CacheResult<&Arc<CompletionPort>> {
        self.ports
            .get(number)
            .ok_or_else(|| CacheError::InvalidRequest {
                detail: format!("no completion port {number} on this thread"),
            })
    }

    pub(super) fn handle(&self, id: u32) -> CacheResult<&Handle> {
        self.handles.get(id).ok_or(CacheError::Closed)
    }

    pub(super) fn ctl(&self, slot: usize) -> f64 {
        // SAFETY: `scratch` points to SCRATCH_LEN bytes kept alive by `scratch_ref`, and the
        // control slots lie within them; unaligned reads avoid assuming the allocator's
        // alignment.
        unsafe { ptr::read_unaligned((self.scratch as *const f64).add(slot)) }
    }

    pub(super) fn set_ctl(&self, slot: usize, value: f64) {
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
        let h = self.handle(handle)?;
        let store = &h.shared.store;
        let scratch = self.scratch;
        let mut large = None;
        let mut found = None;
        let status = store.lookup(key, |record| {
            let Some(record) = record else {
                return LOOKUP_MISSING;
            };
            found = Some((record.access, record.expiry));
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
        self.count_and_touch(h, key, found);
        Ok((status, large))
    }

    /// Counts a hit or a miss, and in a bounded directory queues a touch of a live entry
    /// whose last access (`found`: its stamp and expiry) is stale. Inspecting handles
    /// (`keep_expired`) change nothing.
    fn count_and_touch(&self, h: &Handle, key: &[u8], found: Option<(Option<u32>, Option<u64>)>) {
        let ev = &h.shared.store.eviction;
        let Some((stamp, expiry)) = found else {
            ev.misses.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // An expired entry counts as a hit until JS calls `expire`, which makes it a miss.
        ev.hits.fetch_add(1, Ordering::Relaxed);
        if h.keep_expired || !ev.bounded.load(Ordering::Relaxed) {
            return;
        }
        let now = eviction::now_ms();
        if expiry.is_some_and(|x| x <= now) || !ev.wants_touch(now, stamp) {
            return;
        }
        let hash = key_hash(key);
        let slot = &self.recent_touches[hash as usize % RECENT_TOUCH_SLOTS];
        let clock = eviction::access_clock(now);
        let (seen, at) = slot.get();
        if seen == hash && !ev.wants_touch_since(clock, at) {
            return;
        }
        slot.set((hash, clock));
        h.shared.enqueue_touch(key, h.durability);
    }

    /// `lookup` that keeps a large value for `takeLargeValue()`.
    pub(super) fn lookup_and_keep(
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

    /// `expire` for the scratch key (`key: None`) or `key`. The value of an expired entry is
    /// never taken: a large one a lookup kept for it is released here, not held until the
    /// next large lookup.
    pub(super) fn expire_and_release(
        &mut self,
        handle: u32,
        key: Option<&[u8]>,
        now: f64,
    ) -> CacheResult<()> {
        self.large_value = None;
        match key {
            Some(k) => self.expire(handle, k, now),
            None => self.expire(handle, self.scratch_key()?, now),
        }
    }

    /// Queues a lazy delete of `key` if it is still expired at `now` (JS epoch ms).
    fn expire(&self, handle: u32, key: &[u8], now: f64) -> CacheResult<()> {
        let h = self.handle(handle)?;
        let now = expiry_from_js(now).unwrap_or(u64::MAX);
        let ev = &h.shared.store.eviction;
        ev.hits.fetch_sub(1, Ordering::Relaxed);
        ev.misses.fetch_add(1, Ordering::Relaxed);
        if !h.keep_expired {
            h.shared
                .enqueue_lazy_deletes([key.to_vec()], now, h.durability);
        }
        Ok(())
    }
}

/// Runs `f` with this thread's state; `Closed` if `init` never ran or the env is gone.
pub(super) fn with_thread<R>(f: impl FnOnce(&mut ThreadState) -> CacheResult<R>) -> CacheResult<R> {
    THREAD.with(|cell| match cell.borrow_mut().as_mut() {
        Some(state) => f(state),
        None => Err(CacheError::Closed),
    })
}

pub(super) fn remember_error(err: CacheError) {
    THREAD.with(|cell| {
        if let Some(state) = cell.borrow_mut().as_mut() {
            state.last_error = Some(err);
        }
    });
}

/// Env cleanup: the JS thread is going away (worker exit or terminate, process exit).
pub(super) unsafe extern "C" fn tear_down_thread(_arg: *mut c_void) {
    let _ = catch_unwind(|| {
        let Some(mut state) = THREAD.with(|cell| cell.borrow_mut().take()) else {
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
        for handle in state.handles.drain() {
            registry::release(handle.shared);
        }
    });
}

pub(super) fn int32(env: sys::napi_env, value: i32) -> sys::napi_value {
    let mut out = ptr::null_mut();
    // SAFETY: creates a number on the current env; on failure `out` stays null (undefined).
    unsafe { sys::napi_create_int32(env, value, &mut out) };
    out
}

/// `lookup()`: handle and key from the scratch buffer; returns a LOOKUP_* code.
pub(super) unsafe extern "C" fn lookup_raw(
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
pub(super) unsafe extern "C" fn expire_raw(
    env: sys::napi_env,
    _info: sys::napi_callback_info,
) -> sys::napi_value {
    let status = catch_unwind(|| {
        with_thread(|t| {
            let (handle, now) = (t.ctl(CTL_HANDLE) as u32, t.ctl(CTL_NOW));
            t.expire_and_release(handle, None, now)?;
            Ok(0)
        })
    });
    int32(env, settle(status))
}

pub(super) fn settle(status: std::thread::Result<CacheResult<i32>>) -> i32 {
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

/// This thread's scratch buffer, created (with the thread's state and the env cleanup hook)
/// by the first call on a thread.
pub(super) fn scratch_buffer(raw_env: sys::napi_env) -> napi::Result<sys::napi_value> {
    let mut buffer: sys::napi_value = ptr::null_mut();
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
        return Ok(buffer);
    }
    let mut data: *mut c_void = ptr::null_mut();
    let mut scratch_ref: sys::napi_ref = ptr::null_mut();
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
    THREAD.with(|cell| {
        *cell.borrow_mut() = Some(ThreadState {
            handles: HandleTable::default(),
            scratch: data.cast(),
            scratch_ref,
            large_value: None,
            page_out: Vec::new(),
            last_error: None,
            ports: Vec::new(),
            recent_touches: recent_touches(),
        })
    });
    Ok(buffer)
}

/// Adds a completion port to this thread's state (made by `scratch_buffer`); returns its
/// number.
pub(super) fn add_port(port: Arc<CompletionPort>) -> usize {
    THREAD.with(|cell| match cell.borrow_mut().as_mut() {
        Some(state) => {
            state.ports.push(port);
            state.ports.len() - 1
        }
        None => unreachable!("scratch_buffer() set the thread up"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::put_records;
    use crate::store::StoreOptions;

    #[test]
    fn a_large_value_kept_for_an_entry_that_turns_out_expired_is_released_by_expire() {
        let dir = std::env::temp_dir().join(format!("lmdb-cache-large-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let shared = registry::acquire(&dir, &StoreOptions::default()).unwrap();
        let big = format!("\"{}\"", "x".repeat(VALUE_CAPACITY + 10));
        put_records(
            &shared.store,
            &[
                (b"gone", Some(5), Some(big.as_bytes())),
                (b"live", None, Some(big.as_bytes())),
            ],
        );
        let mut scratch = vec![0u8; SCRATCH_LEN];
        let mut t = ThreadState {
            handles: HandleTable::default(),
            scratch: scratch.as_mut_ptr(),
            scratch_ref: ptr::null_mut(),
            large_value: None,
            page_out: Vec::new(),
            last_error: None,
            ports: Vec::new(),
            recent_touches: recent_touches(),
        };
        let id = t
            .handles
            .insert(Handle {
                shared,
                durability: Durability::NoSync,
                keep_expired: true,
            })
            .unwrap_or_else(|_| panic!("a slot is free"));
        for (key, expired) in [(b"gone".as_slice(), true), (b"live", false)] {
            let status = t.lookup_and_keep(id, Some(key), true).unwrap();
            assert_eq!(status, LOOKUP_FOUND_LARGE);
            assert!(t
                .large_value
                .as_ref()
                .is_some_and(|v| v.len() > VALUE_CAPACITY));
            if expired {
                // JS sees the expiry has passed and calls expire instead of takeLargeValue.
                assert_eq!(t.ctl(CTL_EXPIRY), 5.0);
                t.expire_and_release(id, Some(key), 10.0).unwrap();
                assert!(t.large_value.is_none(), "the expired value is not held");
            }
        }
        for handle in t.handles.drain() {
            registry::release(handle.shared);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
