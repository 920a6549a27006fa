//! Connecting out: one session over one `TcpStream`, driven in its own task.

use std::io;
use std::net::SocketAddr;

use tej_core::{Handler, Sender, Session, SessionConfig};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::driver::run_session;

/// A TEJ connection made by this side, running its [`Handler`] in a task.
#[derive(Debug)]
pub struct Client {
    sender: Sender,
    peer_addr: SocketAddr,
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Client {
    /// Connects to `addr` and runs `handler` with the default options.
    ///
    /// # Errors
    ///
    /// The error of connecting.
    pub async fn connect<H>(addr: impl ToSocketAddrs, handler: H) -> io::Result<Client>
    where
        H: Handler + Send + 'static,
    {
        Client::connect_with(addr, handler, SessionConfig::default()).await
    }

    /// Connects to `addr` and runs `handler` with `config`.
    ///
    /// # Errors
    ///
    /// The error of connecting.
    pub async fn connect_with<H>(
        addr: impl ToSocketAddrs,
        handler: H,
        config: SessionConfig,
    ) -> io::Result<Client>
    where
        H: Handler + Send + 'static,
    {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let peer_addr = stream.peer_addr()?;
        let local_addr = stream.local_addr()?;
        let session = Session::new(handler, config).with_peer(peer_addr);
        let sender = session.sender();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_session(stream, session, shutdown.clone()));
        Ok(Client {
            sender,
            peer_addr,
            local_addr,
            shutdown,
            task,
        })
    }

    /// A sender for this connection, usable from any task or thread.
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// This side's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Closes the connection once everything queued has been sent.
    pub fn close(&self) {
        self.sender.close();
    }

    /// Closes the connection after the frame being received, if any.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits until the connection has ended and its handler's
    /// `disconnected` has run.
    ///
    /// # Errors
    ///
    /// An error if the handler panicked.
    pub async fn join(self) -> io::Result<()> {
        self.task.await.map_err(io::Error::other)
    }
}
