//! async-std: its sockets, its spawner, and the faces that take its
//! address type.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::path::PathBuf;

use async_std::net::{TcpListener, TcpStream, ToSocketAddrs};
use tej_core::{Handler, SessionConfig};

use crate::generic::{self, Client};
use crate::listener::no_delay;
use crate::runtime::{sealed, Runtime};
use crate::Listener;

/// async-std as a [`Runtime`]: tasks go to `async_std::task::spawn`,
/// sockets are async-std's.
#[derive(Debug, Clone, Copy)]
pub struct AsyncStd;

impl sealed::Sealed for AsyncStd {}

impl Runtime for AsyncStd {
    type TcpListener = TcpListener;
    type TcpStream = TcpStream;
    #[cfg(unix)]
    type UnixListener = async_std::os::unix::net::UnixListener;
    #[cfg(unix)]
    type UnixStream = async_std::os::unix::net::UnixStream;

    fn spawn<F: Future<Output = ()> + Send + 'static>(task: F) {
        // Dropping the handle detaches the task.
        drop(async_std::task::spawn(task));
    }

    fn tcp_listener(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener::from(listener))
    }

    #[cfg(unix)]
    fn bind_unix(path: PathBuf) -> io::Result<Self::UnixListener> {
        let listener = crate::runtime::std_unix_listener(&path)?;
        Ok(async_std::os::unix::net::UnixListener::from(listener))
    }

    #[cfg(unix)]
    async fn connect_unix(path: PathBuf) -> io::Result<Self::UnixStream> {
        async_std::os::unix::net::UnixStream::connect(path).await
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
impl Listener for async_std::os::unix::net::UnixListener {
    type Io = async_std::os::unix::net::UnixStream;

    async fn accept(&self) -> io::Result<(Self::Io, Option<SocketAddr>)> {
        let (stream, _path) = async_std::os::unix::net::UnixListener::accept(self).await?;
        Ok((stream, None))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Err(crate::listener::unix_has_no_ip())
    }
}

impl generic::Server<AsyncStd> {
    /// Binds a TCP listener to `addr` (backlog 1024, `SO_REUSEADDR`). Port
    /// 0 picks a free port: see [`local_addr`](Self::local_addr).
    ///
    /// # Errors
    ///
    /// The error of resolving or binding.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        let addrs = addr.to_socket_addrs().await?;
        Self::bind_addrs(addrs)
    }
}

impl Client<AsyncStd> {
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
    pub async fn connect<H>(addr: impl ToSocketAddrs, handler: H) -> io::Result<Self>
    where
        H: Handler + Send + 'static,
    {
        Self::connect_with(addr, handler, SessionConfig::default()).await
    }

    /// Connects over TCP to `addr` and runs `handler` with `config`, in a
    /// task spawned with `async_std::task::spawn`.
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
        addr: impl ToSocketAddrs,
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
        addr: impl ToSocketAddrs,
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
