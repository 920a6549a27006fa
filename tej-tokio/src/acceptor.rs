//! What a [`Server`](crate::Server) does with a connection before its
//! session starts: nothing ([`Plain`]), a TLS handshake, or a handshake
//! of your own: any [`Acceptor`].

use std::future::{ready, Future};
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

/// Turns an accepted stream into the stream the session runs over: a TLS
/// handshake, a PROXY header, a greeting of your own.
///
/// The server runs it in the connection's own task, under the connection
/// cap, bounded by the session's
/// [`handshake_timeout`](tej_core::SessionConfig::handshake_timeout)
/// measured from accept, and abandons it when the server shuts down. The
/// connection's [`Handler`](tej_core::Handler) is made only once it has
/// succeeded: a stream it fails (or that times out) is closed, logged at
/// debug, and no handler ever hears of it.
///
/// With feature `tls`, `tokio_rustls::TlsAcceptor` is an `Acceptor`
/// (see `Server::with_tls`).
///
/// ```
/// use std::io;
/// use tej_tokio::Acceptor;
/// use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
///
/// /// Admits a peer only if it first says the password.
/// struct Password(&'static [u8]);
///
/// impl<S> Acceptor<S> for Password
/// where
///     S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
/// {
///     type Stream = S;
///
///     async fn accept(&self, mut stream: S) -> io::Result<S> {
///         let mut said = vec![0; self.0.len()];
///         stream.read_exact(&mut said).await?;
///         if said == self.0 {
///             Ok(stream)
///         } else {
///             Err(io::Error::new(io::ErrorKind::PermissionDenied, "wrong password"))
///         }
///     }
/// }
///
/// # async fn run() -> io::Result<()> {
/// let server = tej_tokio::Server::bind("127.0.0.1:0")
///     .await?
///     .with_acceptor(Password(b"open sesame\n"));
/// # Ok(())
/// # }
/// ```
pub trait Acceptor<S>: Send + Sync + 'static {
    /// The stream the session runs over.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Runs the handshake on a stream just accepted.
    fn accept(&self, stream: S) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// The peer of a stream this acceptor made, when it knows better than
    /// the listener (a PROXY header names the real client). The default,
    /// `None`, keeps the listener's.
    fn peer_addr(&self, stream: &Self::Stream) -> Option<SocketAddr> {
        let _ = stream;
        None
    }
}

/// No handshake: the session runs over the accepted stream as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plain;

impl<S> Acceptor<S> for Plain
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = S;

    fn accept(&self, stream: S) -> impl Future<Output = io::Result<S>> + Send {
        ready(Ok(stream))
    }
}

#[cfg(feature = "tls")]
impl<S> Acceptor<S> for tokio_rustls::TlsAcceptor
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = tokio_rustls::server::TlsStream<S>;

    fn accept(&self, stream: S) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        tokio_rustls::TlsAcceptor::accept(self, stream)
    }
}
