//! Connecting out: one session over one stream, driven in its own task,
//! written once for every runtime.

use std::any::Any;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
#[cfg(unix)]
use std::path::Path;

use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::FutureExt;
use tej_core::{DisconnectReason, Handler, Sender, Session, SessionConfig};
use tej_net::ShutdownHandle;

use crate::driver::run_session;
use crate::runtime::Runtime;

/// The outcome of a connection's task: why it ended, or a panic's payload
/// if its handler panicked.
type TaskResult = Result<DisconnectReason, Box<dyn Any + Send>>;

/// A TEJ connection made by this side on runtime `R`, running its
/// [`Handler`] in a task.
///
/// Name it through its faces: `tej_async_std::Client` on async-std and
/// `tej_async_std::smol::Client` on smol, whose `connect`, `connect_with`
/// and `connect_tls` take that runtime's address type.
///
/// **Dropping a `Client` closes it gracefully**: as with
/// [`close`](Self::close), the connection is asked to close once what is
/// queued has been sent, without blocking the dropping thread; the task
/// still runs to completion (the frames already queued are written, the
/// handler's `disconnected` runs, the stream is closed). The [`Sender`]s
/// taken from it do not keep the connection open. To keep the connection
/// running without its `Client`, [`detach`](Self::detach) it; to wait for
/// its end and learn why it ended, [`join`](Self::join) it.
///
/// # Cancel safety
///
/// The `connect*` futures are cancel-safe in the sense that nothing is
/// half-sent: until one returns, no session runs, so dropping it drops the
/// handler (no callback ran) and the connection being made. Dropping the
/// [`join`](Self::join) future drops the `Client`, which closes the
/// connection gracefully as above.
pub struct Client<R: Runtime> {
    sender: Sender,
    peer_addr: Option<SocketAddr>,
    local_addr: Option<SocketAddr>,
    shutdown: ShutdownHandle,
    /// Gets the task's outcome; closed without one if the executor dropped
    /// the task.
    done: async_channel::Receiver<TaskResult>,
    /// Whether [`detach`](Client::detach) let the connection run on.
    detached: bool,
    runtime: PhantomData<fn() -> R>,
}

impl<R: Runtime> Drop for Client<R> {
    /// Asks for a graceful close, unless detached: see [`Client`].
    fn drop(&mut self) {
        if !self.detached {
            self.sender.close();
        }
    }
}

impl<R: Runtime> std::fmt::Debug for Client<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer_addr", &self.peer_addr)
            .field("local_addr", &self.local_addr)
            .field("shutdown", &self.shutdown)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> Client<R> {
    /// Runs `handler` with `config` over `stream`, an already-connected
    /// stream of any kind (TCP, Unix, TLS, in-memory), in a task on `R`.
    /// [`peer_addr`](Self::peer_addr) is then `None`, as the stream's kind
    /// is not known.
    pub fn from_stream<S, H>(stream: S, handler: H, config: SessionConfig) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Handler + Send + 'static,
    {
        Client::start(stream, None, None, handler, config)
    }

    /// Connects to the Unix-domain socket at `path` and runs `handler` with
    /// `config`.
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
        path: impl AsRef<Path>,
        handler: H,
        config: SessionConfig,
    ) -> io::Result<Self>
    where
        H: Handler + Send + 'static,
    {
        let stream = R::connect_unix(path.as_ref().to_path_buf()).await?;
        Ok(Client::start(stream, None, None, handler, config))
    }

    /// Connects to the Unix-domain socket at `path`, completes a TLS
    /// handshake for `server_name` with `tls` (within the config's
    /// [`handshake_timeout`](SessionConfig::handshake_timeout)), then runs
    /// `handler` with `config`. A path names no host, so `server_name` is
    /// whatever name the server's certificate is for.
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
    #[cfg(all(unix, feature = "tls"))]
    pub async fn connect_unix_tls<H>(
        path: impl AsRef<Path>,
        server_name: rustls::pki_types::ServerName<'static>,
        tls: std::sync::Arc<rustls::ClientConfig>,
        handler: H,
        config: SessionConfig,
    ) -> io::Result<Self>
    where
        H: Handler + Send + 'static,
    {
        let stream = R::connect_unix(path.as_ref().to_path_buf()).await?;
        let stream = tls_handshake(stream, server_name, tls, &config).await?;
        Ok(Client::start(stream, None, None, handler, config))
    }

    /// Starts the session over a connected TCP stream of `R`.
    pub(crate) fn start_tcp<H>(stream: R::TcpStream, handler: H, config: SessionConfig) -> Self
    where
        H: Handler + Send + 'static,
    {
        let (peer, local) = R::prepare_tcp(&stream);
        Client::start(stream, peer, local, handler, config)
    }

    /// Runs the client's TLS handshake over a connected TCP stream of `R`,
    /// then starts the session over it.
    #[cfg(feature = "tls")]
    pub(crate) async fn start_tls<H>(
        stream: R::TcpStream,
        server_name: rustls::pki_types::ServerName<'static>,
        tls: std::sync::Arc<rustls::ClientConfig>,
        handler: H,
        config: SessionConfig,
    ) -> io::Result<Self>
    where
        H: Handler + Send + 'static,
    {
        let (peer, local) = R::prepare_tcp(&stream);
        let stream = tls_handshake(stream, server_name, tls, &config).await?;
        Ok(Client::start(stream, peer, local, handler, config))
    }

    /// Starts the session over a connected stream in a task on `R`.
    pub(crate) fn start<S, H>(
        stream: S,
        peer_addr: Option<SocketAddr>,
        local_addr: Option<SocketAddr>,
        handler: H,
        config: SessionConfig,
    ) -> Self
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
        let connection = run_session(stream, session, shutdown.clone());
        let (report, done) = async_channel::bounded(1);
        R::spawn(async move {
            let outcome = AssertUnwindSafe(connection).catch_unwind().await;
            // Nobody listens once the client is dropped: nothing to do then.
            let _ = report.try_send(outcome);
        });
        Client {
            sender,
            peer_addr,
            local_addr,
            shutdown,
            done,
            detached: false,
            runtime: PhantomData,
        }
    }

    /// A sender for this connection, usable from any task or thread.
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// The server's IP address: `None` over a Unix socket or a stream given
    /// to [`from_stream`](Self::from_stream).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    /// This side's IP address, when connected over TCP.
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

    /// The handle [`shutdown`](Self::shutdown) uses, to stop this
    /// connection from anywhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
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

    /// Waits until the connection has ended and its handler's
    /// `disconnected` has run; the stream has been flushed and closed
    /// (over TLS, `close_notify` sent). Tells why it ended: the
    /// [`DisconnectReason`] the handler was given
    /// ([`is_graceful`](DisconnectReason::is_graceful) when either side
    /// closed it between frames).
    ///
    /// This does not close the connection: call [`close`](Self::close)
    /// first to end it from this side. Dropping the future drops the
    /// `Client`, which closes the connection gracefully.
    ///
    /// # Errors
    ///
    /// An error if the handler panicked, or if the executor dropped the
    /// connection's task before it ended.
    pub async fn join(self) -> io::Result<DisconnectReason> {
        match self.done.recv().await {
            Ok(Ok(reason)) => Ok(reason),
            Ok(Err(panic)) => {
                let message = tej_net::accept::panic_message(panic.as_ref());
                Err(io::Error::other(format!(
                    "the connection's handler panicked: {message}"
                )))
            }
            Err(_) => Err(io::Error::other(
                "the connection's task was dropped by its executor before it ended",
            )),
        }
    }
}

/// A TLS handshake as a client, within `config`'s handshake timeout; an
/// untrusted certificate is reported as such, in one line.
#[cfg(feature = "tls")]
pub(crate) async fn tls_handshake<S>(
    stream: S,
    server_name: rustls::pki_types::ServerName<'static>,
    tls: std::sync::Arc<rustls::ClientConfig>,
    config: &SessionConfig,
) -> io::Result<futures_rustls::client::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = server_name.to_str().into_owned();
    let connector = futures_rustls::TlsConnector::from(tls);
    let handshake = connector.connect(server_name, stream);
    crate::server::bounded_handshake(handshake, config, std::future::pending())
        .await
        .map_err(|error| tej_net::tls::handshake_error(&name, error))
}
