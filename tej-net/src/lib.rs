//! `tej-net`: the I/O every TEJ adapter shares, written once beside the
//! sans-IO [`tej_core`].
//!
//! `tej-core` decides everything the protocol means; this crate moves the
//! bytes for it on any runtime, as `rustls-util` does for rustls and `quinn`
//! for `quinn-proto`:
//!
//! - [`drive`]: the loop that maps a non-blocking stream's reads, writes and
//!   timers onto a [`Session`](tej_core::Session), over the [`ReadBuffer`];
//! - [`accept`]: the listening socket every server binds, the connection
//!   cap, and what a server does with a panicking handler;
//! - [`shutdown`]: the [`ShutdownHandle`] every adapter shares;
//! - [`proxy`]: the PROXY protocol admission as an `io::Result`, for an
//!   adapter's handshake step;
//! - [`file`](mod@file) and [`spool`]: files on disk to send, and received files
//!   spooled to a directory, through the core's file traits;
//! - `tls` (feature `rustls`): what every adapter's TLS shares: a failed
//!   handshake said in one line, the SNI name, the [`TlsInfo`](tej_core::TlsInfo)
//!   a handshake agreed on;
//! - [`observe`]: the [`Observer`] hook a server tells of its connections,
//!   for metrics;
//! - [`AsyncConnection`] and [`incoming`]: a connection you await, its
//!   frames a `Stream` and its files `AsyncRead`s, the consumer's pace
//!   pushed back to the socket;
//! - the async [`Server`] and [`Client`], written once over a small
//!   [`runtime::Runtime`] trait that `tej-tokio` and `tej-async-std`
//!   implement, with [`run_session`] for a connection of one's own.
//!
//! - [`common`]: the names every adapter re-exports at its root.
//!
//! Adapters (`tej-tokio`, `tej-async-std`, `tej-mio`) map a runtime onto
//! these; nothing here knows which runtime runs it.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod accept;
mod client;
mod client_handle;
pub mod common;
mod connection;
pub mod drive;
pub mod file;
pub mod incoming;
mod listener;
mod new_handler;
pub mod observe;
pub mod proxy;
mod read_buffer;
pub mod run;
pub mod runtime;
mod server;
pub mod shutdown;
pub mod spool;
#[cfg(feature = "rustls")]
pub mod tls;

pub use client::Client;
pub use client_handle::ClientHandle;
pub use connection::AsyncConnection;
pub use incoming::{Incoming, IncomingFile, IncomingFrame};
pub use listener::{Acceptor, Listener, Plain};
pub use new_handler::NewHandler;
pub use observe::Observer;
pub use read_buffer::ReadBuffer;
pub use run::run_session;
pub use server::{Server, DEFAULT_DRAIN_TIMEOUT};
pub use shutdown::ShutdownHandle;
