//! The names every adapter re-exports at its root (`pub use
//! tej_net::common::*`), so that a handler written against one adapter
//! compiles against every other.

pub use crate::shutdown::ShutdownHandle;
pub use tej_core::{
    self, BufferedSender, Connection, DecodeError, DisconnectReason, EncodeError, Field, File,
    FileBody, FileTarget, Frame, FrameBuilder, FrameTimeout, Handler, LimitKind, Limits,
    NotWritten, SendError, SendFuture, SendProgress, Sender, Session, SessionConfig, Status,
    Written,
};
