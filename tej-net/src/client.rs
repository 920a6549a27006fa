//! Connecting out: one session over one stream, driven in its own task,
//! written once for every runtime.

use std::any::Any;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::ops::Deref;
use std::panic::AssertUnwindSafe;
#[cfg(unix)]
use std::path::Path;

use futures_lite::FutureExt;
use tej_core::{
    ConnectionInfo, DisconnectReason, Handler, Sender, Session, SessionConfig, Transport,
};
use tracing::Instrument;

use crate::client_handle::ClientHandle;
use crate::connection::pair;
use crate::incoming::DEFAULT_BUFFER;
use crate::run::run_session;
use crate::runtime::{PollIo, Resolve, Runtime};
use crate::AsyncConnection;
use crate::ShutdownHandle;

/// The outcome of a connection's task: why it ended, or a panic's payload
/// if its handler panicked.
type TaskResult = Result<DisconnectReason, Box<dyn Any + Send>>;

/// A TEJ connection made by this side on runtime `R`, running its
/// [`Handler`] in a task.
///
/// It dereferences to [`ClientHandle`], which every adapter's `Client`
/// shares: its [`Sender`], addresses, `close` and `shutdown`.
///
/// Name it through its runtime's face: `tej_tokio::Client`,
/// `tej_async_std::Client`, `tej_async_std::smol::Client`.
///
/// **Dropping a `Client` closes it gracefully**: as with
/// [`close`](ClientHandle::close), the connection is asked to close once what is
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
pub struct Client<R: Runtime> {
    handle: ClientHandle,
    /// Gets the task's outcome; closed without one if the executor dropped
    /// the task.
    done: async_channel::Receiver<TaskResult>,
    runtime: PhantomData<fn() -> R>,
}

/// Its sender, addresses, `close` and `shutdown`: the same on every adapter.
impl<R: Runtime> Deref for Client<R> {
    type Target = ClientHandle;

    fn deref(&self) -> &ClientHandle {
        &self.handle
    }
}

impl<R: Runtime> fmt::Debug for Client<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("runtime", &std::any::type_name::<R>())
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> Client<R> {
    /// Connects over TCP to `addr` (the first of its addresses that
    /// answers) and runs `handler` with the default options.
    ///
    /// # Errors
    ///
    /// The error of resolving or connecting.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future before it returns drops the
    /// connection being made and the handler, before any callback ran and
    /// before anything was sent. See [`Client`](Self#cancel-safety).
    pub async fn connect<T, H>(addr: T, handler: H) -> io::Result<Self>
    where
        R: Resolve<T> + PollIo<R::TcpStream>,
        H: Handler + Send + 'static,
    {
        Client::connect_with(addr, handler, SessionConfig::default()).await
    }

    /// Connects over TCP to `addr` and runs `handler` with `config`.
    ///
    /// # Errors
    ///
    /// The error of resolving or connecting.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`connect`](Self::connect).
    pub async fn connect_with<T, H>(addr: T, handler: H, config: SessionConfig) -> io::Result<Self>
    where
        R: Resolve<T> + PollIo<R::TcpStream>,
        H: Handler + Send + 'static,
    {
        let stream = connect_tcp::<R, T>(addr).await?;
        let info = tcp_info::<R>(&stream);
        Ok(Client::start(stream, info, handler, config))
    }

    /// Connects to the Unix domain socket at `path` and runs `handler`
    /// with `config`. The client's [`peer_addr`](ClientHandle::peer_addr) is `None`.
    ///
    /// # Errors
    ///
    /// The error of connecting.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`connect`](Self::connect).
    #[cfg(unix)]
    pub async fn connect_unix<H>(
        path: impl AsRef<Path>,
        handler: H,
        config: SessionConfig,
    ) -> io::Result<Self>
    where
        R: PollIo<R::UnixStream>,
        H: Handler + Send + 'static,
    {
        let stream = R::connect_unix(path.as_ref().to_path_buf()).await?;
        let info = ConnectionInfo::new(Transport::Unix);
        Ok(Client::start(stream, info, handler, config))
    }

    /// Runs `handler` with `config` over a stream already connected (and
    /// through any handshake of its own): an in-memory pipe, a stream from
    /// another library. Its [`peer_addr`](ClientHandle::peer_addr) and
    /// [`local_addr`](ClientHandle::local_addr) are `None`.
    ///
    /// # Panics
    ///
    /// Outside the runtime, if its spawner panics there (Tokio's does).
    pub fn from_stream<S, H>(stream: S, handler: H, config: SessionConfig) -> Self
    where
        R: PollIo<S>,
        S: Send + 'static,
        H: Handler + Send + 'static,
    {
        Client::start(stream, ConnectionInfo::default(), handler, config)
    }

    /// Starts the session over a connected stream in a task on `R`.
    fn start<S, H>(stream: S, info: ConnectionInfo, handler: H, config: SessionConfig) -> Self
    where
        R: PollIo<S>,
        S: Send + 'static,
        H: Handler + Send + 'static,
    {
        let span = crate::observe::connection_span(&info, crate::runtime::name::<R>());
        let session = Session::new(handler, config).with_info(info.clone());
        let sender = session.sender();
        let shutdown = ShutdownHandle::new();
        let connection = run_session::<R, S, H>(stream, session, shutdown.clone());
        let (report, done) = async_channel::bounded(1);
        R::spawn(
            async move {
                tracing::info!("connected");
                let outcome = AssertUnwindSafe(connection).catch_unwind().await;
                // Nobody listens once the client is dropped: nothing to do then.
                let _ = report.try_send(outcome);
            }
            .instrument(span),
        );
        Client {
            handle: ClientHandle::new(sender, info, shutdown),
            done,
            runtime: PhantomData,
        }
    }

    /// Lets the connection run on without this `Client`: dropping it then
    /// does not close the connection, which ends when the peer closes it,
    /// on the returned [`Sender`]'s [`close`](Sender::close), or on a
    /// [`ShutdownHandle`] taken before
    /// ([`shutdown_handle`](ClientHandle::shutdown_handle)). Nothing waits for
    /// its task any more.
    pub fn detach(mut self) -> Sender {
        self.handle.detach()
    }

    /// Waits until the connection has ended, its handler's `disconnected`
    /// has run and the stream has been shut down (over TLS, close_notify
    /// sent), and tells why it ended: the [`DisconnectReason`] the handler
    /// was given ([`is_graceful`](DisconnectReason::is_graceful) when
    /// either side closed it between frames).
    ///
    /// This does not close the connection: call [`close`](ClientHandle::close)
    /// first to end it from this side. Dropping the future drops the
    /// `Client`, which closes the connection gracefully.
    ///
    /// # Errors
    ///
    /// An error if the handler panicked, or if the executor dropped the
    /// connection's task before it ended (its runtime shut down).
    pub async fn join(self) -> io::Result<DisconnectReason> {
        match self.done.recv().await {
            Ok(Ok(reason)) => Ok(reason),
            Ok(Err(panic)) => {
                let message = crate::accept::panic_message(panic.as_ref());
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

#[cfg(feature = "rustls")]
impl<R: crate::runtime::TlsRuntime> Client<R> {
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
    /// Cancel-safe, as [`connect`](Self::connect).
    pub async fn connect_tls<T, H>(
        addr: T,
        server_name: rustls::pki_types::ServerName<'static>,
        tls: std::sync::Arc<rustls::ClientConfig>,
        handler: H,
        config: SessionConfig,
    ) -> io::Result<Self>
    where
        R: Resolve<T> + PollIo<R::TcpStream> + PollIo<R::TlsStream<R::TcpStream>>,
        H: Handler + Send + 'static,
    {
        let (stream, info) = connect_tls_tcp::<R, T>(addr, server_name, tls, &config).await?;
        Ok(Client::start(stream, info, handler, config))
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
    /// Cancel-safe, as [`connect`](Self::connect).
    #[cfg(unix)]
    pub async fn connect_unix_tls<H>(
        path: impl AsRef<Path>,
        server_name: rustls::pki_types::ServerName<'static>,
        tls: std::sync::Arc<rustls::ClientConfig>,
        handler: H,
        config: SessionConfig,
    ) -> io::Result<Self>
    where
        R: PollIo<R::UnixStream> + PollIo<R::TlsStream<R::UnixStream>>,
        H: Handler + Send + 'static,
    {
        let stream = R::connect_unix(path.as_ref().to_path_buf()).await?;
        let sni = crate::tls::sni(&server_name);
        let stream = tls_handshake::<R, _>(stream, server_name, tls, &config).await?;
        let mut info = ConnectionInfo::new(Transport::Unix);
        let mut agreed = R::tls_info(&stream);
        agreed.sni = sni;
        info.tls = Some(Box::new(agreed));
        Ok(Client::start(stream, info, handler, config))
    }
}

/// A TCP connection to `addr` through a TLS handshake verifying the server
/// as `server_name`, and what is known of it.
#[cfg(feature = "rustls")]
async fn connect_tls_tcp<R, T>(
    addr: T,
    server_name: rustls::pki_types::ServerName<'static>,
    tls: std::sync::Arc<rustls::ClientConfig>,
    config: &SessionConfig,
) -> io::Result<(R::TlsStream<R::TcpStream>, ConnectionInfo)>
where
    R: crate::runtime::TlsRuntime + Resolve<T> + PollIo<R::TcpStream>,
{
    let stream = connect_tcp::<R, T>(addr).await?;
    let mut info = tcp_info::<R>(&stream);
    let sni = crate::tls::sni(&server_name);
    let stream = tls_handshake::<R, _>(stream, server_name, tls, config).await?;
    let mut agreed = R::tls_info(&stream);
    agreed.sni = sni;
    info.tls = Some(Box::new(agreed));
    Ok((stream, info))
}

/// A TCP stream readied ([`Runtime::prepare_tcp`]) and described.
fn tcp_info<R: Runtime>(stream: &R::TcpStream) -> ConnectionInfo {
    let (peer, local) = R::prepare_tcp(stream);
    let mut info = ConnectionInfo::new(Transport::Tcp);
    info.peer = peer;
    info.local = local;
    info
}

/// A TCP connection to the first of `addr`'s addresses that answers.
async fn connect_tcp<R: Runtime + Resolve<T>, T>(addr: T) -> io::Result<R::TcpStream> {
    let mut last = None;
    for addr in R::resolve(addr).await? {
        match R::connect_tcp(addr).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing to connect to",
        )
    }))
}

/// A TLS handshake as a client, within `config`'s handshake timeout; a
/// failure said in one line.
#[cfg(feature = "rustls")]
async fn tls_handshake<R, S>(
    stream: S,
    server_name: rustls::pki_types::ServerName<'static>,
    tls: std::sync::Arc<rustls::ClientConfig>,
    config: &SessionConfig,
) -> io::Result<R::TlsStream<S>>
where
    R: crate::runtime::TlsRuntime + PollIo<S>,
    S: Send + Unpin + 'static,
{
    let name = server_name.to_str().into_owned();
    let handshake = R::tls_connect(stream, server_name, tls);
    crate::server::bounded_handshake::<R, _>(handshake, config, std::future::pending())
        .await
        .map_err(|error| crate::tls::handshake_error(&name, error))
}

/// The async face: connections you await, their frames a `Stream`.
impl<R: Runtime> Client<R> {
    /// Connects over TCP to `addr` with the default options and gives the
    /// connection as an [`AsyncConnection`]: frames received as a
    /// `Stream`, files as `AsyncRead`s, sent with its `Sender`. What
    /// [`connect`](Self::connect) does with a [`Handler`], for code that
    /// awaits.
    ///
    /// # Errors
    ///
    /// The error of resolving or connecting.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`connect`](Self::connect).
    pub async fn open<T>(addr: T) -> io::Result<AsyncConnection>
    where
        R: Resolve<T> + PollIo<R::TcpStream>,
    {
        Client::<R>::open_with(addr, SessionConfig::default()).await
    }

    /// As [`open`](Self::open), with `config`.
    ///
    /// # Errors
    ///
    /// The error of resolving or connecting.
    pub async fn open_with<T>(addr: T, config: SessionConfig) -> io::Result<AsyncConnection>
    where
        R: Resolve<T> + PollIo<R::TcpStream>,
    {
        let stream = connect_tcp::<R, T>(addr).await?;
        let info = tcp_info::<R>(&stream);
        Ok(Client::<R>::open_stream_at(stream, info, config))
    }

    /// As [`open`](Self::open), to the Unix domain socket at `path`.
    ///
    /// # Errors
    ///
    /// The error of connecting.
    #[cfg(unix)]
    pub async fn open_unix(
        path: impl AsRef<Path>,
        config: SessionConfig,
    ) -> io::Result<AsyncConnection>
    where
        R: PollIo<R::UnixStream>,
    {
        let stream = R::connect_unix(path.as_ref().to_path_buf()).await?;
        let info = ConnectionInfo::new(Transport::Unix);
        Ok(Client::<R>::open_stream_at(stream, info, config))
    }

    /// As [`open`](Self::open), over a stream already connected: what
    /// [`from_stream`](Self::from_stream) does with a [`Handler`].
    ///
    /// # Panics
    ///
    /// Outside the runtime, if its spawner panics there (Tokio's does).
    pub fn open_stream<S>(stream: S, config: SessionConfig) -> AsyncConnection
    where
        R: PollIo<S>,
        S: Send + 'static,
    {
        Client::<R>::open_stream_at(stream, ConnectionInfo::default(), config)
    }

    /// Runs the stream handler's session over `stream` in a task.
    fn open_stream_at<S>(stream: S, info: ConnectionInfo, config: SessionConfig) -> AsyncConnection
    where
        R: PollIo<S>,
        S: Send + 'static,
    {
        let (session, connection) = pair(DEFAULT_BUFFER, std::sync::Arc::new(config), info);
        R::spawn(async move {
            // The stream handler does not panic; the reason reaches the
            // connection's `Incoming`.
            let _ = run_session::<R, S, _>(stream, session, ShutdownHandle::new()).await;
        });
        connection
    }
}

#[cfg(feature = "rustls")]
impl<R: crate::runtime::TlsRuntime> Client<R> {
    /// As [`open`](Self::open), through a TLS handshake as
    /// [`connect_tls`](Self::connect_tls) makes it.
    ///
    /// # Errors
    ///
    /// As [`connect_tls`](Self::connect_tls).
    pub async fn open_tls<T>(
        addr: T,
        server_name: rustls::pki_types::ServerName<'static>,
        tls: std::sync::Arc<rustls::ClientConfig>,
        config: SessionConfig,
    ) -> io::Result<AsyncConnection>
    where
        R: Resolve<T> + PollIo<R::TcpStream> + PollIo<R::TlsStream<R::TcpStream>>,
    {
        let (stream, info) = connect_tls_tcp::<R, T>(addr, server_name, tls, &config).await?;
        Ok(Client::<R>::open_stream_at(stream, info, config))
    }
}
