//! What every adapter's `Client` gives, whatever runs its connection (a
//! task here, tej-mio's loop on a thread of its own): written once, so that
//! the names, docs and the close on drop are the same everywhere.

use std::net::SocketAddr;

use tej_core::{ConnectionInfo, Sender};

use crate::ShutdownHandle;

/// The connection of a `Client`, as every adapter's `Client` gives it
/// (they dereference to it): its [`Sender`], what is known of it, and how
/// to end it.
///
/// Dropping it closes the connection gracefully unless
/// [`detach`](Self::detach) was called: see the adapter's `Client`.
#[derive(Debug)]
pub struct ClientHandle {
    sender: Sender,
    info: ConnectionInfo,
    shutdown: ShutdownHandle,
    /// Whether `detach` let the connection run on.
    detached: bool,
}

impl Drop for ClientHandle {
    /// Asks for a graceful close, unless detached.
    fn drop(&mut self) {
        if !self.detached {
            self.sender.close();
        }
    }
}

impl ClientHandle {
    /// The handle of a session whose sender is `sender`, described by
    /// `info`, stopped by `shutdown`.
    pub fn new(sender: Sender, info: ConnectionInfo, shutdown: ShutdownHandle) -> ClientHandle {
        ClientHandle {
            sender,
            info,
            shutdown,
            detached: false,
        }
    }

    /// A sender for this connection, usable from any task or thread.
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// The server's IP address; `None` over a Unix socket or a stream
    /// given to `from_stream`.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.info.peer
    }

    /// This side's IP address; `None` over a Unix socket or a stream
    /// given to `from_stream`.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.info.local
    }

    /// What is known of the connection: its addresses, transport and, over
    /// TLS, what the handshake agreed on (the server's certificates among
    /// it). The handler sees the same through
    /// [`Connection::info`](tej_core::Connection::info).
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// Closes the connection once everything queued has been sent.
    pub fn close(&self) {
        self.sender.close();
    }

    /// Closes the connection after the frame being received, if any.
    pub fn shutdown(&self) {
        self.shutdown.shutdown();
    }

    /// The handle [`shutdown`](Self::shutdown) uses, to stop this
    /// connection from anywhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Lets the connection run on when this handle is dropped: it then ends
    /// when the peer closes it, on the returned [`Sender`]'s
    /// [`close`](Sender::close), or on a [`ShutdownHandle`] taken before
    /// ([`shutdown_handle`](Self::shutdown_handle)). The adapters' `Client::detach`
    /// calls it.
    pub fn detach(&mut self) -> Sender {
        self.detached = true;
        self.sender.clone()
    }
}
