//! What async-std and smol share as `tej-net` runtimes: `futures-io`
//! streams, `async-io` timers and `futures-rustls`, implemented once for
//! each runtime's marker by one macro.

use std::io;
#[cfg(feature = "tls")]
use std::io::IoSlice;
use std::net::SocketAddr;
#[cfg(feature = "tls")]
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

#[cfg(feature = "tls")]
use tej_net::runtime::PollIo;
use tej_net::runtime::Sleep;

#[cfg(feature = "async-std")]
pub use crate::async_std::AsyncStd;
#[cfg(feature = "smol")]
pub use crate::smol::Smol;

/// `async-io`'s timer, which both async-std and smol drive.
#[derive(Debug)]
pub struct Timer(async_io::Timer);

impl Timer {
    pub(crate) fn never() -> Timer {
        Timer(async_io::Timer::never())
    }
}

impl Sleep for Timer {
    fn reset(&mut self, deadline: Instant) {
        self.0.set_at(deadline);
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        std::future::Future::poll(std::pin::Pin::new(&mut self.0), cx).map(drop)
    }
}

/// Disables Nagle's algorithm (writes are already coalesced), logging a
/// failure; returns the stream's two addresses.
pub(crate) fn prepare(
    no_delay: io::Result<()>,
    peer: io::Result<SocketAddr>,
    local: io::Result<SocketAddr>,
) -> (Option<SocketAddr>, Option<SocketAddr>) {
    if let Err(error) = no_delay {
        tracing::debug!(%error, "could not disable Nagle's algorithm");
    }
    (peer.ok(), local.ok())
}

/// The error of asking a Unix listener for an IP address.
#[cfg(unix)]
pub(crate) fn unix_has_no_ip() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "a Unix socket listener has no IP address",
    )
}

/// A stream runtime `R` polls, as `futures-io`'s traits: what a client's
/// TLS stream runs over.
#[cfg(feature = "tls")]
#[derive(Debug)]
pub struct Polled<R, S> {
    stream: S,
    runtime: std::marker::PhantomData<fn() -> R>,
}

#[cfg(feature = "tls")]
impl<R, S> Polled<R, S> {
    pub(crate) fn new(stream: S) -> Self {
        Polled {
            stream,
            runtime: std::marker::PhantomData,
        }
    }
}

#[cfg(feature = "tls")]
impl<R: PollIo<S>, S: Unpin> futures_io::AsyncRead for Polled<R, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        R::poll_read(&mut self.get_mut().stream, cx, buf)
    }
}

#[cfg(feature = "tls")]
impl<R: PollIo<S>, S: Unpin> futures_io::AsyncWrite for Polled<R, S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        R::poll_write_vectored(&mut self.get_mut().stream, cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        R::poll_write_vectored(&mut self.get_mut().stream, cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        R::poll_flush(&mut self.get_mut().stream, cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        R::poll_close(&mut self.get_mut().stream, cx)
    }
}

/// Implements, for runtime marker `$runtime`, what every `futures-io`
/// runtime shares: the `Runtime` itself (from how it spawns a task and
/// turns std listeners into its own), resolving names, polling any
/// `futures-io` stream, accepting from its TCP and Unix listeners, and with
/// `tls` the `futures-rustls` acceptor and client handshake.
macro_rules! futures_io_runtime {
    (
        runtime: $runtime:ident, $name:literal,
        tcp: $tcp_listener:ty, $tcp_raw:ty => $tcp_stream:ty,
        unix: $unix_listener:ty, $unix_raw:ty => $unix_stream:ty,
        to_socket_addrs: $to_socket_addrs:path,
        spawn($task:ident) $spawn:block
        tcp_listener($tcp:ident) $tcp_from:block
        unix_listener($unix:ident) $unix_from:block
    ) => {
        #[doc = concat!("A TEJ server on ", $name, ": `tej-net`'s [`Server`](tej_net::Server) on")]
        #[doc = concat!("[`", stringify!($runtime), "`], over any [`Listener`](tej_net::Listener) (", $name, "'s")]
        /// `TcpListener` by default) and any [`Acceptor`](tej_net::Acceptor)
        /// ([`Plain`](tej_net::Plain) by default).
        pub type Server<L = $tcp_listener, A = tej_net::Plain> = tej_net::Server<$runtime, L, A>;

        #[doc = concat!("A TEJ connection made by this side on ", $name, ": `tej-net`'s")]
        #[doc = concat!("[`Client`](tej_net::Client) on [`", stringify!($runtime), "`].")]
        pub type Client = tej_net::Client<$runtime>;

        impl tej_net::runtime::Runtime for $runtime {
            type Sleep = $crate::runtime::Timer;
            type TcpListener = $tcp_listener;
            type TcpStream = $tcp_stream;
            #[cfg(unix)]
            type UnixListener = $unix_listener;
            #[cfg(unix)]
            type UnixStream = $unix_stream;

            fn spawn<F: std::future::Future<Output = ()> + Send + 'static>($task: F) $spawn

            fn sleep() -> $crate::runtime::Timer {
                $crate::runtime::Timer::never()
            }

            fn tcp_listener($tcp: std::net::TcpListener) -> std::io::Result<$tcp_listener> $tcp_from

            #[cfg(unix)]
            fn unix_listener(
                $unix: std::os::unix::net::UnixListener,
            ) -> std::io::Result<$unix_listener> $unix_from

            fn connect_tcp(
                addr: std::net::SocketAddr,
            ) -> impl std::future::Future<Output = std::io::Result<$tcp_stream>> + Send {
                async move { <$tcp_raw>::connect(addr).await.map(Into::into) }
            }

            #[cfg(unix)]
            async fn connect_unix(path: std::path::PathBuf) -> std::io::Result<$unix_stream> {
                <$unix_raw>::connect(path).await.map(Into::into)
            }

            fn prepare_tcp(
                stream: &$tcp_stream,
            ) -> (Option<std::net::SocketAddr>, Option<std::net::SocketAddr>) {
                $crate::runtime::prepare(
                    stream.set_nodelay(true),
                    stream.peer_addr(),
                    stream.local_addr(),
                )
            }
        }

        impl<A: $to_socket_addrs + Send> tej_net::runtime::Resolve<A> for $runtime
        where
            A::Iter: Send,
        {
            async fn resolve(addr: A) -> std::io::Result<Vec<std::net::SocketAddr>> {
                Ok(addr.to_socket_addrs().await?.collect())
            }
        }

        impl tej_net::Listener<$runtime> for $tcp_listener {
            type Io = $tcp_stream;
            type Addr = std::net::SocketAddr;

            async fn accept(
                &mut self,
            ) -> std::io::Result<($tcp_stream, Option<std::net::SocketAddr>)> {
                let (stream, peer) = <$tcp_listener>::accept(self).await?;
                $crate::runtime::prepare(stream.set_nodelay(true), Ok(peer), Ok(peer));
                Ok((stream.into(), Some(peer)))
            }

            fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
                <$tcp_listener>::local_addr(self)
            }

            fn describe(&self, io: &$tcp_stream, info: &mut tej_core::ConnectionInfo) {
                info.transport = tej_core::Transport::Tcp;
                info.local = io.local_addr().ok();
            }
        }

        #[cfg(unix)]
        impl tej_net::Listener<$runtime> for $unix_listener {
            type Io = $unix_stream;
            type Addr = std::net::SocketAddr;

            async fn accept(
                &mut self,
            ) -> std::io::Result<($unix_stream, Option<std::net::SocketAddr>)> {
                let (stream, _path) = <$unix_listener>::accept(self).await?;
                Ok((stream.into(), None))
            }

            fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
                Err($crate::runtime::unix_has_no_ip())
            }

            fn describe(&self, _io: &$unix_stream, info: &mut tej_core::ConnectionInfo) {
                info.transport = tej_core::Transport::Unix;
            }
        }

        impl<S> tej_net::runtime::PollIo<S> for $runtime
        where
            S: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin,
        {
            fn poll_read(
                stream: &mut S,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(stream).poll_read(cx, buf)
            }

            fn poll_write_vectored(
                stream: &mut S,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(stream).poll_write_vectored(cx, bufs)
            }

            fn poll_flush(
                stream: &mut S,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(stream).poll_flush(cx)
            }

            fn poll_close(
                stream: &mut S,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(stream).poll_close(cx)
            }
        }

        #[cfg(feature = "tls")]
        impl tej_net::runtime::TlsRuntime for $runtime {
            type TlsAcceptor = futures_rustls::TlsAcceptor;
            type TlsStream<S: Send + Unpin + 'static> =
                futures_rustls::client::TlsStream<$crate::runtime::Polled<$runtime, S>>;

            fn tls_acceptor(
                config: std::sync::Arc<rustls::ServerConfig>,
            ) -> futures_rustls::TlsAcceptor {
                futures_rustls::TlsAcceptor::from(config)
            }

            fn tls_connect<S>(
                stream: S,
                server_name: rustls::pki_types::ServerName<'static>,
                config: std::sync::Arc<rustls::ClientConfig>,
            ) -> impl std::future::Future<Output = std::io::Result<Self::TlsStream<S>>> + Send
            where
                Self: tej_net::runtime::PollIo<S>,
                S: Send + Unpin + 'static,
            {
                futures_rustls::TlsConnector::from(config)
                    .connect(server_name, $crate::runtime::Polled::new(stream))
            }

            fn tls_info<S: Send + Unpin + 'static>(
                stream: &Self::TlsStream<S>,
            ) -> tej_core::TlsInfo {
                tej_net::tls::tls_info(stream.get_ref().1, None)
            }
        }

        #[cfg(feature = "tls")]
        impl<S> tej_net::Acceptor<$runtime, S> for futures_rustls::TlsAcceptor
        where
            S: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin + Send + 'static,
        {
            type Stream = futures_rustls::server::TlsStream<S>;

            fn accept(
                &self,
                stream: S,
            ) -> impl std::future::Future<Output = std::io::Result<Self::Stream>> + Send {
                futures_rustls::TlsAcceptor::accept(self, stream)
            }

            fn describe(&self, stream: &Self::Stream, info: &mut tej_core::ConnectionInfo) {
                let connection = stream.get_ref().1;
                info.tls = Some(Box::new(tej_net::tls::tls_info(
            connection,
            connection.server_name(),
        )));
            }
        }
    };
}

pub(crate) use futures_io_runtime;
