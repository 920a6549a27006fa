//! The accept loop: one session and one handler per connection.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;

use async_io::Timer;
use async_std::net::{TcpListener, TcpStream, ToSocketAddrs};
use futures_lite::{future, FutureExt};
use tej_core::accept::{is_per_connection_error, ACCEPT_ERROR_BACKOFF};
use tej_core::{Handler, Session, SessionConfig};

use crate::driver::run_session;
use crate::shutdown::ShutdownHandle;

/// A TEJ server on async-std (and smol).
///
/// Each accepted connection gets its own [`Handler`] from the factory given
/// to [`serve`](Self::serve) and runs in its own task; a connection that
/// fails, or whose handler panics, ends alone.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    config: SessionConfig,
    shutdown: ShutdownHandle,
}

impl Server {
    /// Binds to `addr`. Port 0 picks a free port: see [`local_addr`](Self::local_addr).
    ///
    /// # Errors
    ///
    /// The error of binding.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<Server> {
        let mut last_error = None;
        for addr in addr.to_socket_addrs().await? {
            match listen(addr) {
                Ok(listener) => return Ok(Server::from_listener(TcpListener::from(listener))),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no address to bind to")
        }))
    }

    /// A server on a listener bound elsewhere.
    pub fn from_listener(listener: TcpListener) -> Server {
        Server {
            listener,
            config: SessionConfig::default(),
            shutdown: ShutdownHandle::new(),
        }
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

    /// A handle that shuts this server down gracefully.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Accepts connections until shut down, running a handler made by
    /// `new_handler` for each; returns once every connection has ended.
    ///
    /// Connections run as tasks spawned with [`async_std::task::spawn`].
    pub async fn serve<F, H>(self, mut new_handler: F)
    where
        F: FnMut() -> H,
        H: Handler + Send + 'static,
    {
        // Every connection task holds a sender; the channel closes, and
        // `all_ended` completes, when the last of them has ended.
        let (alive, all_ended) = async_channel::bounded::<Infallible>(1);
        loop {
            let shutdown = async {
                self.shutdown.wait().await;
                None
            };
            let accept = async { Some(self.listener.accept().await) };
            let Some(accepted) = future::or(shutdown, accept).await else {
                break;
            };
            match accepted {
                Ok((stream, peer)) => {
                    let session = Session::new(new_handler(), self.config.clone()).with_peer(peer);
                    let connection = serve_connection(stream, session, self.shutdown.clone());
                    let alive = alive.clone();
                    async_std::task::spawn(async move {
                        let _alive = alive;
                        if AssertUnwindSafe(connection).catch_unwind().await.is_err() {
                            tracing::debug!("a connection's handler panicked");
                        }
                    });
                }
                Err(error) if is_per_connection_error(&error) => {
                    tracing::debug!(%error, "a connection failed before it was accepted");
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed; pausing before the next accept");
                    let shutdown = async {
                        self.shutdown.wait().await;
                        true
                    };
                    let backoff = async {
                        Timer::after(ACCEPT_ERROR_BACKOFF).await;
                        false
                    };
                    if future::or(shutdown, backoff).await {
                        break;
                    }
                }
            }
        }
        drop(self.listener);
        drop(alive);
        // Nothing is ever sent: this returns once the channel has closed.
        let _closed = all_ended.recv().await;
    }
}

async fn serve_connection<H: Handler>(
    stream: TcpStream,
    session: Session<H>,
    shutdown: ShutdownHandle,
) {
    // Small frames must not wait for Nagle's algorithm; writes are already coalesced.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not disable Nagle's algorithm");
    }
    run_session(stream, session, shutdown).await;
}

/// Pending connections the kernel queues before `accept`: std's default of
/// 128 drops SYNs when a thousand clients connect at once.
const LISTEN_BACKLOG: i32 = 1024;

/// A listening socket on `addr` with a backlog of [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};

    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Rebinding right after a restart must not wait for old connections.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}
