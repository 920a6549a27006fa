//! The `tej` command-line tool's building blocks, shared with the
//! cross-runtime tests: a blocking facade over every adapter, transport
//! and TLS ([`runtime`], [`tls`]), the demo ([`demo`]), and `tej serve` /
//! `tej send` ([`cli`]).

pub mod bench;
pub mod cli;
pub mod demo;
pub mod runtime;
pub mod spool_latency;
pub mod tls;
