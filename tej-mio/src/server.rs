//! The server: a listener and its connections on one mio loop.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use mio::net::TcpListener;
use mio::{Poll, Token};
use tej_core::accept::{self, DEFAULT_MAX_CONNECTIONS};
use tej_core::{Handler, SessionConfig};

use crate::driver::Driver;
use crate::event_loop::{self, ShutdownHandle};

/// A TEJ server on a mio event loop.
///
/// [`run`](Self::run) blocks the calling thread: it accepts connections and
/// runs every one of them on that thread, each with its own [`Handler`]
/// from the factory. Handlers need not be `Send`. A connection that fails,
/// or whose handler panics, ends alone.
#[derive(Debug)]
pub struct Server {
    poll: Poll,
    listener: TcpListener,
    config: SessionConfig,
    max_connections: usize,
    shutdown: ShutdownHandle,
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
        Server::from_listener(accept::listen_tcp(addr.to_socket_addrs()?)?)
    }

    /// A server on a listener bound elsewhere.
    ///
    /// # Errors
    ///
    /// The error of making the listener non-blocking or of creating the poll.
    pub fn from_listener(listener: std::net::TcpListener) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        let poll = Poll::new()?;
        let shutdown = ShutdownHandle::new(&poll)?;
        Ok(Server {
            poll,
            listener: TcpListener::from_std(listener),
            config: SessionConfig::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown,
        })
    }

    /// Sets the options of every connection's session.
    pub fn with_config(mut self, config: SessionConfig) -> Server {
        self.config = config;
        self
    }

    /// Caps the connections open at once (default 10,000): beyond it a
    /// new connection is accepted and closed at once, and the server serves
    /// again when one ends. With the session's bound, this bounds the
    /// server's memory.
    pub fn with_max_connections(mut self, max: usize) -> Server {
        self.max_connections = max;
        self
    }

    /// The address the server listens on.
    ///
    /// # Errors
    ///
    /// The operating system's error, if it cannot tell.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle that shuts this server down gracefully from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Accepts connections and runs them on this thread until shut down,
    /// with a handler made by `new_handler` for each; returns once every
    /// connection has ended.
    ///
    /// # Errors
    ///
    /// The error of registering the listener or of polling.
    pub fn run<F, H>(self, new_handler: F) -> io::Result<()>
    where
        F: FnMut() -> H,
        H: Handler,
    {
        let Server {
            mut poll,
            listener,
            config,
            max_connections,
            shutdown,
        } = self;
        let mut driver = Driver::<H>::new(Token(1)..Token(usize::MAX), shutdown.waker())
            .listen(poll.registry(), listener, config, new_handler)?
            .with_max_connections(max_connections);
        event_loop::run(&mut poll, &mut driver, &shutdown)
    }
}
