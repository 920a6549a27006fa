//! The graceful-shutdown signal shared by a server, its connections and clients.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::Stream;

/// Stops a [`Server`](crate::Server) gracefully from anywhere: no new
/// connections are accepted, each connection finishes the frame it is
/// receiving, flushes what it queued and closes; then
/// [`Server::serve`](crate::Server::serve) returns.
///
/// The same signal drives one connection in [`run_session`](crate::run_session).
/// Clones share the signal. Dropping handles never triggers it: only
/// [`shutdown`](Self::shutdown) does.
#[derive(Debug)]
pub struct ShutdownHandle {
    // Closing the channel is the signal; nothing is ever sent on it (the
    // item type has no values). Each handle keeps a sender so that dropping
    // handles cannot close it by accident.
    sender: async_channel::Sender<Infallible>,
    // Pinned: a receiver polled as a stream keeps its listener in place.
    receiver: Pin<Box<async_channel::Receiver<Infallible>>>,
}

impl Clone for ShutdownHandle {
    fn clone(&self) -> Self {
        ShutdownHandle {
            sender: self.sender.clone(),
            receiver: Box::pin((*self.receiver).clone()),
        }
    }
}

impl Default for ShutdownHandle {
    fn default() -> Self {
        ShutdownHandle::new()
    }
}

impl ShutdownHandle {
    /// A signal not yet given.
    pub fn new() -> ShutdownHandle {
        let (sender, receiver) = async_channel::bounded(1);
        ShutdownHandle {
            sender,
            receiver: Box::pin(receiver),
        }
    }

    /// Starts the graceful shutdown.
    pub fn shutdown(&self) {
        self.sender.close();
    }

    /// Whether shutdown has started.
    pub fn is_shutdown(&self) -> bool {
        self.sender.is_closed()
    }

    /// Completes once shutdown has started: for accept loops of your own
    /// around [`run_session`](crate::run_session).
    pub async fn wait(&self) {
        // Nothing is ever sent, so this returns only when the channel closes.
        let _closed = self.receiver.recv().await;
    }

    /// Ready once shutdown has started; registers `cx`'s waker otherwise.
    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self.receiver.as_mut().poll_next(cx) {
            Poll::Ready(None) => Poll::Ready(()),
            Poll::Ready(Some(never)) => match never {},
            Poll::Pending => Poll::Pending,
        }
    }
}
