//! The `tej` command-line tool's building blocks, shared with the
//! cross-runtime tests: a blocking facade over every adapter, transport
//! and TLS ([`runtime`], [`tls`]), the subcommands ([`cli`]: `tej serve`,
//! `tej send`, `tej demo`, `tej bench`), the demo ([`demo`]), the bench's
//! workloads and baselines ([`bench`](mod@bench)) and the spool latency measurement
//! ([`spool_latency`]); and the handlers of the per-adapter examples
//! ([`reference`](mod@reference)).

pub mod bench;
pub mod cli;
pub mod demo;
pub mod reference;
pub mod runtime;
pub mod spool_latency;
pub mod tls;
