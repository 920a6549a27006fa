//! The client: one connection on a mio loop in its own thread.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::thread::JoinHandle;

use mio::net::TcpStream;
use mio::{Poll, Token};
use tej_core::{Handler, Sender, Session, SessionConfig};

use crate::driver::Driver;
use crate::event_loop::{self, ShutdownHandle};

/// A TEJ connection made by this side, running its [`Handler`] on an event
/// loop in a thread of its own.
///
/// For many connections on one thread, or a connection on a loop of your
/// own, use a [`Driver`].
#[derive(Debug)]
pub struct Client {
    sender: Sender,
    peer_addr: SocketAddr,
    local_addr: SocketAddr,
    shutdown: ShutdownHandle,
    thread: JoinHandle<io::Result<()>>,
}

impl Client {
    /// Connects to `addr` and runs `handler` with the default options.
    ///
    /// # Errors
    ///
    /// The error of connecting, or of starting the loop.
    pub fn connect<H>(addr: impl ToSocketAddrs, handler: H) -> io::Result<Client>
    where
        H: Handler + Send + 'static,
    {
        Client::connect_with(addr, handler, SessionConfig::default())
    }

    /// Connects to `addr` (blocking until connected) and runs `handler`
    /// with `config` on a new thread.
    ///
    /// # Errors
    ///
    /// The error of connecting, or of starting the loop.
    pub fn connect_with<H>(
        addr: impl ToSocketAddrs,
        handler: H,
        config: SessionConfig,
    ) -> io::Result<Client>
    where
        H: Handler + Send + 'static,
    {
        let stream = std::net::TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        let peer_addr = stream.peer_addr()?;
        let local_addr = stream.local_addr()?;
        let poll = Poll::new()?;
        let shutdown = ShutdownHandle::new(&poll)?;
        let session = Session::new(handler, config).with_peer(peer_addr);
        let sender = session.sender();
        let thread = std::thread::Builder::new()
            .name("tej-mio-client".into())
            .spawn({
                let shutdown = shutdown.clone();
                move || run_client(poll, TcpStream::from_std(stream), session, &shutdown)
            })?;
        Ok(Client {
            sender,
            peer_addr,
            local_addr,
            shutdown,
            thread,
        })
    }

    /// A sender for this connection, usable from any thread.
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
    /// An error if the handler panicked, or if the loop failed (polling or
    /// registering the socket).
    pub fn join(self) -> io::Result<()> {
        match self.thread.join() {
            Ok(result) => result,
            Err(_) => Err(io::Error::other("the client's event loop panicked")),
        }
    }
}

/// The client's loop: runs until its one connection has ended.
fn run_client<H: Handler>(
    mut poll: Poll,
    stream: TcpStream,
    session: Session<H>,
    shutdown: &ShutdownHandle,
) -> io::Result<()> {
    let mut driver = Driver::<H>::new(Token(1)..Token(3), shutdown.waker());
    driver.add_session(poll.registry(), stream, session)?;
    event_loop::run(&mut poll, &mut driver, shutdown)?;
    match driver.take_panics().pop() {
        Some(message) => Err(io::Error::other(format!(
            "the connection's handler panicked: {message}"
        ))),
        None => Ok(()),
    }
}
