//! What the tej-rs test suites share, in one crate (as h2's `h2-support`):
//! the cross-runtime matrix and the hostile suites in `tej-examples/tests`,
//! and the adapter-specific tests of tej-tokio, tej-async-std and tej-mio.
//!
//! - [`recorder`]: a handler that records every callback, and waits on it.
//! - [`firmware`]: the two QEMU firmwares, built at once for the tests that boot them.
//! - [`rng`]: the seeded PRNG of split points, faults and random frames.
//! - [`serve`]: a `tej serve --json` process, read line by line.
//! - [`golden`]: tej-core's golden frames, for the suites that send them.
//! - [`fault_proxy`]: a proxy that slices, stalls, resets, truncates, flips bits, blackholes.
//! - [`handlers`]: small handlers logging to [`handlers::Events`] (echo,
//!   collect, mirror).
//! - [`peer`]: a plain blocking TEJ peer, deterministic payloads, bounded waits.
//! - [`tls`]: the test certificates of `testdata/tls` as rustls configurations.
//! - [`proxy`]: PROXY protocol v1/v2 headers, as a load balancer writes them.
//! - [`python`]: the Python reference peer (`tej-protoc`), provisioned on demand.
//! - `hostile` (feature `facade`): attacks over the blocking runtime facade.
//! - `matrix` (feature `facade`): the cross-runtime matrix (setups, servers, clients, `matrix!`).
//! - `harness` (feature `facade`): runs a matrix's cases as libtest does,
//!   with more threads than cores (they mostly wait).
//! - `mio` (feature `mio`): a tej-mio server on a thread of its own.
// Test helpers: their names say what they are.
#![allow(missing_docs)]

use std::path::PathBuf;

pub mod fault_proxy;
pub mod firmware;
pub mod golden;
pub mod handlers;
#[cfg(feature = "facade")]
pub mod harness;
#[cfg(feature = "facade")]
pub mod hostile;
#[cfg(feature = "facade")]
pub mod matrix;
#[cfg(feature = "mio")]
pub mod mio;
pub mod peer;
pub mod proxy;
pub mod python;
pub mod recorder;
pub mod rng;
pub mod serve;
pub mod tls;

/// Panics with `message` without the panic hook's report: a handler's
/// deliberate panic prints nothing in a passing run, captured or not.
pub fn quiet_panic(message: &'static str) -> ! {
    std::panic::resume_unwind(Box::new(message))
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// A file of the workspace's `testdata` directory.
pub fn testdata(path: &str) -> PathBuf {
    workspace_root().join("testdata").join(path)
}
