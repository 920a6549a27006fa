//! Where a [`Server`](crate::Server) gets its connections ([`Listener`])
//! and what it does with each before its session starts ([`Acceptor`]).

use std::future::{ready, Future};
use std::io;
use std::net::SocketAddr;

use tej_core::ConnectionInfo;

/// A source of incoming byte streams for a [`Server`](crate::Server) on
/// runtime `R`: implemented for each runtime's TCP and Unix listeners;
/// implement it for anything else that hands out connections (a vsock, an
/// in-memory pipe, a socket passed in by a service manager).
pub trait Listener<R>: Send + 'static {
    /// A connection's byte stream.
    type Io: Send + Unpin + 'static;

    /// What [`local_addr`](Self::local_addr) reports: a [`SocketAddr`] for
    /// TCP, the socket's address for a Unix listener.
    type Addr;

    /// The next connection and its peer's IP address, if it has one.
    ///
    /// The server polls this against its shutdown signal and drops it when
    /// shutdown wins, so it must be cancel-safe: no connection may be lost
    /// when the future is dropped before it completes. An error that
    /// [`is_per_connection_error`](crate::accept::is_per_connection_error)
    /// calls per-connection is skipped at once; after any other the server
    /// pauses briefly.
    fn accept(&mut self)
        -> impl Future<Output = io::Result<(Self::Io, Option<SocketAddr>)>> + Send;

    /// The address this listener listens on.
    ///
    /// # Errors
    ///
    /// The operating system's error, if it cannot tell.
    fn local_addr(&self) -> io::Result<Self::Addr>;

    /// Fills in what this listener knows of a connection it accepted: its
    /// [`Transport`](tej_core::Transport) and local address. `info.peer`
    /// is already the address [`accept`](Self::accept) returned. The
    /// default leaves `info` as it is.
    fn describe(&self, io: &Self::Io, info: &mut ConnectionInfo) {
        let _ = (io, info);
    }
}

/// Turns an accepted stream `S` into the stream the session runs over, on
/// runtime `R`: a TLS handshake, a greeting of your own.
///
/// The server runs it in the connection's own task, after the PROXY
/// header if one is expected, under the connection cap, bounded by the
/// session's
/// [`handshake_timeout`](tej_core::SessionConfig::handshake_timeout)
/// measured from accept, and abandons it when the server shuts down. The
/// connection's [`Handler`](tej_core::Handler) is made only once it has
/// succeeded: a stream it fails (or that times out) is closed, logged at
/// debug, and no handler ever hears of it.
pub trait Acceptor<R, S>: Send + Sync + 'static {
    /// The stream the session runs over.
    type Stream: Send + Unpin + 'static;

    /// Runs the handshake on a stream just accepted.
    fn accept(&self, stream: S) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// The peer of a stream this acceptor made, when it knows better than
    /// the listener. The default, `None`, keeps the listener's.
    fn peer_addr(&self, stream: &Self::Stream) -> Option<SocketAddr> {
        let _ = stream;
        None
    }

    /// Fills in what the handshake agreed on (a TLS acceptor sets
    /// `info.tls`). The default leaves `info` as it is.
    fn describe(&self, stream: &Self::Stream, info: &mut ConnectionInfo) {
        let _ = (stream, info);
    }
}

/// No handshake: the session runs over the accepted stream as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plain;

impl<R, S: Send + Unpin + 'static> Acceptor<R, S> for Plain {
    type Stream = S;

    fn accept(&self, stream: S) -> impl Future<Output = io::Result<S>> + Send {
        ready(Ok(stream))
    }
}
