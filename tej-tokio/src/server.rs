//! The accept loop: one task per connection, its handshake, then one
//! session and one handler.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tej_core::{Handler, Session, SessionConfig};
use tej_net::accept::{self, ConnectionCap, ConnectionSlot};
use tej_net::ShutdownHandle;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio_util::task::TaskTracker;

use crate::acceptor::{Acceptor, Plain};
use crate::driver::run_session;
use crate::listener::Listener;
use crate::proxy;

/// A TEJ server on Tokio, over any [`Listener`] (TCP by default, a Unix
/// socket, your own), with any [`Acceptor`] handshake ([`Plain`] by
/// default; TLS with `with_tls`, feature `tls`).
///
/// Each accepted connection runs in its own task: first its handshake,
/// then a [`Handler`] from the factory given to [`serve`](Self::serve). A
/// connection that fails, or whose handler panics, ends alone.
pub struct Server<L = TcpListener, A = Plain> {
    listener: L,
    acceptor: Arc<A>,
    config: SessionConfig,
    cap: ConnectionCap,
    shutdown: ShutdownHandle,
    /// Read a PROXY header of at most this many bytes first.
    proxy: Option<usize>,
}

impl<L: fmt::Debug, A> fmt::Debug for Server<L, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("acceptor", &std::any::type_name::<A>())
            .field("config", &self.config)
            .field("cap", &self.cap)
            .field("shutdown", &self.shutdown)
            .field("proxy_protocol", &self.proxy.is_some())
            .finish()
    }
}

impl Server {
    /// Binds a TCP listener to `addr` (the first of its addresses that
    /// binds). Port 0 picks a free port: see [`local_addr`](Self::local_addr).
    ///
    /// # Errors
    ///
    /// The error of resolving or binding.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<Server> {
        let listener = accept::listen_tcp(tokio::net::lookup_host(addr).await?)?;
        Ok(Server::from_listener(TcpListener::from_std(listener)?))
    }
}

#[cfg(unix)]
impl Server<tokio::net::UnixListener> {
    /// Binds a Unix domain socket at `path` (backlog 4,096). The socket
    /// file is left in place when the server ends; binding again replaces
    /// such a stale one, never one a live server listens on
    /// ([`tej_net::accept::listen_unix`]).
    ///
    /// # Errors
    ///
    /// The error of binding (`AddrInUse` if a server listens at `path`).
    pub async fn bind_unix(
        path: impl AsRef<std::path::Path>,
    ) -> io::Result<Server<tokio::net::UnixListener>> {
        let listener = tej_net::accept::listen_unix(path.as_ref())?;
        Ok(Server::from_listener(tokio::net::UnixListener::from_std(
            listener,
        )?))
    }
}

impl<L: Listener> Server<L> {
    /// A server on any [`Listener`], bound elsewhere: a Tokio
    /// [`TcpListener`] or [`UnixListener`](tokio::net::UnixListener), or
    /// your own.
    pub fn from_listener(listener: L) -> Server<L> {
        Server {
            listener,
            acceptor: Arc::new(Plain),
            config: SessionConfig::default(),
            cap: ConnectionCap::default(),
            shutdown: ShutdownHandle::new(),
            proxy: None,
        }
    }

    /// Runs a TLS handshake on every connection before its session, with
    /// `config` (whose client-certificate verifier decides whether clients
    /// must present a certificate). The handshake counts under the
    /// connection cap and must end within the session's
    /// [`handshake_timeout`](SessionConfig::handshake_timeout).
    ///
    /// Build `config` with the ring provider, for instance
    /// `ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))`,
    /// then `.with_safe_default_protocol_versions()`.
    #[cfg(feature = "tls")]
    pub fn with_tls(
        self,
        config: Arc<rustls::ServerConfig>,
    ) -> Server<L, tokio_rustls::TlsAcceptor> {
        self.with_acceptor(tokio_rustls::TlsAcceptor::from(config))
    }
}

impl<L: Listener, A> Server<L, A> {
    /// Runs `acceptor`'s handshake on every connection before its session,
    /// in place of the current one (see [`Acceptor`]).
    pub fn with_acceptor<B: Acceptor<L::Io>>(self, acceptor: B) -> Server<L, B> {
        Server {
            listener: self.listener,
            acceptor: Arc::new(acceptor),
            config: self.config,
            cap: self.cap,
            shutdown: self.shutdown,
            proxy: self.proxy,
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
    pub fn with_proxy_protocol(mut self) -> Server<L, A> {
        self.proxy = Some(tej_core::proxy::DEFAULT_MAX_LEN);
        self
    }

    /// Sets the options of every connection's session, including its
    /// [`handshake_timeout`](SessionConfig::handshake_timeout).
    pub fn with_config(mut self, config: SessionConfig) -> Server<L, A> {
        self.config = config;
        self
    }

    /// Caps the connections open at once (default 10,000), handshakes
    /// included: beyond it a new connection is accepted and closed at once,
    /// and the server serves again when one ends. With the session's bound,
    /// this bounds the server's memory.
    pub fn with_max_connections(mut self, max: usize) -> Server<L, A> {
        self.cap = ConnectionCap::new(max);
        self
    }

    /// The address the server listens on: a [`SocketAddr`] for TCP, the
    /// socket's address (its path) for a Unix listener.
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
    /// `new_handler` for each connection whose handshake succeeded; returns
    /// once every connection has ended.
    ///
    /// `new_handler` is called in the connection's task, right after its
    /// handshake (one call at a time).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops accepting (the listener is closed) but
    /// does not end the connections already accepted: each runs on in its
    /// own task until it ends. Trigger the
    /// [`shutdown_handle`](Self::shutdown_handle) to end them gracefully.
    pub async fn serve<F, H>(self, new_handler: F)
    where
        A: Acceptor<L::Io>,
        F: FnMut() -> H + Send + 'static,
        H: Handler + Send + 'static,
    {
        let Server {
            mut listener,
            acceptor,
            config,
            cap,
            shutdown,
            proxy,
        } = self;
        let new_handler = Arc::new(Mutex::new(new_handler));
        let connections = TaskTracker::new();
        let mut stop = shutdown.wait();
        loop {
            let accepted = tokio::select! {
                () = &mut stop => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let Some(slot) = cap.admit(&peer) else {
                        continue;
                    };
                    connections.spawn(serve_connection(
                        stream,
                        peer,
                        slot,
                        Arc::clone(&acceptor),
                        Arc::clone(&new_handler),
                        config.clone(),
                        shutdown.clone(),
                        proxy,
                    ));
                }
                Err(error) => {
                    if let Some(pause) = accept::after_accept_error(&error) {
                        tokio::select! {
                            () = &mut stop => break,
                            () = tokio::time::sleep(pause) => {}
                        }
                    }
                }
            }
        }
        drop(listener);
        connections.close();
        connections.wait().await;
    }
}

/// One connection, in its own task: the PROXY header and the handshake
/// within the timeout, then the handler and its session. The slot is held
/// throughout.
#[allow(clippy::too_many_arguments)]
async fn serve_connection<S, A, F, H>(
    mut stream: S,
    peer: Option<SocketAddr>,
    _slot: ConnectionSlot,
    acceptor: Arc<A>,
    new_handler: Arc<Mutex<F>>,
    config: SessionConfig,
    shutdown: ShutdownHandle,
    proxy: Option<usize>,
) where
    S: tokio::io::AsyncRead + Unpin,
    A: Acceptor<S>,
    F: FnMut() -> H,
    H: Handler,
{
    let handshake = async {
        let via = match proxy {
            Some(max_len) => Some(proxy::read_header(&mut stream, max_len, peer).await?),
            None => None,
        };
        Ok::<_, io::Error>((acceptor.accept(stream).await?, via))
    };
    let handshake = tokio::time::timeout(config.handshake_timeout, handshake);
    let (stream, via) = tokio::select! {
        biased;
        done = handshake => match done {
            Ok(Ok(done)) => done,
            Ok(Err(error)) if tej_net::proxy::is_health_check(&error) => {
                tracing::debug!(?peer, %error, "health check; connection closed");
                return;
            }
            Ok(Err(error)) => {
                tracing::debug!(?peer, %error, "handshake failed; connection closed");
                return;
            }
            Err(_) => {
                tracing::debug!(
                    ?peer,
                    timeout = ?config.handshake_timeout,
                    "handshake timed out; connection closed"
                );
                return;
            }
        },
        () = shutdown.wait() => {
            tracing::debug!(?peer, "shutting down; handshake abandoned");
            return;
        }
    };
    let peer = acceptor.peer_addr(&stream).or(peer);
    let handler = {
        // A factory that panicked once is still the user's to call.
        let mut new_handler = new_handler.lock().unwrap_or_else(PoisonError::into_inner);
        (*new_handler)()
    };
    let mut session = Session::new(handler, config);
    if let Some((peer, proxy)) = via {
        session = session.with_addresses(peer, proxy);
    } else if let Some(peer) = peer {
        session = session.with_peer(peer);
    }
    run_session(stream, session, shutdown).await;
}
