//! The cross-thread send queue of one connection: [`Sender`] and
//! [`BufferedSender`] on the sending side, a `Receiver` for the session.
//! Depends on the frame types and the run format only, never on the
//! session or its outbox.
//!
//! Imports go one way: `buffered` → `sender` → `queue` → `entries`. The
//! `queue` is the state under the lock; `sender` is the public face and
//! the session's `Receiver`; `buffered` batches small frames on top of a
//! `Sender`.

mod buffered;
mod entries;
mod queue;
mod sender;

pub use buffered::BufferedSender;
pub(crate) use entries::Queued;
pub(crate) use sender::{Exchange, Receiver};
pub use sender::{SendFuture, Sender};
