//! The accept loop, written once for every runtime, listener and
//! acceptor: one task, one acceptor step and one session per connection.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
#[cfg(unix)]
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use async_io::Timer;
use futures_io::AsyncRead;
use futures_lite::{future, FutureExt};
use tej_core::{Handler, Session, SessionConfig};
use tej_net::accept::{self, ConnectionCap, ConnectionSlot};
use tej_net::ShutdownHandle;

use crate::acceptor::{Acceptor, ServerAcceptor};
use crate::driver::run_session;
use crate::proxy;
use crate::runtime::Runtime;
use crate::Listener;

/// A TEJ server on runtime `R`, accepting from listener `L`, each
/// connection passed through acceptor `A` (plain or TLS by default).
///
/// Name it through its faces: `tej_async_std::Server` on async-std and
/// `tej_async_std::smol::Server` on smol.
///
/// Each accepted connection runs in its own task: first the acceptor step
/// (the TLS handshake), bounded by
/// [`SessionConfig::handshake_timeout`]; then a [`Handler`] from the
/// factory given to [`serve`](Self::serve) is made and the session runs.
/// A connection that fails, or whose handler panics, ends alone.
pub struct Server<R: Runtime, L = <R as Runtime>::TcpListener, A = ServerAcceptor> {
    listener: L,
    acceptor: A,
    config: SessionConfig,
    cap: ConnectionCap,
    shutdown: ShutdownHandle,
    /// Read a PROXY header of at most this many bytes first.
    proxy: Option<usize>,
    runtime: PhantomData<fn() -> R>,
}

impl<R: Runtime, L, A: std::fmt::Debug> std::fmt::Debug for Server<R, L, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("acceptor", &self.acceptor)
            .field("config", &self.config)
            .field("cap", &self.cap)
            .field("shutdown", &self.shutdown)
            .field("proxy_protocol", &self.proxy.is_some())
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> Server<R> {
    /// A server on a TCP listener bound to the first of `addrs` that binds.
    pub(crate) fn bind_addrs(addrs: impl IntoIterator<Item = SocketAddr>) -> io::Result<Self> {
        let listener = accept::listen_tcp(addrs)?;
        Ok(Server::from_listener(R::tcp_listener(listener)?))
    }
}

#[cfg(unix)]
impl<R: Runtime> Server<R, R::UnixListener> {
    /// Binds a Unix socket at `path` (backlog 4,096). The socket file is
    /// left in place when the server ends; binding again replaces such a
    /// stale one, never one a live server listens on
    /// ([`tej_net::accept::listen_unix`]).
    ///
    /// # Errors
    ///
    /// The error of binding (`AddrInUse` if a server listens at `path`).
    pub fn bind_unix(path: impl AsRef<Path>) -> io::Result<Self> {
        Ok(Server::from_listener(R::bind_unix(
            path.as_ref().to_path_buf(),
        )?))
    }
}

impl<R: Runtime, L: Listener> Server<R, L> {
    /// A server on any [`Listener`]: one bound elsewhere, a Unix socket,
    /// a listener of your own.
    pub fn from_listener(listener: L) -> Self {
        Server {
            listener,
            acceptor: ServerAcceptor::Plain,
            config: SessionConfig::default(),
            cap: ConnectionCap::default(),
            shutdown: ShutdownHandle::new(),
            proxy: None,
            runtime: PhantomData,
        }
    }

    /// Serves TLS: each connection completes a rustls handshake with
    /// `config` (within [`SessionConfig::handshake_timeout`]) before its
    /// handler is made. Client certificates are verified as `config` says.
    /// The handshake runs in the connection's task and counts under the
    /// connection cap.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.acceptor = ServerAcceptor::Tls(futures_rustls::TlsAcceptor::from(config));
        self
    }
}

impl<R: Runtime, L: Listener, A: Acceptor<L::Io>> Server<R, L, A> {
    /// Replaces the acceptor step every connection goes through before its
    /// session starts (for a preamble of your own).
    pub fn with_acceptor<B: Acceptor<L::Io>>(self, acceptor: B) -> Server<R, L, B> {
        Server {
            listener: self.listener,
            acceptor,
            config: self.config,
            cap: self.cap,
            shutdown: self.shutdown,
            proxy: self.proxy,
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

    /// Sets the options of every connection's session (and the handshake
    /// timeout).
    pub fn with_config(mut self, config: SessionConfig) -> Self {
        self.config = config;
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

    /// The IP address the server listens on.
    ///
    /// # Errors
    ///
    /// The operating system's error, or `Unsupported` on a Unix socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle that shuts this server down gracefully: no new connections;
    /// handshakes under way are dropped; each session finishes the frame it
    /// is receiving, flushes what it queued and closes.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Accepts connections until shut down, running a handler made by
    /// `new_handler` for each connection once its acceptor step succeeded;
    /// returns once every connection has ended.
    ///
    /// Connections run as tasks on the runtime `R`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops accepting (the listener is closed) but
    /// does not end the connections already accepted: each runs on in its
    /// own task until it ends. Trigger the
    /// [`shutdown_handle`](Self::shutdown_handle) to end them gracefully.
    pub async fn serve<F, H>(self, new_handler: F)
    where
        F: FnMut() -> H + Send + 'static,
        H: Handler + Send + 'static,
    {
        let Server {
            listener,
            acceptor,
            config,
            cap,
            shutdown,
            proxy,
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
                        continue;
                    };
                    let connection = Connection {
                        acceptor: Arc::clone(&acceptor),
                        new_handler: Arc::clone(&new_handler),
                        config: config.clone(),
                        shutdown: shutdown.clone(),
                        proxy,
                        peer,
                        _slot: slot,
                        _alive: alive.clone(),
                    };
                    R::spawn(connection.run(stream));
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
                        Timer::after(pause).await;
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
struct Connection<A, F> {
    acceptor: Arc<A>,
    new_handler: Arc<Mutex<F>>,
    config: SessionConfig,
    shutdown: ShutdownHandle,
    /// Read a PROXY header of at most this many bytes first.
    proxy: Option<usize>,
    peer: Option<SocketAddr>,
    /// The connection's place under the cap, from accept to the end.
    _slot: ConnectionSlot,
    /// Keeps `serve` from returning while this connection lives.
    _alive: async_channel::Sender<Infallible>,
}

impl<A, F> Connection<A, F> {
    /// The PROXY header and the acceptor step within the handshake
    /// timeout, then the session.
    async fn run<S, H>(self, mut stream: S)
    where
        S: AsyncRead + Unpin,
        A: Acceptor<S>,
        F: FnMut() -> H + Send + 'static,
        H: Handler + Send + 'static,
    {
        let steps = async {
            let via = match self.proxy {
                Some(max_len) => Some(proxy::read_header(&mut stream, max_len, self.peer).await?),
                None => None,
            };
            Ok((self.acceptor.accept(stream).await?, via))
        };
        let handshake = bounded_handshake(steps, &self.config, self.shutdown.wait());
        let (stream, via) = match handshake.await {
            Ok(done) => done,
            Err(error) if tej_net::proxy::is_health_check(&error) => {
                tracing::debug!(peer = ?self.peer, %error, "health check; connection closed");
                return;
            }
            Err(error) => {
                tracing::debug!(peer = ?self.peer, %error, "connection closed before its session");
                return;
            }
        };
        let session = AssertUnwindSafe(async {
            let handler = {
                let mut new_handler = self
                    .new_handler
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                (*new_handler)()
            };
            let mut session = Session::new(handler, self.config.clone());
            if let Some((peer, proxy)) = via {
                session = session.with_addresses(peer, proxy);
            } else if let Some(peer) = self.peer {
                session = session.with_peer(peer);
            }
            run_session(stream, session, self.shutdown.clone()).await;
        });
        if session.catch_unwind().await.is_err() {
            tracing::debug!(peer = ?self.peer, "a connection's handler panicked");
        }
    }
}

/// Runs `handshake` within `config`'s handshake timeout, giving up when
/// `shutdown` completes first.
pub(crate) async fn bounded_handshake<S>(
    handshake: impl Future<Output = io::Result<S>>,
    config: &SessionConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<S> {
    let timeout = config.handshake_timeout;
    let expired = async {
        Timer::after(timeout).await;
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
