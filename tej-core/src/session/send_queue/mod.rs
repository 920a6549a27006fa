//! The cross-thread send queue of one connection: [`Sender`] and
//! [`BufferedSender`] on the sending side, a `Receiver` for the session.
//! Depends on the frame types and the run format only, never on the
//! session or its outbox.

mod buffered;
mod entries;
mod sender;

pub use buffered::BufferedSender;
pub(crate) use entries::Queued;
pub(crate) use sender::{Exchange, Receiver};
pub use sender::{SendFuture, Sender};
