//! The accept loop: one session and one handler per connection.

use std::io;
use std::net::SocketAddr;

use tej_core::accept::{self, ConnectionCap};
use tej_core::{Handler, Session, SessionConfig};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::driver::run_session;

/// A TEJ server on Tokio.
///
/// Each accepted connection gets its own [`Handler`] from the factory given
/// to [`serve`](Self::serve) and runs in its own task; a connection that
/// fails, or whose handler panics, ends alone.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    config: SessionConfig,
    cap: ConnectionCap,
    shutdown: CancellationToken,
}

/// Stops a [`Server`] gracefully from anywhere: no new connections are
/// accepted, each connection finishes the frame it is receiving, flushes
/// what it queued and closes; then [`Server::serve`] returns.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    token: CancellationToken,
}

impl ShutdownHandle {
    /// Starts the graceful shutdown.
    pub fn shutdown(&self) {
        self.token.cancel();
    }

    /// Whether shutdown has started.
    pub fn is_shutdown(&self) -> bool {
        self.token.is_cancelled()
    }
}

impl Server {
    /// Binds to `addr`. Port 0 picks a free port: see [`local_addr`](Self::local_addr).
    ///
    /// # Errors
    ///
    /// The error of binding.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<Server> {
        let listener = accept::listen_tcp(tokio::net::lookup_host(addr).await?)?;
        Ok(Server::from_listener(TcpListener::from_std(listener)?))
    }

    /// A server on a listener bound elsewhere.
    pub fn from_listener(listener: TcpListener) -> Server {
        Server {
            listener,
            config: SessionConfig::default(),
            cap: ConnectionCap::default(),
            shutdown: CancellationToken::new(),
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
        ShutdownHandle {
            token: self.shutdown.clone(),
        }
    }

    /// Accepts connections until shut down, running a handler made by
    /// `new_handler` for each; returns once every connection has ended.
    pub async fn serve<F, H>(self, mut new_handler: F)
    where
        F: FnMut() -> H,
        H: Handler + Send + 'static,
    {
        let connections = TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                () = self.shutdown.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let Some(slot) = self.cap.admit(&peer) else {
                        continue;
                    };
                    let session = Session::new(new_handler(), self.config.clone()).with_peer(peer);
                    let shutdown = self.shutdown.child_token();
                    connections.spawn(async move {
                        let _slot = slot;
                        serve_connection(stream, session, shutdown).await;
                    });
                }
                Err(error) => {
                    if let Some(pause) = accept::after_accept_error(&error) {
                        tokio::select! {
                            () = self.shutdown.cancelled() => break,
                            () = tokio::time::sleep(pause) => {}
                        }
                    }
                }
            }
        }
        drop(self.listener);
        connections.close();
        connections.wait().await;
    }
}

async fn serve_connection<H: Handler>(
    stream: TcpStream,
    session: Session<H>,
    shutdown: CancellationToken,
) {
    // Small frames must not wait for Nagle's algorithm; writes are already coalesced.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not disable Nagle's algorithm");
    }
    run_session(stream, session, shutdown).await;
}
