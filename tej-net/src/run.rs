//! One connection's session over one stream of a runtime, in its task:
//! the stream and the runtime's timer mapped onto [`Drive`], which runs
//! the connection.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::time::{Duration, Instant};

use tej_core::{DisconnectReason, Handler, Session};

use crate::drive::{pending_as_would_block as ready, Drive, Timer, Transport};
use crate::observe::{Observer, TrafficReport};
use crate::runtime::{PollIo, Runtime, Sleep};
use crate::{ReadBuffer, ShutdownHandle};

/// Runs `session` over `stream` on runtime `R` until the connection ends.
///
/// `stream` is any byte stream `R` can poll: a TCP or Unix stream, a TLS
/// stream on one, an in-memory pipe. `shutdown`, once triggered, asks for
/// a graceful close: the frame being received is finished, what is queued
/// is flushed, then the connection closes. When this returns the session
/// has run [`Handler::disconnected`], and the stream has been flushed and
/// shut down and, after a graceful end, the peer's end of stream has
/// arrived (all within the session's
/// [`close_linger`](tej_core::SessionConfig::close_linger)): dropping a
/// socket before the peer has read what was sent could reset the
/// connection and lose it. This returns why the connection ended: the
/// [`DisconnectReason`] the handler was given.
///
/// The stream's close (`poll_close`, `poll_shutdown`) should shut its
/// writing half down, so that the peer sees the end and closes in turn, as
/// Tokio's and smol's sockets and TLS streams do. async-std's sockets only
/// flush there (`tej-async-std` wraps its own in a `HalfClose`): over one
/// of those, a graceful close waits the whole `close_linger`.
///
/// Steps that may block on file I/O ([`Session::does_file_io`]) run
/// through [`Runtime::run_blocking`].
///
/// # Cancel safety
///
/// Not cancel-safe: dropping the future before it completes drops the
/// session while open. The handler's `disconnected` then runs at once with
/// [`DisconnectReason::Dropped`], the frame being received is discarded
/// (with the files it spooled), frames queued or partly written are not
/// sent (a [`Sender`](tej_core::Sender)'s
/// [`take_unsent`](tej_core::Sender::take_unsent) gives them back), and
/// the stream is dropped without a shutdown. To end a connection, trigger
/// `shutdown` or close a `Sender` and let this return.
pub fn run_session<R, S, H>(
    stream: S,
    session: Session<H>,
    shutdown: ShutdownHandle,
) -> impl Future<Output = DisconnectReason>
where
    R: Runtime + PollIo<S>,
    H: Handler,
{
    // Not an async fn, which would keep the session once more beside
    // `run_observed`'s future.
    run_observed::<R, S, H>(stream, session, shutdown, None)
}

/// [`run_session`], telling `observer` of the session's traffic as it
/// moves and of its end.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep the session twice in its future"
)]
pub(crate) fn run_observed<R, S, H>(
    mut stream: S,
    mut session: Session<H>,
    shutdown: ShutdownHandle,
    observer: Option<Arc<dyn Observer>>,
) -> impl Future<Output = DisconnectReason> + use<R, S, H>
where
    R: Runtime + PollIo<S>,
    H: Handler,
{
    // An `async move` block over the arguments, not an `async fn`: an async
    // fn keeps its arguments beside the locals they are moved into, and the
    // session would take its room twice in every connection's task.
    async move {
        let observer = observer.as_deref();
        let mut traffic = TrafficReport::default();
        let mut drive = Drive::new();
        // Made on the first read that needs it, given back when the connection
        // goes quiet: an idle connection holds none.
        let mut buffer = ReadBuffer::on_demand(session.config().read_buffer_len);
        let origin = Instant::now();
        let mut timer = R::sleep();
        let mut shutdown = shutdown.wait();
        let mut shutdown_seen = false;
        poll_fn(|cx| {
            if !shutdown_seen && Pin::new(&mut shutdown).poll(cx).is_ready() {
                shutdown_seen = true;
                session.shutdown();
            }
            // The transport borrows the context; the session registers this.
            let waker = cx.waker().clone();
            let mut io = Io::<R, S> {
                stream: &mut stream,
                timer: &mut timer,
                origin,
                cx,
                runtime: PhantomData,
            };
            let now = || origin.elapsed();
            let polled = if session.does_file_io() {
                R::run_blocking(|| drive.poll(&mut session, &mut io, &mut buffer, &waker, now))
            } else {
                drive.poll(&mut session, &mut io, &mut buffer, &waker, now)
            };
            traffic.report(session.traffic(), session.info(), observer);
            polled
        })
        .await;
        // The drive ends once the session has closed: it has its reason.
        let reason = session
            .disconnect_reason()
            .cloned()
            .unwrap_or(DisconnectReason::Dropped);
        // Whatever moved in the last step, then the end.
        traffic.report(session.traffic(), session.info(), observer);
        crate::observe::closed(observer, session.info(), &reason);
        reason
    }
}

/// A stream and a timer of runtime `R` as the drive's [`Transport`] and
/// [`Timer`]: `Pending` becomes `WouldBlock`, with the task's waker
/// registered.
struct Io<'a, 'b, R: Runtime, S> {
    stream: &'a mut S,
    timer: &'a mut R::Sleep,
    origin: Instant,
    cx: &'a mut Context<'b>,
    runtime: PhantomData<R>,
}

impl<R: Runtime + PollIo<S>, S> Transport for Io<'_, '_, R, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        ready(R::poll_read(self.stream, self.cx, buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        ready(R::poll_write_vectored(self.stream, self.cx, bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        ready(R::poll_flush(self.stream, self.cx))
    }

    fn shutdown(&mut self) -> io::Result<()> {
        ready(R::poll_close(self.stream, self.cx))
    }
}

/// Far enough to stand for "never" where a deadline cannot be represented.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl<R: Runtime, S> Timer for Io<'_, '_, R, S> {
    fn arm(&mut self, deadline: Duration) {
        let at = self
            .origin
            .checked_add(deadline.min(NEVER))
            .unwrap_or(self.origin + NEVER);
        self.timer.reset(at);
    }

    fn poll_expired(&mut self) -> bool {
        self.timer.poll_expired(self.cx).is_ready()
    }
}
