//! What an async runtime lends the [`Server`](crate::Server) and
//! [`Client`](crate::Client) written once in this crate: a spawner, a
//! timer, its sockets, and the polling of its byte streams.
//!
//! `tej-tokio` implements these for Tokio, `tej-async-std` for async-std
//! and smol, the way quinn's `runtime` module does for its sockets. The
//! stream traits differ between runtimes (Tokio's `AsyncRead` against
//! `futures-io`'s), so a runtime says how to poll each stream it supports
//! through [`PollIo`], implemented on the runtime's marker type.

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
#[cfg(unix)]
use std::path::PathBuf;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::listener::Listener;

/// An async runtime: `tej_tokio::Tokio`, `tej_async_std::AsyncStd`,
/// `tej_async_std::Smol`.
pub trait Runtime: Send + Sync + Sized + 'static {
    /// The runtime's timer.
    type Sleep: Sleep;
    /// The runtime's TCP listener.
    type TcpListener: Listener<Self, Addr = SocketAddr>;
    /// The runtime's TCP stream.
    type TcpStream: Send + Unpin + 'static;
    /// The runtime's Unix-socket listener.
    #[cfg(unix)]
    type UnixListener: Listener<Self>;
    /// The runtime's Unix-socket stream.
    #[cfg(unix)]
    type UnixStream: Send + Unpin + 'static;

    /// Runs `task` to completion on the runtime's executor, detached.
    fn spawn<F: Future<Output = ()> + Send + 'static>(task: F);

    /// A timer that never fires until [`reset`](Sleep::reset).
    fn sleep() -> Self::Sleep;

    /// The runtime's listener on a bound, listening socket.
    ///
    /// # Errors
    ///
    /// The error of registering the socket with the runtime.
    fn tcp_listener(listener: std::net::TcpListener) -> io::Result<Self::TcpListener>;

    /// The runtime's listener on a bound, listening Unix socket.
    ///
    /// # Errors
    ///
    /// The error of registering the socket with the runtime.
    #[cfg(unix)]
    fn unix_listener(listener: std::os::unix::net::UnixListener) -> io::Result<Self::UnixListener>;

    /// Connects over TCP to `addr`.
    fn connect_tcp(addr: SocketAddr) -> impl Future<Output = io::Result<Self::TcpStream>> + Send;

    /// Connects to the Unix socket at `path`.
    #[cfg(unix)]
    fn connect_unix(path: PathBuf) -> impl Future<Output = io::Result<Self::UnixStream>> + Send;

    /// Readies a connected TCP stream (Nagle's algorithm off: writes are
    /// already coalesced) and tells its peer and local addresses.
    fn prepare_tcp(stream: &Self::TcpStream) -> (Option<SocketAddr>, Option<SocketAddr>);

    /// Runs a drive step that may block on file I/O
    /// ([`Session::does_file_io`](tej_core::Session::does_file_io)). The
    /// default runs it in place; Tokio's multi-thread runtime moves its
    /// other tasks away first (`block_in_place`).
    fn run_blocking<T>(step: impl FnOnce() -> T) -> T {
        step()
    }
}

/// A runtime's resettable timer.
pub trait Sleep: Send + Unpin + 'static {
    /// Fires at `deadline`, replacing any earlier one.
    fn reset(&mut self, deadline: Instant);

    /// Ready once the deadline has passed; registers `cx`'s waker until then.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// How runtime `Self` polls a byte stream `S` of its kind, implemented on
/// the runtime's marker (`impl<S: tokio::io::AsyncRead + …> PollIo<S> for
/// Tokio`).
pub trait PollIo<S> {
    /// Reads into `buf`; `Ok(0)` at the end of the stream.
    fn poll_read(stream: &mut S, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;

    /// Writes from `bufs`, in order.
    fn poll_write_vectored(
        stream: &mut S,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>>;

    /// Flushes what the stream buffers.
    fn poll_flush(stream: &mut S, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Shuts the writing half down (TLS: sends close_notify).
    fn poll_close(stream: &mut S, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// How runtime `Self` resolves an address argument `A` (its own
/// `ToSocketAddrs` types) into addresses to bind or connect to.
pub trait Resolve<A> {
    /// The addresses `addr` names, in order.
    fn resolve(addr: A) -> impl Future<Output = io::Result<Vec<SocketAddr>>> + Send;
}

/// A runtime with rustls support: its TLS acceptor and client handshake.
#[cfg(feature = "rustls")]
pub trait TlsRuntime: Runtime {
    /// The server's TLS step, an [`Acceptor`](crate::Acceptor) over the
    /// runtime's streams.
    type TlsAcceptor: Send + Sync + 'static;
    /// A client's TLS stream over `S`.
    type TlsStream<S: Send + Unpin + 'static>: Send + Unpin + 'static;

    /// The acceptor for `config`.
    fn tls_acceptor(config: std::sync::Arc<rustls::ServerConfig>) -> Self::TlsAcceptor;

    /// The client's side of a handshake with `server_name` over `stream`.
    fn tls_connect<S>(
        stream: S,
        server_name: rustls::pki_types::ServerName<'static>,
        config: std::sync::Arc<rustls::ClientConfig>,
    ) -> impl Future<Output = io::Result<Self::TlsStream<S>>> + Send
    where
        Self: PollIo<S>,
        S: Send + Unpin + 'static;

    /// What a client's handshake agreed on
    /// ([`tls::tls_info`](crate::tls::tls_info) of its connection).
    fn tls_info<S: Send + Unpin + 'static>(stream: &Self::TlsStream<S>) -> tej_core::TlsInfo;
}

/// Runtime `R`'s name for logs: `tokio`, `async-std`, `smol`, or its
/// marker type's name.
pub(crate) fn name<R>() -> &'static str {
    let name = std::any::type_name::<R>();
    match name.rsplit("::").next().unwrap_or(name) {
        "Tokio" => "tokio",
        "AsyncStd" => "async-std",
        "Smol" => "smol",
        other => other,
    }
}

/// Waits `duration` on runtime `R`'s timer.
pub(crate) async fn sleep<R: Runtime>(duration: Duration) {
    let mut timer = R::sleep();
    if let Some(deadline) = Instant::now().checked_add(duration) {
        timer.reset(deadline);
    }
    std::future::poll_fn(|cx| timer.poll_expired(cx)).await;
}

/// One read from `stream` into `buf`.
pub(crate) async fn read<R: PollIo<S>, S>(stream: &mut S, buf: &mut [u8]) -> io::Result<usize> {
    std::future::poll_fn(|cx| R::poll_read(stream, cx, buf)).await
}
