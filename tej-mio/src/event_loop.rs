//! The one poll loop a [`Server`](crate::Server) and a
//! [`Client`](crate::Client) run, woken at once by a
//! [`ShutdownHandle`](crate::ShutdownHandle) given on any thread.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;

use mio::{Events, Poll, Token};
use tej_core::Handler;
use tej_net::ShutdownHandle;

use crate::driver::Driver;

/// The poll's waker token; drivers use the tokens after it.
pub(crate) const WAKE_TOKEN: Token = Token(0);
/// Readiness events taken per poll.
const EVENTS_CAPACITY: usize = 1024;

/// A poll and its one waker.
pub(crate) fn new_poll() -> io::Result<(Poll, Arc<mio::Waker>)> {
    let poll = Poll::new()?;
    let waker = Arc::new(mio::Waker::new(poll.registry(), WAKE_TOKEN)?);
    Ok((poll, waker))
}

/// Polls and dispatches until the driver is done: it has no connection
/// left and accepts none (it never listened, or shut down). `shutdown`
/// starts the driver's graceful shutdown, waking the poll through the
/// driver's waker.
pub(crate) fn run<H, F, M>(
    poll: &mut Poll,
    driver: &mut Driver<H, F, M>,
    shutdown: &ShutdownHandle,
) -> io::Result<()>
where
    H: Handler,
    F: tej_net::NewHandler<M, Handler = H>,
{
    let mut events = Events::with_capacity(EVENTS_CAPACITY);
    let mut signal = shutdown.wait();
    let waker = driver.poll_waker();
    let mut cx = Context::from_waker(&waker);
    let mut shutting_down = false;
    loop {
        if !shutting_down && Pin::new(&mut signal).poll(&mut cx).is_ready() {
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
