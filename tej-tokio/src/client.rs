//! Connecting out: one session over one stream (TCP, Unix, TLS or your
//! own), driven in its own task.

use std::io;
use std::net::SocketAddr;

use tej_core::{DisconnectReason, Handler, Sender, Session, SessionConfig};
use tej_net::ShutdownHandle;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::task::JoinHandle;

use crate::driver::run_session;

/// A TEJ connection made by this side, running its [`Handler`] in a task.
///
/// **Dropping a `Client` closes it gracefully**: as with
/// [`close`](Self::close), the connection is asked to close once what is
/// queued has been sent, without blocking the dropping thread; the task
/// still runs to completion (the frames already queued are written, the
/// handler's `disconnected` runs, the stream is shut down). The
/// [`Sender`]s taken from it do not keep the connection open. To keep the
/// connection running without its `Client`, [`detach`](Self::detach) it;
/// to wait for its end and learn why it ended, [`join`](Self::join) it.
///
/// # Cancel safety
///
/// The `connect*` futures are cancel-safe in the sense that nothing is
/// half-sent: until one returns, no session runs, so dropping it drops the
/// handler (no callback ran) and the connection being made. Dropping the
/// [`join`](Self::join) future drops the `Client`, which closes the
/// connection gracefully as above.
#[derive(Debug)]
pub struct Client {
    sender: Sender,
    peer_addr: Option<SocketAddr>,
    local_addr: Option<SocketAddr>,
    shutdown: ShutdownHandle,
    task: JoinHandle<DisconnectReason>,
    /// Whether [`detach`](Client::detach) let the connection run on.
    detached: bool,
}

impl Drop for Client {
    /// Asks for a graceful close, unless detached: see [`Client`].
    fn drop(&mut self) {
        if !self.detached {
            self.sender.close();
        }
    }
}

impl Client {
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
    pub async fn connect<H>(addr: impl ToSocketAddrs, handler: H) -> io::Result<Client>
    where
        H: Handler + Send + 'static,
    {
        Client::connect_with(addr, handler, SessionConfig::default()).await
    }

    /// Connects over TCP to `addr` and runs `handler` with `config`.
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
    ) -> io::Result<Client>
    where
        H: Handler + Send + 'static,
    {
        let (stream, peer_addr, local_addr) = connect_tcp(addr).await?;
        Ok(Client::spawn(
            stream,
            Some(peer_addr),
            Some(local_addr),
            handler,
            config,
        ))
    }

    /// Connects to the Unix domain socket at `path` and runs `handler`
    /// with `config`. The client's [`peer_addr`](Self::peer_addr) is `None`.
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
    #[cfg(unix)]
    pub async fn connect_unix<H>(
        path: impl AsRef<std::path::Path>,
        handler: H,
        config: SessionConfig,
    ) -> io::Result<Client>
    where
        H: Handler + Send + 'static,
    {
        let stream = tokio::net::UnixStream::connect(path).await?;
        Ok(Client::spawn(stream, None, None, handler, config))
    }

    /// Connects over TCP to `addr`, runs a TLS handshake verifying the
    /// server as `server_name` with `tls`, then runs `handler` with
    /// `config`. The handshake must end within `config`'s
    /// [`handshake_timeout`](SessionConfig::handshake_timeout).
    ///
    /// Build `tls` with the ring provider, for instance
    /// `ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))`,
    /// then `.with_safe_default_protocol_versions()`, your root
    /// certificates, and a client certificate if the server asks for one.
    ///
    /// # Errors
    ///
    /// The error of connecting, or of the handshake, with a one-line reason
    /// (such as "the server's certificate is not trusted"); `TimedOut` if
    /// the handshake took too long.
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
    ) -> io::Result<Client>
    where
        H: Handler + Send + 'static,
    {
        let (stream, peer_addr, local_addr) = connect_tcp(addr).await?;
        let stream = crate::tls::client_handshake(stream, server_name, tls, &config).await?;
        Ok(Client::spawn(
            stream,
            Some(peer_addr),
            Some(local_addr),
            handler,
            config,
        ))
    }

    /// Connects to the Unix domain socket at `path`, runs a TLS handshake
    /// verifying the server as `server_name` with `tls`, then runs
    /// `handler` with `config`: [`connect_tls`](Self::connect_tls) over a
    /// Unix socket. A path names no host, so `server_name` is whatever
    /// name the server's certificate is for.
    ///
    /// # Errors
    ///
    /// As [`connect_tls`](Self::connect_tls).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`connect_tls`](Self::connect_tls).
    #[cfg(all(unix, feature = "tls"))]
    pub async fn connect_unix_tls<H>(
        path: impl AsRef<std::path::Path>,
        server_name: rustls::pki_types::ServerName<'static>,
        tls: std::sync::Arc<rustls::ClientConfig>,
        handler: H,
        config: SessionConfig,
    ) -> io::Result<Client>
    where
        H: Handler + Send + 'static,
    {
        let stream = tokio::net::UnixStream::connect(path).await?;
        let stream = crate::tls::client_handshake(stream, server_name, tls, &config).await?;
        Ok(Client::spawn(stream, None, None, handler, config))
    }

    /// Runs `handler` with `config` over a stream already connected (and
    /// through any handshake of its own): one half of
    /// `tokio::io::duplex`, a stream from another library. Its
    /// [`peer_addr`](Self::peer_addr) and [`local_addr`](Self::local_addr)
    /// are `None`.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, as [`tokio::spawn`] does.
    pub fn from_stream<S, H>(stream: S, handler: H, config: SessionConfig) -> Client
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Handler + Send + 'static,
    {
        Client::spawn(stream, None, None, handler, config)
    }

    fn spawn<S, H>(
        stream: S,
        peer_addr: Option<SocketAddr>,
        local_addr: Option<SocketAddr>,
        handler: H,
        config: SessionConfig,
    ) -> Client
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Handler + Send + 'static,
    {
        let mut session = Session::new(handler, config);
        if let Some(peer) = peer_addr {
            session = session.with_peer(peer);
        }
        let sender = session.sender();
        let shutdown = ShutdownHandle::new();
        let task = tokio::spawn(run_session(stream, session, shutdown.clone()));
        Client {
            sender,
            peer_addr,
            local_addr,
            shutdown,
            task,
            detached: false,
        }
    }

    /// A sender for this connection, usable from any task or thread.
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// The server's IP address; `None` over a Unix socket or a stream
    /// given to [`from_stream`](Self::from_stream).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    /// This side's IP address; `None` over a Unix socket or a stream
    /// given to [`from_stream`](Self::from_stream).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Closes the connection once everything queued has been sent.
    pub fn close(&self) {
        self.sender.close();
    }

    /// Closes the connection after the frame being received, if any.
    pub fn shutdown(&self) {
        self.shutdown.shutdown();
    }

    /// Lets the connection run on without this `Client`: dropping it then
    /// does not close the connection, which ends when the peer closes it,
    /// on the returned [`Sender`]'s [`close`](Sender::close), or on a
    /// [`ShutdownHandle`] taken before
    /// ([`shutdown_handle`](Self::shutdown_handle)). Nothing waits for
    /// its task any more.
    pub fn detach(mut self) -> Sender {
        self.detached = true;
        self.sender.clone()
    }

    /// The handle [`shutdown`](Self::shutdown) uses, to stop this
    /// connection from anywhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Waits until the connection has ended, its handler's `disconnected`
    /// has run and the stream has been shut down (for TLS: close_notify
    /// sent), and tells why it ended: the [`DisconnectReason`] the handler
    /// was given ([`is_graceful`](DisconnectReason::is_graceful) when
    /// either side closed it between frames).
    ///
    /// This does not close the connection: call [`close`](Self::close)
    /// first to end it from this side. Dropping the future drops the
    /// `Client`, which closes the connection gracefully.
    ///
    /// # Errors
    ///
    /// An error if the handler panicked, or if the task was cancelled
    /// (its runtime shut down).
    pub async fn join(mut self) -> io::Result<DisconnectReason> {
        (&mut self.task).await.map_err(io::Error::other)
    }
}

/// A TCP connection to `addr` without Nagle's algorithm (writes are
/// already coalesced), with its two addresses.
async fn connect_tcp(addr: impl ToSocketAddrs) -> io::Result<(TcpStream, SocketAddr, SocketAddr)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let peer_addr = stream.peer_addr()?;
    let local_addr = stream.local_addr()?;
    Ok((stream, peer_addr, local_addr))
}
