//! Completions of writes: the writer thread hands them to a [`CompletionPort`], which passes
//! them to the JS thread through a threadsafe function, calling `onWritesDone(tickets,
//! values, failures)` there. JS holds the event loop open only while writes are pending.

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
    /// `None` once the JS environment is being torn down: no call may reach it after that.
    pub(super) tsfn: Mutex<Option<TsfnPtr>>,
}

impl CompletionPort {
    /// A port delivering to `on_writes_done` on the current JS thread; it does not keep the
    /// event loop alive until `holdLoop()`.
    pub(super) fn new(env: &Env, on_writes_done: sys::napi_value) -> Result<Arc<CompletionPort>> {
        let raw_env = env.raw();
        let name = env.create_string("lmdb-cache completions")?;
        let mut tsfn: sys::napi_threadsafe_function = ptr::null_mut();
        // SAFETY: plain N-API calls on the current env with out-pointers to locals.
        unsafe {
            check(sys::napi_create_threadsafe_function(
                raw_env,
                on_writes_done,
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
        Ok(Arc::new(CompletionPort {
            tsfn: Mutex::new(Some(TsfnPtr(tsfn))),
        }))
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
