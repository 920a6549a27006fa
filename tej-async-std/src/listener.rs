//! What a [`Server`](crate::generic::Server) accepts connections from.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use futures_io::{AsyncRead, AsyncWrite};

/// A source of connections for a [`Server`](crate::generic::Server): a
/// TCP or Unix listener of async-std or smol, or one of your own.
///
/// Implemented for async-std's `TcpListener` and `UnixListener` (feature
/// `async-std`) and for smol's, that is `async-net`'s, `TcpListener` and
/// `UnixListener` (feature `smol`). The TCP implementations disable Nagle's
/// algorithm on each accepted stream: TEJ already coalesces its writes and
/// small frames must not wait.
///
/// ```
/// use std::io;
/// use std::net::SocketAddr;
/// use tej_async_std::Listener;
///
/// /// Accepts from another listener and logs each peer.
/// struct Logged<L>(L);
///
/// impl<L: Listener> Listener for Logged<L> {
///     type Io = L::Io;
///
///     async fn accept(&self) -> io::Result<(L::Io, Option<SocketAddr>)> {
///         let (io, peer) = self.0.accept().await?;
///         println!("connection from {peer:?}");
///         Ok((io, peer))
///     }
///
///     fn local_addr(&self) -> io::Result<SocketAddr> {
///         self.0.local_addr()
///     }
/// }
/// ```
pub trait Listener: Send + Sync + 'static {
    /// The byte stream of one accepted connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Waits for the next connection: its stream and, when it has one, the
    /// peer's IP address (`None` for a Unix socket).
    ///
    /// An error is handled as [`tej_net::accept::after_accept_error`]
    /// says: the server goes on at once after an error about one
    /// connection, and pauses briefly after any other.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Io, Option<SocketAddr>)>> + Send;

    /// The IP address this listens on.
    ///
    /// # Errors
    ///
    /// The operating system's error, or `Unsupported` for a listener
    /// without an IP address (a Unix socket).
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// Disables Nagle's algorithm on a stream just accepted or connected,
/// logging a failure (the connection works anyway, only slower).
pub(crate) fn no_delay(result: io::Result<()>) {
    if let Err(error) = result {
        tracing::debug!(%error, "could not disable Nagle's algorithm");
    }
}

/// The error of [`Listener::local_addr`] for a Unix socket.
#[cfg(unix)]
pub(crate) fn unix_has_no_ip() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "a Unix socket listener has no IP address",
    )
}
