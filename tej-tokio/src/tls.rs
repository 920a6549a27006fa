//! TLS with [rustls](https://docs.rs/rustls) and `tokio-rustls` (feature
//! `tls`), both re-exported here so that your configuration is built with
//! the very versions this crate uses.
//!
//! Only rustls's `ring` provider is compiled in: build configurations with
//! `builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))`
//! (no process-wide default provider is needed). A server takes its
//! configuration in [`Server::with_tls`](crate::Server::with_tls), a client
//! in [`Client::connect_tls`](crate::Client::connect_tls); a stream from a
//! [`TlsConnector`] or [`TlsAcceptor`] of your own can also be given to
//! [`Client::from_stream`](crate::Client::from_stream) or
//! [`run_session`](crate::run_session). When a session ends its stream is
//! shut down, which sends TLS's close_notify.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tej_net::runtime::{PollIo, TlsRuntime};
use tej_net::Acceptor;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::Tokio;

pub use rustls;
pub use tokio_rustls;
pub use tokio_rustls::client::TlsStream as ClientTlsStream;
pub use tokio_rustls::server::TlsStream as ServerTlsStream;
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

impl TlsRuntime for Tokio {
    type TlsAcceptor = TlsAcceptor;
    type TlsStream<S: Send + Unpin + 'static> = ClientTlsStream<Polled<S>>;

    fn tls_acceptor(config: Arc<rustls::ServerConfig>) -> TlsAcceptor {
        TlsAcceptor::from(config)
    }

    fn tls_connect<S>(
        stream: S,
        server_name: rustls::pki_types::ServerName<'static>,
        config: Arc<rustls::ClientConfig>,
    ) -> impl Future<Output = io::Result<ClientTlsStream<Polled<S>>>> + Send
    where
        Self: PollIo<S>,
        S: Send + Unpin + 'static,
    {
        TlsConnector::from(config).connect(server_name, Polled(stream))
    }

    fn tls_info<S: Send + Unpin + 'static>(
        stream: &ClientTlsStream<Polled<S>>,
    ) -> tej_core::TlsInfo {
        tej_net::tls::tls_info(stream.get_ref().1, None)
    }
}

/// A stream Tokio polls, as Tokio's I/O traits: what a client's TLS
/// stream runs over.
#[derive(Debug)]
pub struct Polled<S>(S);

impl<S: Unpin> AsyncRead for Polled<S>
where
    Tokio: PollIo<S>,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = ready!(Tokio::poll_read(
            &mut self.get_mut().0,
            cx,
            buf.initialize_unfilled()
        ))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: Unpin> AsyncWrite for Polled<S>
where
    Tokio: PollIo<S>,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Tokio::poll_write_vectored(&mut self.get_mut().0, cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Tokio::poll_write_vectored(&mut self.get_mut().0, cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Tokio::poll_flush(&mut self.get_mut().0, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Tokio::poll_close(&mut self.get_mut().0, cx)
    }
}

impl<S> Acceptor<Tokio, S> for TlsAcceptor
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = ServerTlsStream<S>;

    fn accept(&self, stream: S) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        TlsAcceptor::accept(self, stream)
    }

    fn describe(&self, stream: &Self::Stream, info: &mut tej_core::ConnectionInfo) {
        let connection = stream.get_ref().1;
        info.tls = Some(Box::new(tej_net::tls::tls_info(
            connection,
            connection.server_name(),
        )));
    }
}
