//! The callbacks every adapter calls, and the handle they get.

use crate::assemble::FileTarget;
use crate::error::{DecodeError, EncodeError};
use crate::frame::Frame;
use crate::session::outbox::Outbox;
use crate::session::outgoing::{OutgoingFrame, PrepareError};

/// Why a connection ended, as given to [`Handler::disconnected`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The peer closed the connection between frames.
    PeerClosed,
    /// The peer broke the protocol, or closed mid-frame
    /// ([`DecodeError::UnexpectedEof`]).
    Protocol(DecodeError),
    /// Nothing was received for the configured idle timeout.
    IdleTimeout,
    /// A frame did not arrive in the time its
    /// [`FrameTimeout`](crate::FrameTimeout) allowed: the peer sent it too
    /// slowly.
    FrameTimeout,
    /// This side closed it: [`Connection::close`], a `Sender`, or a server
    /// shutting down.
    LocalClose,
    /// Reading or writing the socket failed.
    #[cfg(feature = "std")]
    Io(std::sync::Arc<std::io::Error>),
    /// A file could not be read for sending or written when received.
    #[cfg(feature = "std")]
    Storage(std::sync::Arc<std::io::Error>),
    /// The session was dropped while still open (its task was cancelled).
    Dropped,
}

impl core::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DisconnectReason::PeerClosed => f.write_str("peer closed the connection"),
            DisconnectReason::Protocol(error) => write!(f, "protocol error: {error}"),
            DisconnectReason::IdleTimeout => f.write_str("idle timeout"),
            DisconnectReason::FrameTimeout => {
                f.write_str("frame timeout: the peer sent a frame below the minimum rate")
            }
            DisconnectReason::LocalClose => f.write_str("closed locally"),
            #[cfg(feature = "std")]
            DisconnectReason::Io(error) => write!(f, "I/O error: {error}"),
            #[cfg(feature = "std")]
            DisconnectReason::Storage(error) => write!(f, "storage error: {error}"),
            DisconnectReason::Dropped => f.write_str("session dropped while open"),
        }
    }
}

/// Why a frame was not queued. The frame comes back in every case, so
/// nothing handed to a send is silently lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is closed or closing.
    #[error("the connection is closed")]
    Closed(Frame),
    /// The send queue is at its bound (from `try_send` only).
    #[error("the send queue is full")]
    Full(Frame),
    /// The frame cannot be encoded (a name over 65535 bytes, or a body that
    /// is not in memory or on disk).
    #[error("the frame cannot be encoded: {0}")]
    Invalid(EncodeError, Frame),
    /// A file to send could not be opened.
    #[cfg(feature = "std")]
    #[error("cannot open a file to send: {0}")]
    File(std::io::Error, Frame),
}

impl SendError {
    /// The frame that was not sent.
    pub fn into_frame(self) -> Frame {
        match self {
            SendError::Closed(frame) | SendError::Full(frame) | SendError::Invalid(_, frame) => {
                frame
            }
            #[cfg(feature = "std")]
            SendError::File(_, frame) => frame,
        }
    }

    pub(crate) fn from_prepare(error: PrepareError, frame: Frame) -> SendError {
        match error {
            PrepareError::Encode(error) => SendError::Invalid(error, frame),
            #[cfg(feature = "std")]
            PrepareError::Open(error) => SendError::File(error, frame),
        }
    }
}

/// The connection as a callback sees it: send frames on it, or close it.
pub struct Connection<'a> {
    pub(crate) outbox: &'a mut Outbox,
    pub(crate) close_requested: &'a mut bool,
    pub(crate) closing: bool,
    pub(crate) peer: Option<core::net::SocketAddr>,
    #[cfg(feature = "std")]
    pub(crate) sender: &'a crate::session::sender::Sender,
}

impl core::fmt::Debug for Connection<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
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
        let outgoing = OutgoingFrame::prepare(frame)
            .map_err(|(error, frame)| SendError::from_prepare(error, frame))?;
        self.outbox.push(outgoing);
        Ok(())
    }

    /// Closes the connection once everything queued has been sent.
    /// [`Handler::disconnected`] follows with [`DisconnectReason::LocalClose`].
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

    /// The peer's address, when the adapter knows it.
    pub fn peer_addr(&self) -> Option<core::net::SocketAddr> {
        self.peer
    }

    /// A [`Sender`](crate::Sender) for this connection, to keep and use
    /// from any thread or task.
    #[cfg(feature = "std")]
    pub fn sender(&self) -> crate::session::sender::Sender {
        self.sender.clone()
    }
}

/// The callbacks of one connection, with the reference implementation's
/// semantics: [`connected`](Self::connected) once, then
/// [`received`](Self::received) or [`ping_received`](Self::ping_received)
/// for every frame in arrival order, then
/// [`disconnected`](Self::disconnected) exactly once, whatever ends the
/// connection.
///
/// Every method has a default that does nothing, so a handler implements
/// only what it needs. The same handler runs unchanged on every adapter.
///
/// ```
/// use tej_core::{Connection, Frame, Handler};
///
/// /// Answers every frame with the names of its files.
/// struct Echo;
///
/// impl Handler for Echo {
///     fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
///         let names: Vec<&str> = frame.files.iter().map(|file| file.name.as_str()).collect();
///         let _ = conn.send(Frame::message(names.join(",")));
///     }
/// }
/// ```
pub trait Handler {
    /// The connection is open. Called once, first.
    fn connected(&mut self, conn: &mut Connection<'_>) {
        let _ = conn;
    }

    /// A frame arrived (any status but 2).
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        let _ = (conn, frame);
    }

    /// A ping (status 2) arrived.
    fn ping_received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        let _ = (conn, frame);
    }

    /// The connection ended. Called exactly once, last.
    fn disconnected(&mut self, reason: DisconnectReason) {
        let _ = reason;
    }

    /// A file's header arrived: choose where its bytes go. The default keeps
    /// it in memory. `index` is the file's position in its frame.
    fn file_target(&mut self, name: &str, size: u64, index: usize) -> FileTarget {
        let _ = (name, size, index);
        FileTarget::Memory
    }
}

impl<H: Handler + ?Sized> Handler for alloc::boxed::Box<H> {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        (**self).connected(conn);
    }
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        (**self).received(conn, frame);
    }
    fn ping_received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        (**self).ping_received(conn, frame);
    }
    fn disconnected(&mut self, reason: DisconnectReason) {
        (**self).disconnected(reason);
    }
    fn file_target(&mut self, name: &str, size: u64, index: usize) -> FileTarget {
        (**self).file_target(name, size, index)
    }
}
