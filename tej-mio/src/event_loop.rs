//! The one poll loop a [`Server`](crate::Server) and a
//! [`Client`](crate::Client) run, and the shutdown signal that stops it.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mio::{Events, Poll, Token};
use tej_core::Handler;

use crate::driver::Driver;

/// The poll's waker token; drivers use the tokens after it.
pub(crate) const WAKE_TOKEN: Token = Token(0);
/// Readiness events taken per poll.
const EVENTS_CAPACITY: usize = 1024;

/// Stops a loop gracefully from anywhere: a server accepts no new
/// connections, and each connection finishes the frame it is receiving,
/// flushes what it queued and closes; then the loop returns
/// ([`Server::run`](crate::Server::run), [`Client::join`](crate::Client::join)).
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    inner: Arc<Signal>,
}

#[derive(Debug)]
struct Signal {
    requested: AtomicBool,
    waker: Arc<mio::Waker>,
}

impl ShutdownHandle {
    /// A signal for the loop of `poll`, with the poll's one waker.
    pub(crate) fn new(poll: &Poll) -> io::Result<ShutdownHandle> {
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKE_TOKEN)?);
        Ok(ShutdownHandle {
            inner: Arc::new(Signal {
                requested: AtomicBool::new(false),
                waker,
            }),
        })
    }

    /// The poll's waker, for the driver's senders.
    pub(crate) fn waker(&self) -> Arc<mio::Waker> {
        Arc::clone(&self.inner.waker)
    }

    /// Starts the graceful shutdown.
    pub fn shutdown(&self) {
        self.inner.requested.store(true, Ordering::Release);
        if let Err(error) = self.inner.waker.wake() {
            tracing::error!(%error, "cannot wake the event loop");
        }
    }

    /// Whether shutdown has started.
    pub fn is_shutdown(&self) -> bool {
        self.inner.requested.load(Ordering::Acquire)
    }
}

/// Polls and dispatches until the driver is done: it has no connection
/// left and accepts none (it never listened, or shut down).
pub(crate) fn run<H, F>(
    poll: &mut Poll,
    driver: &mut Driver<H, F>,
    shutdown: &ShutdownHandle,
) -> io::Result<()>
where
    H: Handler,
    F: FnMut() -> H,
{
    let mut events = Events::with_capacity(EVENTS_CAPACITY);
    let mut shutting_down = false;
    loop {
        if !shutting_down && shutdown.is_shutdown() {
            shutting_down = true;
            driver.shutdown(poll.registry());
        }
        if driver.is_empty() && !driver.is_listening() {
            return Ok(());
        }
        match poll.poll(&mut events, driver.poll_timeout()) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        }
        for event in events.iter() {
            if event.token() == WAKE_TOKEN {
                driver.handle_wake(poll.registry());
            } else {
                driver.handle_event(poll.registry(), event);
            }
        }
        driver.handle_timeout(poll.registry());
    }
}
