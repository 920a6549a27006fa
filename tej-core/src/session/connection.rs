//! The handle a callback gets: send frames on the connection, or close it.

use crate::frame::Frame;
use crate::session::error::SendError;
use crate::session::info::ConnectionInfo;
use crate::session::outbox::Outbox;
use crate::session::outgoing::OutgoingFrame;

/// The connection as a callback sees it: send frames on it, or close it.
pub struct Connection<'a> {
    pub(crate) outbox: &'a mut Outbox,
    pub(crate) close_requested: &'a mut bool,
    pub(crate) closing: bool,
    pub(crate) info: &'a ConnectionInfo,
    #[cfg(feature = "std")]
    pub(crate) sender: &'a crate::session::send_queue::Sender,
}

impl core::fmt::Debug for Connection<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.info.peer)
            .field("proxy", &self.info.proxy)
            .field("queued_bytes", &self.outbox.pending_len())
            .field("closing", &self.is_closing())
            .finish()
    }
}

impl Connection<'_> {
    /// Queues `frame` to be sent after everything queued before it.
    ///
    /// Frames sent from callbacks are not bounded by the send queue: the
    /// session stops reading while too much is waiting, so a handler that
    /// answers what it receives cannot outrun a slow peer.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] once the connection is closing,
    /// [`SendError::Invalid`] or [`SendError::File`] for a frame that cannot
    /// be sent; the frame comes back in each.
    pub fn send(&mut self, frame: Frame) -> Result<(), SendError> {
        if self.is_closing() {
            return Err(SendError::Closed(frame));
        }
        let outgoing =
            OutgoingFrame::prepare(frame).map_err(|(error, frame)| error.into_send_error(frame))?;
        self.outbox.push(outgoing);
        Ok(())
    }

    /// Closes the connection once everything queued has been sent.
    /// [`Handler::disconnected`](crate::Handler::disconnected) follows with
    /// [`DisconnectReason::LocalClose`](crate::DisconnectReason::LocalClose).
    pub fn close(&mut self) {
        *self.close_requested = true;
    }

    /// Whether the connection is closing: sends are refused.
    pub fn is_closing(&self) -> bool {
        self.closing || *self.close_requested
    }

    /// Bytes queued and not yet written to the socket.
    pub fn queued_bytes(&self) -> u64 {
        self.outbox.pending_len()
    }

    /// The peer's address, when the adapter knows it. Behind a load
    /// balancer that speaks the PROXY protocol, the client's address it
    /// reported (see [`proxy_addr`](Self::proxy_addr)).
    pub fn peer_addr(&self) -> Option<core::net::SocketAddr> {
        self.info.peer
    }

    /// The address of the proxy or load balancer the connection came
    /// through, when its PROXY protocol header named the real peer;
    /// `None` for a direct connection.
    pub fn proxy_addr(&self) -> Option<core::net::SocketAddr> {
        self.info.proxy
    }

    /// This side's address, when the adapter knows it.
    pub fn local_addr(&self) -> Option<core::net::SocketAddr> {
        self.info.local
    }

    /// Everything the adapter knows of the connection: its addresses,
    /// transport and, over TLS, the protocol version, cipher suite, SNI,
    /// ALPN and the peer's certificates.
    pub fn info(&self) -> &ConnectionInfo {
        self.info
    }

    /// A [`Sender`](crate::Sender) for this connection, to keep and use
    /// from any thread or task.
    #[cfg(feature = "std")]
    pub fn sender(&self) -> crate::session::send_queue::Sender {
        self.sender.clone()
    }
}
