//! Connecting out: one session over one `TcpStream`, driven in its own task.

use std::any::Any;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;

use async_std::net::{TcpStream, ToSocketAddrs};
use async_std::task::JoinHandle;
use futures_lite::FutureExt;
use tej_core::{Handler, Sender, Session, SessionConfig};

use crate::driver::run_session;
use crate::shutdown::ShutdownHandle;

/// The outcome of a connection's task: a panic's payload if its handler panicked.
type TaskResult = Result<(), Box<dyn Any + Send>>;

/// A TEJ connection made by this side, running its [`Handler`] in a task.
///
/// Dropping a `Client` does not end the connection: the task goes on until
/// the connection ends (use [`close`](Self::close) or
/// [`shutdown`](Self::shutdown) to end it).
#[derive(Debug)]
pub struct Client {
    sender: Sender,
    peer_addr: SocketAddr,
    local_addr: SocketAddr,
    shutdown: ShutdownHandle,
    task: JoinHandle<TaskResult>,
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
    /// The connection runs as a task spawned with [`async_std::task::spawn`].
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
        let shutdown = ShutdownHandle::new();
        let connection = run_session(stream, session, shutdown.clone());
        let task = async_std::task::spawn(AssertUnwindSafe(connection).catch_unwind());
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
        self.shutdown.shutdown();
    }

    /// Waits until the connection has ended and its handler's
    /// `disconnected` has run.
    ///
    /// # Errors
    ///
    /// An error if the handler panicked.
    pub async fn join(self) -> io::Result<()> {
        self.task.await.map_err(|panic| {
            let message = tej_core::accept::panic_message(panic.as_ref());
            io::Error::other(format!("the connection's handler panicked: {message}"))
        })
    }
}
