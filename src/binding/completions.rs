//! Completions of writes: the writer thread hands them to a [`CompletionPort`], which passes
//! them to the JS thread through a threadsafe function, calling `onWritesDone(tickets,
//! values, failures)` there. JS holds the event loop open only while writes are pending.
//!
//! A port holds its JS callback by a weak reference, and its threadsafe function exists only
//! while the copy of `index.cjs` that owns the port has a cache open (`attachPort()` at the
//! first open, `detachPort()` once the last one closed and every write settled): a module
//! copy a test runner discards (jest loads the package afresh per test file) is then kept
//! alive by nothing native, and leaves no handle open.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::sys;
use parking_lot::Mutex;

use super::thread::with_thread;
use super::{check, to_js_error};
use crate::writer::{Completion, CompletionSink};

/// Delivers writer-thread completions to this JS thread through a threadsafe function.
pub(super) struct CompletionPort {
    /// The threadsafe function while attached; `None` when detached, and once the JS
    /// environment is being torn down: no call may reach it after that.
    pub(super) tsfn: Mutex<Option<TsfnPtr>>,
    /// A weak reference to `onWritesDone`: the module copy holds it strongly for as long as it
    /// lives.
    callback: CallbackRef,
    /// Whether JS asked to keep the event loop alive (holdLoop), applied to the function when
    /// it is attached.
    held: Mutex<bool>,
}

struct CallbackRef(sys::napi_ref);
// SAFETY: the reference is only used on the JS thread that created it (attach, and the
// threadsafe function's call_js, which N-API runs on that thread); other threads only move
// the pointer along with the port.
unsafe impl Send for CallbackRef {}
// SAFETY: as above: shared references never use it off the JS thread.
unsafe impl Sync for CallbackRef {}

impl CompletionPort {
    /// A detached port delivering to `on_writes_done` on the current JS thread.
    pub(super) fn new(env: &Env, on_writes_done: sys::napi_value) -> Result<Arc<CompletionPort>> {
        let mut callback: sys::napi_ref = ptr::null_mut();
        // SAFETY: a plain N-API call on the current env; a count of 0 makes the reference
        // weak. It is freed with the env.
        unsafe {
            check(sys::napi_create_reference(
                env.raw(),
                on_writes_done,
                0,
                &mut callback,
            ))?
        };
        Ok(Arc::new(CompletionPort {
            tsfn: Mutex::new(None),
            callback: CallbackRef(callback),
            held: Mutex::new(false),
        }))
    }

    /// Creates the threadsafe function if there is none (on the port's JS thread).
    fn attach(&self, raw_env: sys::napi_env) -> Result<()> {
        let mut tsfn_slot = self.tsfn.lock();
        if tsfn_slot.is_some() {
            return Ok(());
        }
        // SAFETY: plain N-API calls on the current env with out-pointers to locals.
        unsafe {
            let mut name = ptr::null_mut();
            let text = "lmdb-cache completions";
            check(sys::napi_create_string_utf8(
                raw_env,
                text.as_ptr().cast(),
                text.len() as isize,
                &mut name,
            ))?;
            let mut tsfn: sys::napi_threadsafe_function = ptr::null_mut();
            // No function: call_js looks the callback up through the weak reference (the
            // context), so the threadsafe function keeps no JS object alive.
            check(sys::napi_create_threadsafe_function(
                raw_env,
                ptr::null_mut(),
                ptr::null_mut(),
                name,
                0,
                1,
                ptr::null_mut(),
                None,
                self.callback.0.cast(),
                Some(deliver_to_js),
                &mut tsfn,
            ))?;
            // Pending writes keep the loop alive only while JS holds it (holdLoop/releaseLoop).
            if !*self.held.lock() {
                check(sys::napi_unref_threadsafe_function(raw_env, tsfn))?;
            }
            *tsfn_slot = Some(TsfnPtr(tsfn));
        }
        Ok(())
    }

    /// Releases the threadsafe function (on the port's JS thread); nothing is pending.
    fn detach(&self) {
        if let Some(tsfn) = self.tsfn.lock().take() {
            // SAFETY: the function was alive while stored; removed under the lock, no thread
            // calls it any more (`complete` only calls what is stored).
            unsafe {
                sys::napi_release_threadsafe_function(
                    tsfn.0,
                    sys::ThreadsafeFunctionReleaseMode::release,
                )
            };
        }
    }
}

pub(super) struct TsfnPtr(pub(super) sys::napi_threadsafe_function);
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
    _js_callback: sys::napi_value,
    ctx: *mut c_void,
    data: *mut c_void,
) {
    // SAFETY: `data` is the Box<Vec<Completion>> leaked by `CompletionPort::complete`.
    let done = unsafe { Box::from_raw(data.cast::<Vec<Completion>>()) };
    if env.is_null() {
        return; // the environment is shutting down; nobody is waiting any more
    }
    let mut js_callback: sys::napi_value = ptr::null_mut();
    // SAFETY: `ctx` is the port's weak reference to the callback, alive as long as the env.
    unsafe { sys::napi_get_reference_value(env, ctx.cast(), &mut js_callback) };
    if js_callback.is_null() {
        return; // the module copy that owned the port is gone; nobody is waiting any more
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

fn set_loop_hold(env: sys::napi_env, info: sys::napi_callback_info, hold: bool) {
    let port_number = port_of(env, info);
    let _ = catch_unwind(|| {
        let _ = with_thread(|t| {
            let port = t.port(port_number)?;
            *port.held.lock() = hold;
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
pub(super) unsafe extern "C" fn hold_loop_raw(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    set_loop_hold(env, info, true);
    ptr::null_mut()
}

/// `releaseLoop()`: no pending writes any more.
pub(super) unsafe extern "C" fn release_loop_raw(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    set_loop_hold(env, info, false);
    ptr::null_mut()
}

/// The port number a raw hot function was made for (its callback data).
fn port_of(env: sys::napi_env, info: sys::napi_callback_info) -> usize {
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
    data as usize
}

/// `attachPort()`: a cache is being opened; completions must reach this module copy. Returns
/// 1, or 0 if the threadsafe function could not be made.
pub(super) unsafe extern "C" fn attach_port_raw(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let port_number = port_of(env, info);
    let attached = catch_unwind(|| {
        with_thread(|t| {
            let port = Arc::clone(t.port(port_number)?);
            port.attach(env)
                .map_err(|e| crate::error::CacheError::Internal {
                    detail: format!("cannot create the completion function: {e}"),
                })
        })
        .is_ok()
    });
    super::thread::int32(env, i32::from(attached.unwrap_or(false)))
}

/// `detachPort()`: no cache of this module copy is open and no write is pending.
pub(super) unsafe extern "C" fn detach_port_raw(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let port_number = port_of(env, info);
    let _ = catch_unwind(|| {
        let _ = with_thread(|t| {
            t.port(port_number)?.detach();
            Ok(())
        });
    });
    ptr::null_mut()
}
