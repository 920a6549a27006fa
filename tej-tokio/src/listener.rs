//! Where a [`Server`](crate::Server) gets its connections: any [`Listener`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// A source of incoming byte streams for a [`Server`](crate::Server):
/// implemented for Tokio's [`TcpListener`] and (on Unix)
/// [`UnixListener`](tokio::net::UnixListener); implement it for anything
/// else that hands out connections (a vsock, an in-memory pipe, a socket
/// passed in by a service manager).
///
/// ```
/// use std::io;
/// use std::net::SocketAddr;
/// use tej_tokio::Listener;
/// use tokio::io::DuplexStream;
/// use tokio::sync::mpsc;
///
/// /// Serves the in-memory streams sent down a channel.
/// struct Channel(mpsc::Receiver<DuplexStream>);
///
/// impl Listener for Channel {
///     type Io = DuplexStream;
///     type Addr = &'static str;
///
///     async fn accept(&mut self) -> io::Result<(DuplexStream, Option<SocketAddr>)> {
///         match self.0.recv().await {
///             Some(stream) => Ok((stream, None)),
///             // Every sender is gone: nothing more will come.
///             None => std::future::pending().await,
///         }
///     }
///
///     fn local_addr(&self) -> io::Result<&'static str> {
///         Ok("in memory")
///     }
/// }
/// ```
pub trait Listener: Send + 'static {
    /// A connection's byte stream.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// What [`local_addr`](Self::local_addr) reports: a [`SocketAddr`] for
    /// TCP, the socket's path for a Unix listener.
    type Addr;

    /// The next connection and its peer's IP address, if it has one.
    ///
    /// The server polls this against its shutdown signal and drops it when
    /// shutdown wins, so it must be cancel-safe: no connection may be lost
    /// when the future is dropped before it completes. An error that
    /// [`tej_net::accept::is_per_connection_error`] calls per-connection
    /// is skipped at once; after any other the server pauses briefly.
    fn accept(&mut self)
        -> impl Future<Output = io::Result<(Self::Io, Option<SocketAddr>)>> + Send;

    /// The address this listener listens on.
    ///
    /// # Errors
    ///
    /// The operating system's error, if it cannot tell.
    fn local_addr(&self) -> io::Result<Self::Addr>;
}

impl Listener for TcpListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> io::Result<(TcpStream, Option<SocketAddr>)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        // Small frames must not wait for Nagle's algorithm; writes are already coalesced.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not disable Nagle's algorithm");
        }
        Ok((stream, Some(peer)))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }
}

#[cfg(unix)]
impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    /// The socket's address: its path, from
    /// [`as_pathname`](tokio::net::unix::SocketAddr::as_pathname).
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> io::Result<(tokio::net::UnixStream, Option<SocketAddr>)> {
        let (stream, _peer) = tokio::net::UnixListener::accept(self).await?;
        Ok((stream, None))
    }

    fn local_addr(&self) -> io::Result<tokio::net::unix::SocketAddr> {
        tokio::net::UnixListener::local_addr(self)
    }
}
