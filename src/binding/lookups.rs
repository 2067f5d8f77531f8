//! The napi entry points of reads beyond one key: `getMany` (one read transaction for many
//! keys) and the lease lookup getOrSet waits on. The work is the core's (`store/lookups.rs`).

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::{hand_over_page, or_throw, scan_store};
use crate::batch::parse_key_list;
use crate::protocol::*;
use crate::record::expiry_from_js;

/// The values of many full keys (`keys`: the getMany layout of `protocol`) read in one
/// snapshot, as an entries-style page (the protocol's getMany answer): in the scratch
/// buffer's value area (returns null) or as a Buffer when larger. Expired entries met are
/// queued for lazy deletion.
#[napi]
pub fn get_many(env: Env, handle: u32, keys: &[u8], now: f64) -> Option<Buffer> {
    let page = super::with_thread(|t| {
        let keys = parse_key_list(keys)?;
        let mut out = std::mem::take(&mut t.page_out);
        out.clear();
        out.resize(PAGE_HEADER_LEN, 0);
        let (mut json_values, mut found) = (Vec::new(), Vec::with_capacity(keys.len()));
        scan_store(t, handle, now, |store, now_ms, expired| {
            store.get_many(
                &keys,
                now_ms,
                &mut out,
                &mut json_values,
                &mut found,
                expired,
            )
        })?;
        let body_len = out.len() - PAGE_HEADER_LEN;
        out[0] = PAGE_FLAG_DONE;
        let header = [
            (PAGE_COUNT_AT, keys.len()),
            (PAGE_BODY_LEN_AT, body_len),
            (PAGE_JSON_COUNT_AT, json_values.len()),
        ];
        for (at, n) in header {
            out[at..at + 4].copy_from_slice(&(n as u32).to_le_bytes());
        }
        for i in json_values {
            out.extend_from_slice(&i.to_le_bytes());
        }
        out.extend_from_slice(&found);
        Ok(hand_over_page(t, out))
    });
    or_throw(&env, page).flatten().map(Buffer::from)
}

/// The expiry (epoch ms) of the getOrSet lease on the full key `key` if one binds at `now`,
/// else 0.
#[napi]
pub fn lease_expiry(env: Env, handle: u32, key: &[u8], now: f64) -> Option<f64> {
    let expiry = super::with_thread(|t| {
        let lease = t.handle(handle)?.shared.store.lease_of(key)?;
        let now = expiry_from_js(now).unwrap_or(u64::MAX);
        Ok(lease
            .filter(|l| l.is_held(now))
            .map_or(0.0, |l| l.expiry as f64))
    });
    or_throw(&env, expiry)
}
