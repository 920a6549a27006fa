//! TEJ on smol: [`Server`] and [`Client`] whose sockets are smol's
//! (`async-net`'s) and whose connection tasks go to `smol::spawn`.
//!
//! Pick them with `default-features = false, features = ["smol"]` (add
//! `"tls"` for TLS): async-std is then not in the dependency tree at all.
//!
//! ```no_run
//! use tej_async_std::smol::{Client, Server};
//! use tej_async_std::{Frame, Handler};
//!
//! struct Quiet;
//! impl Handler for Quiet {}
//!
//! fn main() -> std::io::Result<()> {
//!     smol::block_on(async {
//!         let server = Server::bind("127.0.0.1:8000").await?;
//!         let shutdown = server.shutdown_handle();
//!         let serving = smol::spawn(server.serve(|| Quiet));
//!
//!         let client = Client::connect("127.0.0.1:8000", Quiet).await?;
//!         client.sender().send(Frame::message("hi")).await.expect("open");
//!         client.close();
//!         client.join().await?;
//!
//!         shutdown.shutdown();
//!         serving.await;
//!         Ok(())
//!     })
//! }
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::path::PathBuf;

use ::smol::net::{AsyncToSocketAddrs, TcpListener, TcpStream};
use tej_core::{Handler, SessionConfig};

use crate::acceptor::ServerAcceptor;
use crate::generic;
use crate::listener::no_delay;
use crate::runtime::{sealed, Runtime};
use crate::Listener;

/// smol as a [`Runtime`]: tasks go to `smol::spawn` (smol's global
/// executor), sockets are `async-net`'s (`smol::net`).
#[derive(Debug, Clone, Copy)]
pub struct Smol;

/// A TEJ server on smol: [`generic::Server`] with smol's sockets and
/// spawner. `L` is the listener, smol's `TcpListener` unless made with
/// [`bind_unix`](generic::Server::bind_unix) or
/// [`from_listener`](generic::Server::from_listener).
pub type Server<L = TcpListener, A = ServerAcceptor> = generic::Server<Smol, L, A>;

/// A TEJ connection made by this side, on smol: [`generic::Client`] with
/// smol's sockets and spawner.
pub type Client = generic::Client<Smol>;

impl sealed::Sealed for Smol {}

impl Runtime for Smol {
    type TcpListener = TcpListener;
    type TcpStream = TcpStream;
    #[cfg(unix)]
    type UnixListener = ::smol::net::unix::UnixListener;
    #[cfg(unix)]
    type UnixStream = ::smol::net::unix::UnixStream;

    fn spawn<F: Future<Output = ()> + Send + 'static>(task: F) {
        ::smol::spawn(task).detach();
    }

    fn tcp_listener(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        TcpListener::try_from(listener)
    }

    #[cfg(unix)]
    fn bind_unix(path: PathBuf) -> io::Result<Self::UnixListener> {
        let listener = crate::runtime::std_unix_listener(&path)?;
        ::smol::net::unix::UnixListener::try_from(listener)
    }

    #[cfg(unix)]
    fn connect_unix(path: PathBuf) -> impl Future<Output = io::Result<Self::UnixStream>> + Send {
        ::smol::net::unix::UnixStream::connect(path)
    }
    fn prepare_tcp(stream: &TcpStream) -> (Option<SocketAddr>, Option<SocketAddr>) {
        no_delay(stream.set_nodelay(true));
        (stream.peer_addr().ok(), stream.local_addr().ok())
    }
}

impl Listener for TcpListener {
    type Io = TcpStream;

    async fn accept(&self) -> io::Result<(TcpStream, Option<SocketAddr>)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        no_delay(stream.set_nodelay(true));
        Ok((stream, Some(peer)))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }
}

#[cfg(unix)]
impl Listener for ::smol::net::unix::UnixListener {
    type Io = ::smol::net::unix::UnixStream;

    async fn accept(&self) -> io::Result<(Self::Io, Option<SocketAddr>)> {
        let (stream, _path) = ::smol::net::unix::UnixListener::accept(self).await?;
        Ok((stream, None))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Err(crate::listener::unix_has_no_ip())
    }
}

impl generic::Server<Smol> {
    /// Binds a TCP listener to `addr` (backlog 1024, `SO_REUSEADDR`). Port
    /// 0 picks a free port: see [`local_addr`](Self::local_addr).
    ///
    /// # Errors
    ///
    /// The error of resolving or binding.
    pub async fn bind(addr: impl AsyncToSocketAddrs) -> io::Result<Self> {
        let addrs = addr.to_socket_addrs().await?;
        Self::bind_addrs(addrs)
    }
}

impl generic::Client<Smol> {
    /// Connects over TCP to `addr` and runs `handler` with the default
    /// options.
    ///
    /// # Errors
    ///
    /// The error of connecting.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future before it returns drops the
    /// connection being made and the handler, before any callback ran and
    /// before anything was sent. See [`Client`](Self#cancel-safety).
    pub async fn connect<H>(addr: impl AsyncToSocketAddrs, handler: H) -> io::Result<Self>
    where
        H: Handler + Send + 'static,
    {
        Self::connect_with(addr, handler, SessionConfig::default()).await
    }

    /// Connects over TCP to `addr` and runs `handler` with `config`, in a
    /// task spawned with `smol::spawn`.
    ///
    /// # Errors
    ///
    /// The error of connecting.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future before it returns drops the
    /// connection being made and the handler, before any callback ran and
    /// before anything was sent. See [`Client`](Self#cancel-safety).
    pub async fn connect_with<H>(
        addr: impl AsyncToSocketAddrs,
        handler: H,
        config: SessionConfig,
    ) -> io::Result<Self>
    where
        H: Handler + Send + 'static,
    {
        let stream = TcpStream::connect(addr).await?;
        Ok(Self::start_tcp(stream, handler, config))
    }

    /// Connects over TCP to `addr`, completes a TLS handshake for
    /// `server_name` with `tls` (within the config's
    /// [`handshake_timeout`](SessionConfig::handshake_timeout)), then runs
    /// `handler` with `config`.
    ///
    /// # Errors
    ///
    /// The error of connecting, or of the handshake: an untrusted server
    /// certificate fails with a one-line reason saying so.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future before it returns drops the
    /// connection being made and the handler, before any callback ran and
    /// before anything was sent. See [`Client`](Self#cancel-safety).
    #[cfg(feature = "tls")]
    pub async fn connect_tls<H>(
        addr: impl AsyncToSocketAddrs,
        server_name: rustls::pki_types::ServerName<'static>,
        tls: std::sync::Arc<rustls::ClientConfig>,
        handler: H,
        config: SessionConfig,
    ) -> io::Result<Self>
    where
        H: Handler + Send + 'static,
    {
        let stream = TcpStream::connect(addr).await?;
        Self::start_tls(stream, server_name, tls, handler, config).await
    }
}
