//! The `tej` command-line tool's building blocks, shared with the
//! cross-runtime tests: a blocking facade over every adapter
//! ([`runtime`]) and the demo ([`demo`]).

pub mod demo;
pub mod runtime;
