//! Why a connection ended, and why a frame was not sent: the leaves every
//! other part of the session builds on.

use crate::error::{DecodeError, EncodeError};
use crate::frame::Frame;

/// Why a connection ended, as given to [`Handler::disconnected`](crate::Handler::disconnected).
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
    /// No byte moved either way for the configured
    /// [`stall_timeout`](crate::SessionConfig::stall_timeout): a dead peer
    /// or a silent path.
    StallTimeout,
    /// A frame did not arrive in the time its
    /// [`FrameTimeout`](crate::FrameTimeout) allowed: the peer sent it too
    /// slowly.
    FrameTimeout,
    /// This side closed it: [`Connection::close`](crate::Connection::close), a `Sender`, or a server
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
            DisconnectReason::StallTimeout => f.write_str(
                "stall timeout: nothing arrived and nothing could be sent (a dead peer or a silent path)",
            ),
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

impl core::error::Error for DisconnectReason {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            DisconnectReason::Protocol(error) => Some(error),
            #[cfg(feature = "std")]
            DisconnectReason::Io(error) | DisconnectReason::Storage(error) => Some(&**error),
            _ => None,
        }
    }
}

impl DisconnectReason {
    /// Whether the connection ended as either side meant it to: the peer
    /// closed between frames, or this side closed it. Anything else (a
    /// protocol error, a timeout, an I/O or storage failure, a dropped
    /// session) is a failure.
    pub fn is_graceful(&self) -> bool {
        matches!(
            self,
            DisconnectReason::PeerClosed | DisconnectReason::LocalClose
        )
    }
}

/// Why a frame was not queued. The frame comes back in every case, so
/// nothing handed to a send is silently lost. Its `Debug` names the frame
/// by status and sizes, never by its bytes.
#[non_exhaustive]
pub enum SendError {
    /// The connection is closed or closing.
    Closed(Frame),
    /// The send queue is at its bound (from `try_send` only).
    Full(Frame),
    /// The frame cannot be encoded (a name over 65535 bytes, or a body that
    /// is not in memory or on disk).
    Invalid(EncodeError, Frame),
    /// A file to send could not be opened.
    #[cfg(feature = "std")]
    File(std::io::Error, Frame),
}

impl core::fmt::Debug for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (kind, frame) = match self {
            SendError::Closed(frame) => ("Closed", frame),
            SendError::Full(frame) => ("Full", frame),
            SendError::Invalid(_, frame) => ("Invalid", frame),
            #[cfg(feature = "std")]
            SendError::File(_, frame) => ("File", frame),
        };
        let mut out = f.debug_struct(kind);
        match self {
            SendError::Invalid(error, _) => {
                out.field("error", error);
            }
            #[cfg(feature = "std")]
            SendError::File(error, _) => {
                out.field("error", error);
            }
            _ => {}
        }
        out.field("status", &frame.status.get())
            .field("files", &frame.files.len())
            .field(
                "message_len",
                &frame.message.as_ref().map_or(0, |message| message.len()),
            )
            .finish()
    }
}

impl core::error::Error for SendError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            SendError::Invalid(error, _) => Some(error),
            #[cfg(feature = "std")]
            SendError::File(error, _) => Some(error),
            _ => None,
        }
    }
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SendError::Closed(_) => write!(f, "the connection is closed"),
            SendError::Full(_) => write!(f, "the send queue is full"),
            SendError::Invalid(inner, _) => write!(f, "the frame cannot be encoded: {inner}"),
            #[cfg(feature = "std")]
            SendError::File(inner, _) => write!(f, "cannot open a file to send: {inner}"),
        }
    }
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
}
