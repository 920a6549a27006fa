//! The names every adapter re-exports at its root (`pub use
//! tej_net::common::*`), so that a handler written against one adapter
//! compiles against every other; [`asynch`] adds what the async adapters
//! (`tej-tokio`, `tej-async-std`) share.

pub use crate::shutdown::ShutdownHandle;
pub use tej_core::{
    self, BufferedSender, Connection, DecodeError, DisconnectReason, EncodeError, Field, File,
    FileBody, FileTarget, Frame, FrameBuilder, FrameTimeout, Handler, LimitKind, Limits,
    NotWritten, SendError, SendFuture, SendProgress, Sender, Session, SessionConfig, Status,
    Written,
};

/// What the async adapters re-export beside the common names (`pub use
/// tej_net::common::asynch::*`): the listener and acceptor traits, the
/// client's handle, and the async face, a connection you await, its frames
/// a `Stream`, its files `AsyncRead`s (`Server::accept`,
/// `Server::serve_connections`, `Client::open`).
pub mod asynch {
    pub use crate::{
        Acceptor, AsyncConnection, ClientHandle, Incoming, IncomingFile, IncomingFrame, Listener,
        Plain,
    };
}
