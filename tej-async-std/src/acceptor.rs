//! The step between accepting a connection and starting its session: the
//! TLS handshake, and later other preambles (a PROXY header).

use std::future::Future;
use std::io::{self, IoSlice, IoSliceMut};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

/// Turns an accepted stream into the stream a session runs over: the
/// identity ([`Plain`]), a TLS handshake (`futures_rustls::TlsAcceptor`,
/// feature `tls`), or a stage of your own.
///
/// A [`Server`](crate::generic::Server) runs its acceptor inside each
/// connection's own task, holding the connection's place under the cap,
/// bounded by [`SessionConfig::handshake_timeout`](tej_core::SessionConfig::handshake_timeout)
/// and cut short by a graceful shutdown. A connection whose acceptor fails
/// or runs out of time is closed, logged at debug level, and never meets a
/// handler: the server makes the connection's handler only afterwards.
///
/// ```
/// use std::io;
/// use futures_io::{AsyncRead, AsyncWrite};
/// use futures_lite::AsyncReadExt;
/// use tej_async_std::Acceptor;
///
/// /// Expects one magic byte before the TEJ stream.
/// struct Magic;
///
/// impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Acceptor<S> for Magic {
///     type Stream = S;
///
///     async fn accept(&self, mut stream: S) -> io::Result<S> {
///         let mut byte = [0u8];
///         stream.read_exact(&mut byte).await?;
///         if byte[0] != 0x42 {
///             return Err(io::Error::new(io::ErrorKind::InvalidData, "bad magic byte"));
///         }
///         Ok(stream)
///     }
/// }
/// ```
pub trait Acceptor<S>: Send + Sync + 'static {
    /// The stream the session runs over.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Performs the step on a connection just accepted.
    fn accept(&self, stream: S) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// The identity: the session runs over the accepted stream as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Acceptor<S> for Plain {
    type Stream = S;

    async fn accept(&self, stream: S) -> io::Result<S> {
        Ok(stream)
    }
}

#[cfg(feature = "tls")]
impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Acceptor<S>
    for futures_rustls::TlsAcceptor
{
    type Stream = futures_rustls::server::TlsStream<S>;

    fn accept(&self, stream: S) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        futures_rustls::TlsAcceptor::accept(self, stream)
    }
}

/// A server's default acceptor: plain, or TLS after
/// `Server::with_tls` (feature `tls`). One type for
/// both, so that a server's type does not depend on whether it runs TLS.
#[derive(Clone, Default)]
pub enum ServerAcceptor {
    /// No handshake: the session runs over the accepted stream.
    #[default]
    Plain,
    /// A TLS handshake with rustls.
    #[cfg(feature = "tls")]
    Tls(futures_rustls::TlsAcceptor),
}

impl std::fmt::Debug for ServerAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerAcceptor::Plain => f.write_str("Plain"),
            #[cfg(feature = "tls")]
            ServerAcceptor::Tls(_) => f.write_str("Tls"),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Acceptor<S> for ServerAcceptor {
    type Stream = MaybeTls<S>;

    async fn accept(&self, stream: S) -> io::Result<MaybeTls<S>> {
        match self {
            ServerAcceptor::Plain => Ok(MaybeTls::Plain(stream)),
            #[cfg(feature = "tls")]
            ServerAcceptor::Tls(acceptor) => {
                let stream = futures_rustls::TlsAcceptor::accept(acceptor, stream).await?;
                Ok(MaybeTls::Tls(Box::new(stream)))
            }
        }
    }
}

/// The stream of [`ServerAcceptor`]: the accepted stream, or a TLS stream
/// over it.
#[derive(Debug)]
pub enum MaybeTls<S> {
    /// The accepted stream as it is.
    Plain(S),
    /// A server-side TLS stream over the accepted stream.
    #[cfg(feature = "tls")]
    Tls(Box<futures_rustls::server::TlsStream<S>>),
}

/// Calls `$method` on whichever stream `$self` holds.
macro_rules! either {
    ($self:ident, $stream:ident => $call:expr) => {
        match $self.get_mut() {
            MaybeTls::Plain($stream) => {
                let $stream = Pin::new($stream);
                $call
            }
            #[cfg(feature = "tls")]
            MaybeTls::Tls($stream) => {
                let $stream = Pin::new(&mut **$stream);
                $call
            }
        }
    };
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        either!(self, stream => stream.poll_read(cx, buf))
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        either!(self, stream => stream.poll_read_vectored(cx, bufs))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        either!(self, stream => stream.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        either!(self, stream => stream.poll_write_vectored(cx, bufs))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self, stream => stream.poll_flush(cx))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self, stream => stream.poll_close(cx))
    }
}
