//! The accept loop: one session and one handler per connection.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;

use async_io::Timer;
use async_std::net::{TcpListener, TcpStream, ToSocketAddrs};
use futures_lite::{future, FutureExt};
use tej_core::accept::{self, ConnectionCap};
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
    cap: ConnectionCap,
    shutdown: ShutdownHandle,
}

impl Server {
    /// Binds to `addr`. Port 0 picks a free port: see [`local_addr`](Self::local_addr).
    ///
    /// # Errors
    ///
    /// The error of binding.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<Server> {
        let listener = accept::listen_tcp(addr.to_socket_addrs().await?)?;
        Ok(Server::from_listener(TcpListener::from(listener)))
    }

    /// A server on a listener bound elsewhere.
    pub fn from_listener(listener: TcpListener) -> Server {
        Server {
            listener,
            config: SessionConfig::default(),
            cap: ConnectionCap::default(),
            shutdown: ShutdownHandle::new(),
        }
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
        self.cap = ConnectionCap::new(max);
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
                    let Some(slot) = self.cap.admit(&peer) else {
                        continue;
                    };
                    let session = Session::new(new_handler(), self.config.clone()).with_peer(peer);
                    let connection = serve_connection(stream, session, self.shutdown.clone());
                    let alive = alive.clone();
                    async_std::task::spawn(async move {
                        let _alive = alive;
                        let _slot = slot;
                        if AssertUnwindSafe(connection).catch_unwind().await.is_err() {
                            tracing::debug!("a connection's handler panicked");
                        }
                    });
                }
                Err(error) => {
                    let Some(pause) = accept::after_accept_error(&error) else {
                        continue;
                    };
                    let shutdown = async {
                        self.shutdown.wait().await;
                        true
                    };
                    let backoff = async {
                        Timer::after(pause).await;
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
