//! The runtimes [`Server`](crate::generic::Server) and
//! [`Client`](crate::generic::Client) run on: what differs between
//! async-std and smol (spawning a task, the socket types), behind one
//! trait. Everything else is written once.

use std::future::Future;
use std::io;
#[cfg(unix)]
use std::path::PathBuf;

use futures_io::{AsyncRead, AsyncWrite};

use crate::Listener;

#[cfg(feature = "async-std")]
pub use crate::async_std_rt::AsyncStd;
#[cfg(feature = "smol")]
pub use crate::smol::Smol;

/// A runtime a [`Server`](crate::generic::Server) and a
/// [`Client`](crate::generic::Client) can run on: `AsyncStd` (feature
/// `async-std`) or `Smol` (feature `smol`).
///
/// Sealed: the crate implements it for those two only. To run on another
/// executor, drive connections with [`run_session`](crate::run_session).
pub trait Runtime: sealed::Sealed + Send + Sync + Sized + 'static {
    /// The runtime's TCP listener.
    type TcpListener: Listener;
    /// The runtime's TCP stream.
    type TcpStream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The runtime's Unix-socket listener.
    #[cfg(unix)]
    type UnixListener: Listener;
    /// The runtime's Unix-socket stream.
    #[cfg(unix)]
    type UnixStream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Runs `task` to completion on the runtime's executor, detached.
    fn spawn<F: Future<Output = ()> + Send + 'static>(task: F);

    /// The runtime's listener on a bound, listening, non-blocking socket.
    ///
    /// # Errors
    ///
    /// The error of registering the socket with the reactor.
    fn tcp_listener(listener: std::net::TcpListener) -> io::Result<Self::TcpListener>;

    /// A Unix-socket listener bound at `path`.
    ///
    /// # Errors
    ///
    /// The error of binding.
    #[cfg(unix)]
    fn bind_unix(path: PathBuf) -> io::Result<Self::UnixListener>;

    /// Connects to the Unix socket at `path`.
    #[cfg(unix)]
    fn connect_unix(path: PathBuf) -> impl Future<Output = io::Result<Self::UnixStream>> + Send;

    /// Readies a connected TCP stream (Nagle's algorithm off) and tells its
    /// peer and local addresses.
    fn prepare_tcp(
        stream: &Self::TcpStream,
    ) -> (Option<std::net::SocketAddr>, Option<std::net::SocketAddr>);
}

pub(crate) mod sealed {
    /// Keeps [`Runtime`](super::Runtime) to this crate's runtimes.
    pub trait Sealed {}
}

/// Binds a Unix listener with the standard library, ready for a reactor.
#[cfg(unix)]
pub(crate) fn std_unix_listener(
    path: &std::path::Path,
) -> io::Result<std::os::unix::net::UnixListener> {
    tej_net::accept::listen_unix(path)
}
