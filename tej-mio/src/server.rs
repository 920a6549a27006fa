//! The server: a listener and its connections on one mio loop.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
#[cfg(unix)]
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use mio::{Poll, Token};
use tej_core::SessionConfig;
use tej_net::accept::{self, DEFAULT_MAX_CONNECTIONS};
use tej_net::{NewHandler, Observer, ShutdownHandle};

use crate::driver::{AnyListener, Driver, Erased, Listener};
use crate::event_loop;
use crate::proxy::ProxyListener;

/// A TEJ server on a mio event loop, over TCP, a Unix socket or any
/// [`Listener`], with TLS on top if asked (`with_tls`,
/// feature `tls`).
///
/// [`run`](Self::run) blocks the calling thread: it accepts connections and
/// runs every one of them on that thread, each with its own [`Handler`](tej_core::Handler)
/// from the factory. Handlers need not be `Send`. A connection that fails,
/// or whose handler panics, ends alone.
pub struct Server {
    poll: Poll,
    waker: Arc<mio::Waker>,
    listener: AnyListener,
    config: SessionConfig,
    max_connections: usize,
    shutdown: ShutdownHandle,
    /// Read a PROXY header first on every connection.
    proxy: bool,
    /// Told of every connection, for metrics.
    observer: Option<Arc<dyn Observer>>,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("Server");
        debug
            .field("local_addr", &self.listener.local_addr().ok())
            .field("local_path", &self.listener.local_path())
            .field("max_connections", &self.max_connections)
            .field("proxy_protocol", &self.proxy);
        #[cfg(feature = "tls")]
        debug.field("tls", &self.tls.is_some());
        debug.finish_non_exhaustive()
    }
}

impl Server {
    /// Binds to `addr` (the first of its addresses that binds), with a
    /// backlog of 1,024 pending connections. Port 0 picks a free port: see
    /// [`local_addr`](Self::local_addr).
    ///
    /// # Errors
    ///
    /// The error of resolving or binding.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<Server> {
        let listener = accept::listen_tcp(addr.to_socket_addrs()?)?;
        Server::from_listener(mio::net::TcpListener::from_std(listener))
    }

    /// Binds a Unix socket at `path` (backlog 4,096). The socket file is
    /// left in place when the server ends; binding again replaces such a
    /// stale one, never one a live server listens on
    /// ([`tej_net::accept::listen_unix`]).
    ///
    /// # Errors
    ///
    /// The error of binding (`AddrInUse` if a server listens at `path`).
    #[cfg(unix)]
    pub fn bind_unix(path: impl AsRef<Path>) -> io::Result<Server> {
        let listener = tej_net::accept::listen_unix(path.as_ref())?;
        Server::from_listener(mio::net::UnixListener::from_std(listener))
    }

    /// A server on a listener made elsewhere: mio's `TcpListener` or
    /// `UnixListener` (a `std` one converts with their `from_std`, after
    /// `set_nonblocking(true)`), or any [`Listener`].
    ///
    /// # Errors
    ///
    /// The error of creating the poll.
    pub fn from_listener<L: Listener + 'static>(listener: L) -> io::Result<Server> {
        let (poll, waker) = event_loop::new_poll()?;
        Ok(Server {
            poll,
            waker,
            listener: Box::new(Erased(listener)),
            config: SessionConfig::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown: ShutdownHandle::new(),
            proxy: false,
            observer: None,
            #[cfg(feature = "tls")]
            tls: None,
        })
    }

    /// Sets the options of every connection's session (among them the
    /// [`handshake_timeout`](SessionConfig::handshake_timeout) of TLS).
    pub fn with_config(mut self, config: SessionConfig) -> Server {
        self.config = config;
        self
    }

    /// Caps the connections open at once (default 10,000): beyond it a
    /// new connection is accepted and closed at once, and the server serves
    /// again when one ends. With the session's bound, this bounds the
    /// server's memory. A connection still in its TLS handshake counts.
    pub fn with_max_connections(mut self, max: usize) -> Server {
        self.max_connections = max;
        self
    }

    /// Serves every connection over TLS with `config` (feature `tls`):
    /// whether client certificates are required, and which, is the
    /// config's to say. The handshake must complete within the session's
    /// [`handshake_timeout`](SessionConfig::handshake_timeout) from accept,
    /// or the connection is closed; no handler is made before it is done.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, config: Arc<rustls::ServerConfig>) -> Server {
        self.tls = Some(config);
        self
    }

    /// Expects every connection to open with a PROXY protocol header (v1
    /// or v2, as HAProxy's `send-proxy`/`send-proxy-v2` write it), read
    /// in the event loop before anything else, TLS included, and never a
    /// byte past it (see [`proxy`](crate::proxy)).
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
    pub fn with_proxy_protocol(mut self) -> Server {
        self.proxy = true;
        self
    }

    /// Tells `observer` of every connection: accepted, refused at the cap,
    /// failed in its handshake, connected, its traffic, disconnected and
    /// why (see [`Observer`]): the hook for metrics.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Server {
        self.observer = Some(observer);
        self
    }

    /// Stops this server with `shutdown` instead of a handle of its own:
    /// one [`ShutdownHandle::new`] can stop several servers and clients.
    pub fn with_shutdown(mut self, shutdown: ShutdownHandle) -> Server {
        self.shutdown = shutdown;
        self
    }

    /// The IP address the server listens on.
    ///
    /// # Errors
    ///
    /// The operating system's error, if it cannot tell; `Unsupported` on
    /// a Unix socket, which has a [`local_path`](Self::local_path) instead.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The path of the Unix socket the server listens on, if it is one
    /// bound to a path.
    pub fn local_path(&self) -> Option<PathBuf> {
        self.listener.local_path()
    }

    /// A handle that shuts this server down gracefully from any thread:
    /// it accepts no more connections, each connection finishes the frame
    /// it is receiving, flushes what it queued and closes (a connection
    /// still in its handshake is closed), then [`run`](Self::run) returns.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Accepts connections and runs them on this thread until shut down,
    /// with a handler made by `new_handler` for each (once its TLS
    /// handshake, if any, is done); returns once every connection has ended.
    /// `new_handler` is `|| handler` or `|info: &ConnectionInfo| handler`
    /// (see [`NewHandler`]), given the connection's addresses, transport
    /// and TLS details.
    ///
    /// # Errors
    ///
    /// The error of registering the listener or of polling.
    pub fn run<F, M>(mut self, new_handler: F) -> io::Result<()>
    where
        F: NewHandler<M>,
    {
        // The header comes first on the wire: PROXY under TLS.
        let mut listener = self.listener;
        if self.proxy {
            listener = Box::new(Erased(ProxyListener::new(listener)));
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls {
            listener = Box::new(Erased(crate::tls::TlsListener::new(listener, tls)));
        }
        let tokens = Token(1)..Token(usize::MAX);
        let mut driver = Driver::<F::Handler>::new(tokens, Arc::clone(&self.waker))
            .listen_any(self.poll.registry(), listener, self.config, new_handler)?
            .with_max_connections(self.max_connections);
        if let Some(observer) = self.observer {
            driver = driver.with_observer(observer);
        }
        event_loop::run(&mut self.poll, &mut driver, &self.shutdown)
    }
}
