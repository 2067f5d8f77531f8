//! Native core of `@promethean/lmdb-cache`.
//!
//! The pure-Rust core (`keys`, `record`, `eviction`, `shapes`, `store`, `batch`, `writer`,
//! `flusher`, `flush_state`, `lease`, `disk_reserve`, `registry`, `error`, `meta_check`,
//! `verify`) knows nothing of N-API and is tested with `cargo test`; `binding` is the thin
//! napi layer over it.

#![deny(unsafe_op_in_unsafe_fn)]
// The napi entry points are only referenced by generated registration code, absent from tests.
#![cfg_attr(test, allow(dead_code))]

mod batch;
mod binding;
mod codec;
mod disk_reserve;
mod error;
mod eviction;
mod flush_state;
mod flusher;
mod keys;
mod lease;
mod meta_check;
mod page_walk;
mod protocol;
mod record;
mod registry;
mod shapes;
mod store;
#[cfg(test)]
mod test_strategies;
mod verify;
mod writer;
