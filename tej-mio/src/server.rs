//! The server: a listener and its connections on one mio loop.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mio::net::TcpListener;
use mio::{Events, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};
use tej_core::{Handler, SessionConfig};

use crate::driver::Driver;

/// The token of the poll's waker in the loops this crate runs.
pub(crate) const WAKE_TOKEN: Token = Token(0);
/// Events taken per poll.
pub(crate) const EVENTS_CAPACITY: usize = 1024;

/// Pending connections the kernel queues before `accept`.
const LISTEN_BACKLOG: i32 = 1024;

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
    shutdown: ShutdownHandle,
}

/// Stops a [`Server`] gracefully from any thread: no new connections are
/// accepted, each connection finishes the frame it is receiving, flushes
/// what it queued and closes; then [`Server::run`] returns.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    inner: Arc<ShutdownState>,
}

#[derive(Debug)]
struct ShutdownState {
    requested: AtomicBool,
    waker: Arc<mio::Waker>,
}

impl ShutdownHandle {
    /// Starts the graceful shutdown, waking the loop.
    pub fn shutdown(&self) {
        self.inner.requested.store(true, Ordering::Release);
        if let Err(error) = self.inner.waker.wake() {
            tracing::error!(%error, "cannot wake the server's event loop");
        }
    }

    /// Whether shutdown has started.
    pub fn is_shutdown(&self) -> bool {
        self.inner.requested.load(Ordering::Acquire)
    }
}

impl Server {
    /// Binds to `addr` (the first of its addresses that binds), with a
    /// backlog of 1024 pending connections as Tokio's listener has. Port 0
    /// picks a free port: see [`local_addr`](Self::local_addr).
    ///
    /// # Errors
    ///
    /// The error of binding (the last address's), or of creating the poll.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<Server> {
        let mut last_error = None;
        for addr in addr.to_socket_addrs()? {
            match bind_listener(addr) {
                Ok(listener) => return Server::from_listener(listener),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the address resolved to nothing",
            )
        }))
    }

    /// A server on a listener bound elsewhere; it is made non-blocking.
    ///
    /// # Errors
    ///
    /// The error of making it non-blocking, or of creating the poll.
    pub fn from_listener(listener: std::net::TcpListener) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        let poll = Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKE_TOKEN)?);
        Ok(Server {
            poll,
            listener: TcpListener::from_std(listener),
            config: SessionConfig::default(),
            shutdown: ShutdownHandle {
                inner: Arc::new(ShutdownState {
                    requested: AtomicBool::new(false),
                    waker,
                }),
            },
        })
    }

    /// Sets the options of every connection's session.
    pub fn with_config(mut self, config: SessionConfig) -> Server {
        self.config = config;
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

    /// A handle that shuts this server down gracefully, from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Accepts connections until shut down, running a handler made by
    /// `new_handler` for each on this thread; returns once every
    /// connection has ended.
    ///
    /// # Errors
    ///
    /// The error of polling or of registering the listener: the loop cannot
    /// go on. Open connections are dropped then (their handlers'
    /// `disconnected` runs with [`DisconnectReason::Dropped`](tej_core::DisconnectReason::Dropped)).
    pub fn run<F, H>(self, new_handler: F) -> io::Result<()>
    where
        F: FnMut() -> H,
        H: Handler,
    {
        let Server {
            mut poll,
            listener,
            config,
            shutdown,
        } = self;
        let mut driver = Driver::<H>::new(
            Token(1)..Token(usize::MAX),
            shutdown.inner.waker.clone(),
        )
        .listen(poll.registry(), listener, config, new_handler)?;
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        let mut shutting_down = false;
        loop {
            if !shutting_down && shutdown.is_shutdown() {
                shutting_down = true;
                driver.shutdown(poll.registry());
            }
            if shutting_down && driver.is_empty() {
                return Ok(());
            }
            match poll.poll(&mut events, driver.poll_timeout()) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
            for event in events.iter() {
                if event.token() == WAKE_TOKEN {
                    driver.handle_wake(poll.registry());
                } else {
                    driver.handle_event(poll.registry(), event);
                }
            }
            driver.handle_timeout(poll.registry());
        }
    }
}

/// A listening socket on `addr`, as `std` makes one but with a larger backlog.
fn bind_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Rebinding right after a restart must not wait for old connections.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}
