//! Moves bytes between one `futures-io` stream and one `Session` through
//! the core's [`Drive`], and runs its timer.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_io::{AsyncRead, AsyncWrite};
use tej_core::drive::{Drive, Step, Transport};
use tej_core::{Handler, ReadBuffer, Session};

use crate::shutdown::ShutdownHandle;

/// Runs `session` over `stream` until the connection ends.
///
/// `stream` is any [`futures-io`](futures_io) byte stream: async-std's
/// `TcpStream`, smol's `TcpStream` or `Async<std::net::TcpStream>`, a Unix
/// socket, a TLS stream on top of one of those. Timers use
/// [`async_io::Timer`], which async-std and smol both drive, so this runs
/// on either executor.
///
/// `shutdown`, when triggered, asks for a graceful close: the frame being
/// received is finished, what is queued is flushed, then the connection
/// closes. When this returns the session has run
/// [`Handler::disconnected`], and the stream has been flushed and closed
/// (for at most the session's
/// [`close_linger`](tej_core::SessionConfig::close_linger)).
pub async fn run_session<S, H>(stream: S, mut session: Session<H>, shutdown: ShutdownHandle)
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let mut driver = Driver {
        buffer: ReadBuffer::new(session.config().read_buffer_len),
        drive: Drive::new(),
        stream,
        origin: Instant::now(),
        timer: Timer::never(),
        timer_deadline: None,
        shutdown,
        shutdown_seen: false,
    };
    // A handler that panics unwinds through this function, which drops the
    // session on the way: its `Drop` sees the panic and does not call the
    // handler again, whichever executor catches the panic.
    poll_fn(|cx| driver.poll(cx, &mut session)).await;
}

struct Driver<S> {
    stream: S,
    drive: Drive,
    buffer: ReadBuffer,
    origin: Instant,
    timer: Timer,
    timer_deadline: Option<Duration>,
    shutdown: ShutdownHandle,
    shutdown_seen: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver<S> {
    fn poll<H: Handler>(&mut self, cx: &mut Context<'_>, session: &mut Session<H>) -> Poll<()> {
        if !self.shutdown_seen && self.shutdown.poll_shutdown(cx).is_ready() {
            self.shutdown_seen = true;
            session.shutdown();
        }
        // The transport borrows the context; the session registers this.
        let waker = cx.waker().clone();
        loop {
            let now = self.origin.elapsed();
            let mut io = Io {
                stream: &mut self.stream,
                cx,
            };
            match self
                .drive
                .step(session, &mut io, &mut self.buffer, &waker, now)
            {
                Step::Done => return Poll::Ready(()),
                Step::Yield => {
                    waker.wake_by_ref();
                    return Poll::Pending;
                }
                Step::Pending => {}
            }
            if !self.timer_due(cx, self.drive.poll_timeout(session)) {
                return Poll::Pending;
            }
        }
    }

    /// Arms the timer for `deadline`; true if it has fired.
    fn timer_due(&mut self, cx: &mut Context<'_>, deadline: Option<Duration>) -> bool {
        let Some(deadline) = deadline else {
            if self.timer_deadline.take().is_some() {
                self.timer.clear();
            }
            return false;
        };
        if self.timer_deadline != Some(deadline) {
            match self.origin.checked_add(deadline) {
                Some(at) => self.timer.set_at(at),
                // Too far away to represent: never.
                None => self.timer.clear(),
            }
            self.timer_deadline = Some(deadline);
        }
        if Pin::new(&mut self.timer).poll(cx).is_pending() {
            return false;
        }
        self.timer_deadline = None;
        self.drive.timer_fired(deadline);
        true
    }
}

/// A `futures-io` stream as a non-blocking [`Transport`]: `Pending`
/// becomes `WouldBlock`, with the task's waker registered.
struct Io<'a, 'b, S> {
    stream: &'a mut S,
    cx: &'a mut Context<'b>,
}

/// `Pending` as `WouldBlock`.
fn ready<T>(poll: Poll<io::Result<T>>) -> io::Result<T> {
    match poll {
        Poll::Ready(result) => result,
        Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Transport for Io<'_, '_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        ready(Pin::new(&mut *self.stream).poll_read(self.cx, buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        ready(Pin::new(&mut *self.stream).poll_write_vectored(self.cx, bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        ready(Pin::new(&mut *self.stream).poll_flush(self.cx))
    }

    fn shutdown(&mut self) -> io::Result<()> {
        ready(Pin::new(&mut *self.stream).poll_close(self.cx))
    }
}
