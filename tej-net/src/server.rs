//! The accept loop, written once for every runtime, listener and
//! acceptor: one task per connection, its PROXY header and handshake, then
//! one handler and one session.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
#[cfg(unix)]
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_lite::{future, FutureExt};
use tej_core::{ConnectionInfo, Session, SessionConfig};
use tracing::Instrument;

use crate::accept::{self, ConnectionCap, ConnectionSlot};
use crate::listener::{Acceptor, Listener, Plain};
use crate::new_handler::NewHandler;
use crate::observe::{connection_span, record_handshake, Observer};
use crate::proxy::HeaderRead;
use crate::run::run_observed;
use crate::runtime::{self, PollIo, Resolve, Runtime};
use crate::ShutdownHandle;

/// A TEJ server on runtime `R`, accepting from listener `L` (TCP by
/// default, a Unix socket, your own), each connection passed through
/// acceptor `A` ([`Plain`] by default; TLS with `with_tls`).
///
/// Name it through its runtime's face: `tej_tokio::Server`,
/// `tej_async_std::Server`, `tej_async_std::smol::Server`.
///
/// Each accepted connection runs in its own task, under the connection
/// cap: first its PROXY header (with
/// [`with_proxy_protocol`](Self::with_proxy_protocol)) and its acceptor
/// step (the TLS handshake), together bounded by
/// [`SessionConfig::handshake_timeout`]; then a [`Handler`](tej_core::Handler) from the
/// factory given to [`serve`](Self::serve) is made and the session runs. A
/// connection that fails, or whose handler panics, ends alone.
pub struct Server<R: Runtime, L = <R as Runtime>::TcpListener, A = Plain> {
    listener: L,
    acceptor: A,
    config: SessionConfig,
    cap: ConnectionCap,
    shutdown: ShutdownHandle,
    /// Read a PROXY header of at most this many bytes first.
    proxy: Option<usize>,
    /// Told of every connection, for metrics.
    observer: Option<Arc<dyn Observer>>,
    runtime: PhantomData<fn() -> R>,
}

impl<R: Runtime, L, A> fmt::Debug for Server<R, L, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("runtime", &std::any::type_name::<R>())
            .field("acceptor", &std::any::type_name::<A>())
            .field("config", &self.config)
            .field("cap", &self.cap)
            .field("shutdown", &self.shutdown)
            .field("proxy_protocol", &self.proxy.is_some())
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> Server<R> {
    /// Binds a TCP listener to `addr` (the first of its addresses that
    /// binds; backlog 4,096, `SO_REUSEADDR`). Port 0 picks a free port:
    /// see [`local_addr`](Self::local_addr).
    ///
    /// # Errors
    ///
    /// The error of resolving or binding.
    pub async fn bind<T>(addr: T) -> io::Result<Self>
    where
        R: Resolve<T>,
    {
        let listener = accept::listen_tcp(R::resolve(addr).await?)?;
        Ok(Server::from_listener(R::tcp_listener(listener)?))
    }
}

#[cfg(unix)]
impl<R: Runtime> Server<R, R::UnixListener> {
    /// Binds a Unix domain socket at `path` (backlog 4,096). The socket
    /// file is left in place when the server ends; binding again replaces
    /// such a stale one, never one a live server listens on
    /// ([`accept::listen_unix`]).
    ///
    /// # Errors
    ///
    /// The error of binding (`AddrInUse` if a server listens at `path`).
    pub async fn bind_unix(path: impl AsRef<Path>) -> io::Result<Self> {
        let listener = accept::listen_unix(path.as_ref())?;
        Ok(Server::from_listener(R::unix_listener(listener)?))
    }
}

impl<R: Runtime, L: Listener<R>> Server<R, L> {
    /// A server on any [`Listener`]: one bound elsewhere, a Unix socket,
    /// a listener of your own.
    pub fn from_listener(listener: L) -> Self {
        Server {
            listener,
            acceptor: Plain,
            config: SessionConfig::default(),
            cap: ConnectionCap::default(),
            shutdown: ShutdownHandle::new(),
            proxy: None,
            observer: None,
            runtime: PhantomData,
        }
    }
}

#[cfg(feature = "rustls")]
impl<R: runtime::TlsRuntime, L: Listener<R>> Server<R, L> {
    /// Runs a TLS handshake on every connection before its session, with
    /// `config` (whose client-certificate verifier decides whether clients
    /// must present a certificate). The handshake counts under the
    /// connection cap and must end within the session's
    /// [`handshake_timeout`](SessionConfig::handshake_timeout).
    ///
    /// Build `config` with the ring provider, for instance
    /// `ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))`,
    /// then `.with_safe_default_protocol_versions()`.
    pub fn with_tls(self, config: Arc<rustls::ServerConfig>) -> Server<R, L, R::TlsAcceptor> {
        self.with_acceptor(R::tls_acceptor(config))
    }
}

impl<R: Runtime, L: Listener<R>, A> Server<R, L, A> {
    /// Runs `acceptor`'s handshake on every connection before its session,
    /// in place of the current one (see [`Acceptor`]).
    pub fn with_acceptor<B>(self, acceptor: B) -> Server<R, L, B> {
        Server {
            listener: self.listener,
            acceptor,
            config: self.config,
            cap: self.cap,
            shutdown: self.shutdown,
            proxy: self.proxy,
            observer: self.observer,
            runtime: PhantomData,
        }
    }

    /// Expects every connection to open with a PROXY protocol header (v1
    /// or v2, as HAProxy's `send-proxy`/`send-proxy-v2` write it), read
    /// before anything else, TLS included, and never a byte past it.
    ///
    /// The client it names becomes the session's peer
    /// ([`Connection::peer_addr`](tej_core::Connection::peer_addr)), the
    /// balancer's address its
    /// [`proxy_addr`](tej_core::Connection::proxy_addr). A connection
    /// without a valid header (none, malformed, over
    /// [`DEFAULT_MAX_LEN`](tej_core::proxy::DEFAULT_MAX_LEN) bytes, or not
    /// complete within the
    /// [`handshake_timeout`](SessionConfig::handshake_timeout)) is closed
    /// with its reason logged at debug level and never reaches a handler:
    /// only a balancer may connect. The balancer's own connections (v2
    /// `LOCAL`) and connections closed before their first byte, which is
    /// what health checks do, are closed quietly.
    pub fn with_proxy_protocol(mut self) -> Self {
        self.proxy = Some(tej_core::proxy::DEFAULT_MAX_LEN);
        self
    }

    /// Sets the options of every connection's session, including its
    /// [`handshake_timeout`](SessionConfig::handshake_timeout).
    pub fn with_config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }

    /// Tells `observer` of every connection: accepted, refused at the cap,
    /// failed in its PROXY header or handshake, connected, its traffic,
    /// disconnected and why (see [`Observer`]): the hook for metrics.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Caps the connections open at once (default 10,000), handshakes
    /// included: beyond it a new connection is accepted and closed at once,
    /// and the server serves again when one ends. With the session's bound,
    /// this bounds the server's memory.
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.cap = ConnectionCap::new(max);
        self
    }

    /// The address the server listens on: a [`SocketAddr`](std::net::SocketAddr) for TCP, the
    /// socket's address for a Unix listener.
    ///
    /// # Errors
    ///
    /// The operating system's error, if it cannot tell.
    pub fn local_addr(&self) -> io::Result<L::Addr> {
        self.listener.local_addr()
    }

    /// A handle that shuts this server down gracefully: no new connections
    /// are accepted, handshakes under way are abandoned, each session
    /// finishes the frame it is receiving, flushes what it queued and
    /// closes; then [`serve`](Self::serve) returns.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Accepts connections until shut down, running a handler made by
    /// `new_handler` for each connection whose handshake succeeded;
    /// returns once every connection has ended.
    ///
    /// `new_handler` is called in the connection's task, right after its
    /// handshake (one call at a time), either with no argument or with the
    /// connection's [`ConnectionInfo`] (addresses, transport, TLS details):
    /// `|| handler` or `|info: &ConnectionInfo| handler` (see
    /// [`NewHandler`]). Connections run as tasks on `R`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops accepting (the listener is closed) but
    /// does not end the connections already accepted: each runs on in its
    /// own task until it ends. Trigger the
    /// [`shutdown_handle`](Self::shutdown_handle) to end them gracefully.
    pub async fn serve<F, M>(self, new_handler: F)
    where
        R: PollIo<L::Io> + PollIo<A::Stream>,
        A: Acceptor<R, L::Io>,
        F: NewHandler<M> + Send + 'static,
        F::Handler: Send + 'static,
        M: 'static,
    {
        let Server {
            mut listener,
            acceptor,
            config,
            cap,
            shutdown,
            proxy,
            observer,
            runtime: _,
        } = self;
        let acceptor = Arc::new(acceptor);
        let new_handler = Arc::new(Mutex::new(new_handler));
        // Every connection task holds a sender; the channel closes, and
        // `all_ended` completes, when the last of them has ended.
        let (alive, all_ended) = async_channel::bounded::<Infallible>(1);
        loop {
            let stop = async {
                shutdown.wait().await;
                None
            };
            let accept = async { Some(listener.accept().await) };
            let Some(accepted) = future::or(stop, accept).await else {
                break;
            };
            match accepted {
                Ok((stream, peer)) => {
                    let Some(slot) = cap.admit(&peer) else {
                        if let Some(observer) = &observer {
                            observer.refused(peer);
                        }
                        continue;
                    };
                    if let Some(observer) = &observer {
                        observer.accepted(peer);
                    }
                    let mut info = ConnectionInfo::default();
                    info.peer = peer;
                    listener.describe(&stream, &mut info);
                    let connection = Connection {
                        acceptor: Arc::clone(&acceptor),
                        new_handler: Arc::clone(&new_handler),
                        config: config.clone(),
                        shutdown: shutdown.clone(),
                        proxy,
                        info,
                        _slot: slot,
                        _alive: alive.clone(),
                        observer: observer.clone(),
                        runtime: PhantomData::<fn() -> R>,
                    };
                    let span = connection_span(&connection.info, runtime::name::<R>());
                    R::spawn(connection.run(stream).instrument(span));
                }
                Err(error) => {
                    let Some(pause) = accept::after_accept_error(&error) else {
                        continue;
                    };
                    let stop = async {
                        shutdown.wait().await;
                        true
                    };
                    let backoff = async {
                        runtime::sleep::<R>(pause).await;
                        false
                    };
                    if future::or(stop, backoff).await {
                        break;
                    }
                }
            }
        }
        drop(listener);
        drop(alive);
        // Nothing is ever sent: this returns once the channel has closed.
        let _closed = all_ended.recv().await;
    }
}

/// One accepted connection, owned by its task.
struct Connection<R, A, F> {
    acceptor: Arc<A>,
    new_handler: Arc<Mutex<F>>,
    config: SessionConfig,
    shutdown: ShutdownHandle,
    /// Read a PROXY header of at most this many bytes first.
    proxy: Option<usize>,
    /// What the listener told of the connection; the handshake adds to it.
    info: ConnectionInfo,
    /// The connection's place under the cap, from accept to the end.
    _slot: ConnectionSlot,
    /// Keeps `serve` from returning while this connection lives.
    _alive: async_channel::Sender<Infallible>,
    observer: Option<Arc<dyn Observer>>,
    runtime: PhantomData<fn() -> R>,
}

impl<R: Runtime, A, F> Connection<R, A, F> {
    /// The PROXY header and the acceptor step within the handshake
    /// timeout, then the handler and its session.
    async fn run<S, M>(self, mut stream: S)
    where
        R: PollIo<S> + PollIo<A::Stream>,
        A: Acceptor<R, S>,
        F: NewHandler<M> + Send + 'static,
        F::Handler: Send + 'static,
    {
        let mut info = self.info.clone();
        // Whether a failure is the PROXY header's or the acceptor's.
        let header_read = AtomicBool::new(self.proxy.is_none());
        let steps = async {
            let via = match self.proxy {
                Some(max_len) => {
                    let mut header = HeaderRead::new(max_len, self.info.peer);
                    loop {
                        let n = runtime::read::<R, S>(&mut stream, header.buf()).await?;
                        if let Some(result) = header.filled(n) {
                            break Some(result?);
                        }
                    }
                }
                None => None,
            };
            header_read.store(true, Ordering::Relaxed);
            Ok((self.acceptor.accept(stream).await?, via))
        };
        let handshake = bounded_handshake::<R, _>(steps, &self.config, self.shutdown.wait());
        let (stream, via) = match handshake.await {
            Ok(done) => done,
            Err(error) if crate::proxy::is_health_check(&error) => {
                tracing::debug!(%error, "health check; connection closed");
                if let Some(observer) = &self.observer {
                    observer.health_check(info.peer);
                }
                return;
            }
            Err(error) => {
                let header_read = header_read.load(Ordering::Relaxed);
                if header_read {
                    tracing::info!(%error, "handshake failed; connection closed");
                } else {
                    tracing::info!(%error, "PROXY header refused; connection closed");
                }
                if let Some(observer) = &self.observer {
                    if header_read {
                        observer.handshake_failed(info.peer, &error);
                    } else {
                        observer.proxy_failed(info.peer, &error);
                    }
                }
                return;
            }
        };
        if let Some((peer, proxy)) = via {
            info.peer = peer;
            info.proxy = proxy;
        } else if let Some(peer) = self.acceptor.peer_addr(&stream) {
            info.peer = Some(peer);
        }
        self.acceptor.describe(&stream, &mut info);
        record_handshake(&tracing::Span::current(), &info);
        let peer = info.peer;
        // For the observer, should the handler panic and take the session.
        let panicked_info = self.observer.as_ref().map(|_| info.clone());
        let session = AssertUnwindSafe(async {
            let handler = {
                // A factory that panicked once is still the user's to call.
                let mut new_handler = self
                    .new_handler
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                new_handler.new_handler(&info)
            };
            let session = Session::new(handler, self.config.clone()).with_info(info);
            let observer = self.observer.as_deref();
            if let Some(observer) = observer {
                observer.connected(session.info());
            }
            tracing::info!("connected");
            run_observed::<R, _, _>(stream, session, self.shutdown.clone(), observer).await;
        });
        // The session's `Drop` has not called the handler again; the
        // connection ends alone.
        if session.catch_unwind().await.is_err() {
            tracing::info!(?peer, "a connection's handler panicked; connection dropped");
            if let (Some(observer), Some(info)) = (&self.observer, panicked_info) {
                observer.disconnected(&info, &tej_core::DisconnectReason::Dropped);
            }
        }
    }
}

/// Runs `handshake` within `config`'s handshake timeout, giving up when
/// `shutdown` completes first.
pub(crate) async fn bounded_handshake<R: Runtime, T>(
    handshake: impl Future<Output = io::Result<T>>,
    config: &SessionConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<T> {
    let timeout = config.handshake_timeout;
    let expired = async {
        runtime::sleep::<R>(timeout).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the handshake did not complete within {timeout:?}"),
        ))
    };
    let stopped = async {
        shutdown.await;
        Err(io::Error::other("the server is shutting down"))
    };
    future::or(handshake, future::or(expired, stopped)).await
}
