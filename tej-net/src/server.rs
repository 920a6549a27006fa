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
use std::time::Duration;

use futures_lite::{future, FutureExt};
use tej_core::{ConnectionInfo, Session, SessionConfig};
use tracing::Instrument;

use crate::accept::{self, Accept, ConnectionCap, ConnectionSlot};
use crate::connection::pair;
use crate::incoming::DEFAULT_BUFFER;
use crate::listener::{Acceptor, Listener, Plain};
use crate::new_handler::NewHandler;
use crate::observe::{connection_span, handshake_ended, opened, record_handshake, Observer};
use crate::proxy::HeaderRead;
use crate::run::run_observed;
use crate::runtime::{self, PollIo, Resolve, Runtime};
use crate::{AsyncConnection, ShutdownHandle};

/// How long connections may take to finish after a shutdown, by default.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

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
    acceptor: Arc<A>,
    /// Shared by every connection's task until its session takes a copy.
    config: Arc<SessionConfig>,
    /// What an [`AsyncConnection`] buffers for its consumer.
    incoming_buffer: usize,
    /// How long connections may take to finish after a shutdown.
    drain_timeout: Option<Duration>,
    /// Connections through their handshake, for [`accept`](Self::accept).
    ready: Option<(
        async_channel::Sender<AsyncConnection>,
        async_channel::Receiver<AsyncConnection>,
    )>,
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
            acceptor: Arc::new(Plain),
            config: Arc::default(),
            incoming_buffer: DEFAULT_BUFFER,
            drain_timeout: Some(DEFAULT_DRAIN_TIMEOUT),
            ready: None,
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
            acceptor: Arc::new(acceptor),
            config: self.config,
            incoming_buffer: self.incoming_buffer,
            drain_timeout: self.drain_timeout,
            ready: None,
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
        self.config = Arc::new(config);
        self
    }

    /// Tells `observer` of every connection: accepted, refused at the cap,
    /// failed in its PROXY header or handshake, connected, its traffic,
    /// disconnected and why (see [`Observer`]): the hook for metrics.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Sets how many bytes of file bodies an [`AsyncConnection`] buffers
    /// for its consumer (default 256 KiB): beyond them the session reads
    /// nothing until the consumer reads, and this (plus one frame) is
    /// what the consumer adds to the connection's memory bound.
    pub fn with_incoming_buffer(mut self, bytes: usize) -> Self {
        self.incoming_buffer = bytes;
        self
    }

    /// How long connections may take to finish after a shutdown (default
    /// 30 s; `None` waits for ever): then what remains is cut, the
    /// sessions dropped (their handlers see
    /// [`DisconnectReason::Dropped`](tej_core::DisconnectReason::Dropped))
    /// and their streams closed.
    pub fn with_drain_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.drain_timeout = timeout;
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
    /// finishes the frame it is receiving and reads no more; a handler's
    /// connection then flushes what it queued and closes, an
    /// [`AsyncConnection`]'s ends its stream and closes once the code
    /// serving it returns (its replies still go out). What is still open
    /// after the [drain timeout](Self::with_drain_timeout) is cut. Then
    /// [`serve`](Self::serve) returns.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Accepts connections until shut down, running a handler made by
    /// `new_handler` for each connection whose handshake succeeded;
    /// returns once every connection has ended.
    ///
    /// `new_handler` is called in the connection's task, right after its
    /// handshake (one call at a time). Connections run as tasks on `R`.
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
        let new_handler = Arc::new(Mutex::new(new_handler));
        self.serve_with(move |open: Handshaken<A::Stream>| {
            let peer = open.info.peer;
            let observer = open.observer.clone();
            // For the observer, should the handler panic and take the session.
            let panicked_info = observer.as_ref().map(|_| Arc::clone(&open.info));
            // Called here, in the connection's task; a panic in the factory
            // ends this connection alone, as one in the handler does.
            let made = std::panic::catch_unwind(AssertUnwindSafe(|| {
                // A factory that panicked once is still the user's to call.
                let handler = new_handler
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .new_handler(&open.info);
                open.session(handler)
            }));
            // Boxed: moved into the block below and awaited there, the
            // session's future would take its room twice in the task.
            let run = made.ok().map(|session| {
                Box::pin(AssertUnwindSafe(open.run::<R, _>(session)).catch_unwind())
            });
            async move {
                let ended = match run {
                    Some(run) => run.await.is_ok(),
                    None => false,
                };
                // The session's `Drop` has not called the handler again; the
                // connection ends alone.
                if !ended {
                    tracing::info!(?peer, "a connection's handler panicked; connection dropped");
                    if let (Some(observer), Some(info)) = (observer, panicked_info) {
                        observer.disconnected(&info, &tej_core::DisconnectReason::Dropped);
                    }
                }
            }
        })
        .await;
    }

    /// Accepts connections until shut down, calling `serve` with each one
    /// whose handshake succeeded, as an [`AsyncConnection`]: its frames a
    /// `Stream`, its files `AsyncRead`s, its pace the consumer's. Returns
    /// once every connection has ended.
    ///
    /// The future `serve` returns runs in the connection's task beside its
    /// session; when it returns, the connection closes gracefully (what it
    /// queued is still sent). A panic in it ends that connection alone.
    ///
    /// ```no_run
    /// # use tej_net::{runtime::{PollIo, Runtime}, Listener, Server};
    /// # async fn demo<R: Runtime + PollIo<L::Io>, L: Listener<R>>(server: Server<R, L>) {
    /// use futures_lite::StreamExt;
    ///
    /// server
    ///     .serve_connections(|mut conn| async move {
    ///         while let Some(Ok(frame)) = conn.next().await {
    ///             let Ok(message) = frame.message().await else { break };
    ///             let reply = tej_core::Frame::message(message.unwrap_or_default());
    ///             if conn.sender().send(reply).await.is_err() {
    ///                 break;
    ///             }
    ///         }
    ///     })
    ///     .await;
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As [`serve`](Self::serve).
    pub async fn serve_connections<F, Fut>(self, serve: F)
    where
        R: PollIo<L::Io> + PollIo<A::Stream>,
        A: Acceptor<R, L::Io>,
        F: Fn(AsyncConnection) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let serve = Arc::new(serve);
        let buffer = self.incoming_buffer;
        self.serve_with(move |open: Handshaken<A::Stream>| {
            let serve = Arc::clone(&serve);
            async move {
                let peer = open.info.peer;
                let (session, connection) = open.pair(buffer);
                let run = open.run::<R, _>(session);
                let user = AssertUnwindSafe(serve(connection)).catch_unwind();
                let (_, outcome) = future::zip(run, user).await;
                if outcome.is_err() {
                    tracing::debug!(?peer, "a connection's serving future panicked");
                }
            }
        })
        .await;
    }

    /// The next connection whose handshake succeeded, as an
    /// [`AsyncConnection`]; `None` once the server is shut down.
    ///
    /// Between calls nothing new is accepted (the listener's backlog holds
    /// new connections), but handshakes under way go on in their tasks,
    /// and so do the connections handed out: each runs in a task of its
    /// own until it ends, or closes gracefully when dropped.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a connection whose handshake completed meanwhile is
    /// kept for the next call.
    pub async fn accept(&mut self) -> Option<AsyncConnection>
    where
        R: PollIo<L::Io> + PollIo<A::Stream>,
        A: Acceptor<R, L::Io>,
    {
        let (handed, ready) = self
            .ready
            .get_or_insert_with(async_channel::unbounded)
            .clone();
        let buffer = self.incoming_buffer;
        loop {
            let handshaken = async { Ok(ready.recv().await) };
            let accepted = async { Err(self.next_stream().await) };
            match future::or(handshaken, accepted).await {
                Ok(Ok(connection)) => return Some(connection),
                // (Never: this side holds a sender.)
                Ok(Err(_)) => return None,
                Err(None) => return None,
                Err(Some((stream, info, slot))) => {
                    let handed = handed.clone();
                    let start = move |open: Handshaken<A::Stream>| async move {
                        let (session, connection) = open.pair(buffer);
                        // Nobody to take it once the server is dropped: it
                        // is dropped here, and closes.
                        if handed.try_send(connection).is_ok() {
                            open.run::<R, _>(session).await;
                        }
                    };
                    let span = connection_span(&info, runtime::name::<R>());
                    R::spawn(
                        self.connection(start, info, slot, None)
                            .run(stream)
                            .instrument(span),
                    );
                }
            }
        }
    }

    /// Accepts until shut down, running `start` in each connection's task
    /// once its handshake succeeded; returns once every connection has ended.
    async fn serve_with<F, Fut>(mut self, start: F)
    where
        R: PollIo<L::Io> + PollIo<A::Stream>,
        A: Acceptor<R, L::Io>,
        F: Fn(Handshaken<A::Stream>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let start = Arc::new(start);
        // Every connection task holds a sender; the channel closes, and
        // `all_ended` completes, when the last of them has ended.
        let (alive, all_ended) = async_channel::bounded::<Infallible>(1);
        while let Some((stream, info, slot)) = self.next_stream().await {
            let start = Arc::clone(&start);
            let start = move |open| start(open);
            let span = connection_span(&info, runtime::name::<R>());
            let connection = self.connection(start, info, slot, Some(alive.clone()));
            R::spawn(connection.run(stream).instrument(span));
        }
        drop(self);
        drop(alive);
        // Nothing is ever sent: this returns once the channel has closed.
        let _closed = all_ended.recv().await;
    }

    /// The next connection accepted and admitted under the cap, with what
    /// the listener tells of it and its place under the cap; `None` once
    /// shut down. An accept error that is the system's (out of file
    /// descriptors) pauses accepting a moment.
    async fn next_stream(&mut self) -> Option<(L::Io, ConnectionInfo, ConnectionSlot)> {
        loop {
            let stop = async {
                self.shutdown.wait().await;
                None
            };
            let accept = async { Some(self.listener.accept().await) };
            let accepted = future::or(stop, accept).await?;
            match self.cap.on_accept(accepted, self.observer.as_deref()) {
                Accept::Serve(stream, peer, slot) => {
                    let mut info = ConnectionInfo::default();
                    info.peer = peer;
                    self.listener.describe(&stream, &mut info);
                    return Some((stream, info, slot));
                }
                Accept::Next => {}
                Accept::Pause(pause) => {
                    let stop = async {
                        self.shutdown.wait().await;
                        true
                    };
                    let backoff = async {
                        runtime::sleep::<R>(pause).await;
                        false
                    };
                    if future::or(stop, backoff).await {
                        return None;
                    }
                }
            }
        }
    }

    /// One accepted connection's task state, `start` to run after its handshake.
    fn connection<F>(
        &self,
        start: F,
        info: ConnectionInfo,
        slot: ConnectionSlot,
        alive: Option<async_channel::Sender<Infallible>>,
    ) -> Connection<R, A, F> {
        Connection {
            acceptor: Arc::clone(&self.acceptor),
            start,
            config: Arc::clone(&self.config),
            shutdown: self.shutdown.clone(),
            proxy: self.proxy,
            drain_timeout: self.drain_timeout,
            observer: self.observer.clone(),
            info: Box::new(info),
            _slot: slot,
            _alive: alive,
            runtime: PhantomData,
        }
    }
}

/// A connection through its handshake: what runs its session gets this.
/// (Its shared parts are behind `Arc`s, which keep the connection's task
/// small: a field moved out of a future's captures still takes its room.)
struct Handshaken<S> {
    stream: S,
    /// Addresses, transport and what the TLS handshake agreed on.
    info: Arc<ConnectionInfo>,
    config: Arc<SessionConfig>,
    shutdown: ShutdownHandle,
    observer: Option<Arc<dyn Observer>>,
}

impl<S> Handshaken<S> {
    /// A session for `handler` on this connection.
    fn session<H: tej_core::Handler>(&self, handler: H) -> Session<H> {
        Session::with_shared_config(handler, Arc::clone(&self.config))
            .with_info(ConnectionInfo::clone(&self.info))
    }

    /// A session with the stream handler, and the [`AsyncConnection`] that
    /// is its other end, buffering `buffer` bytes for its consumer.
    fn pair(&self, buffer: usize) -> (Session<crate::incoming::StreamHandler>, AsyncConnection) {
        pair(
            buffer,
            Arc::clone(&self.config),
            ConnectionInfo::clone(&self.info),
        )
    }

    /// Runs `session` over the stream, telling the observer (if any) that
    /// it is connected, of its traffic and of its end.
    // Not an async fn, which would keep the session and the stream once
    // more beside `run_observed`'s future.
    fn run<R, H>(self, session: Session<H>) -> impl Future<Output = tej_core::DisconnectReason>
    where
        R: Runtime + PollIo<S>,
        H: tej_core::Handler,
    {
        opened(self.observer.as_deref(), session.info());
        run_observed::<R, S, H>(self.stream, session, self.shutdown, self.observer)
    }
}

/// One accepted connection, owned by its task.
struct Connection<R, A, F> {
    acceptor: Arc<A>,
    /// Runs the session once the handshake succeeded.
    start: F,
    config: Arc<SessionConfig>,
    shutdown: ShutdownHandle,
    /// Read a PROXY header of at most this many bytes first.
    proxy: Option<usize>,
    /// How long the connection may take to finish after a shutdown.
    drain_timeout: Option<Duration>,
    observer: Option<Arc<dyn Observer>>,
    /// What the listener told of the connection; the handshake adds to it.
    info: Box<ConnectionInfo>,
    /// The connection's place under the cap, from accept to the end.
    _slot: ConnectionSlot,
    /// Keeps `serve` from returning while this connection lives.
    _alive: Option<async_channel::Sender<Infallible>>,
    runtime: PhantomData<fn() -> R>,
}

impl<R: Runtime, A, F> Connection<R, A, F> {
    /// The PROXY header and the acceptor step within the handshake
    /// timeout, then `start`.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would keep `self` once more in the task"
    )]
    fn run<S, Fut>(self, mut stream: S) -> impl Future<Output = ()>
    where
        R: PollIo<S> + PollIo<A::Stream>,
        A: Acceptor<R, S>,
        F: FnOnce(Handshaken<A::Stream>) -> Fut,
        Fut: Future<Output = ()>,
    {
        async move {
            // Held to the end of the task: an async block captures only the
            // fields it names, and would drop these guards at the spawn.
            let _held = (self._slot, self._alive);
            let mut info = self.info;
            // Whether a failure is the PROXY header's or the acceptor's.
            let header_read = AtomicBool::new(self.proxy.is_none());
            let steps = async {
                let via = match self.proxy {
                    Some(max_len) => {
                        let mut header = HeaderRead::new(max_len, info.peer);
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
            // Boxed, and freed once done: in place, its state would size
            // the task for the connection's whole life.
            let handshake = Box::pin(bounded_handshake::<R, _>(
                steps,
                &self.config,
                self.shutdown.wait(),
            ));
            let (stream, via) = match handshake.await {
                Ok(done) => done,
                Err(error) => {
                    let in_header = !header_read.load(Ordering::Relaxed);
                    handshake_ended(self.observer.as_deref(), info.peer, &error, in_header);
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
            let shutdown = self.shutdown.clone();
            let drain_timeout = self.drain_timeout;
            let peer = info.peer;
            let info = Arc::<ConnectionInfo>::from(info);
            // What a cut connection is reported with; its session cannot.
            let cut_report = self
                .observer
                .clone()
                .map(|observer| (observer, Arc::clone(&info)));
            let open = Handshaken {
                stream,
                info,
                config: self.config,
                shutdown: self.shutdown,
                observer: self.observer,
            };
            let run = async {
                (self.start)(open).await;
                false
            };
            let cut = async {
                shutdown.wait().await;
                match drain_timeout {
                    Some(timeout) => runtime::sleep::<R>(timeout).await,
                    None => std::future::pending().await,
                }
                true
            };
            if future::or(run, cut).await {
                tracing::debug!(?peer, "connection cut at the drain timeout");
                if let Some((observer, info)) = cut_report {
                    observer.disconnected(&info, &tej_core::DisconnectReason::Dropped);
                }
            }
        }
    }
}

/// Runs `handshake` within `config`'s handshake timeout, giving up when
/// `shutdown` completes first.
// Not an async fn, which would keep `handshake` once more beside the
// future it is moved into.
pub(crate) fn bounded_handshake<R: Runtime, T>(
    handshake: impl Future<Output = io::Result<T>>,
    config: &SessionConfig,
    shutdown: impl Future<Output = ()>,
) -> impl Future<Output = io::Result<T>> {
    let timeout = config.handshake_timeout;
    let expired = async move {
        runtime::sleep::<R>(timeout).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the handshake did not complete within {timeout:?}"),
        ))
    };
    let stopped = async move {
        shutdown.await;
        Err(io::Error::other("the server is shutting down"))
    };
    future::or(handshake, future::or(expired, stopped))
}
