//! Moves bytes between one stream and one `Session` through the core's
//! [`Drive`], and runs its timer.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tej_core::drive::{Drive, Step, Transport};
use tej_core::{Handler, ReadBuffer, Session};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Runs `session` over `stream` until the connection ends.
///
/// `stream` is any Tokio byte stream: a `TcpStream`, a `UnixStream`, a TLS
/// stream, one half of `tokio::io::duplex`. `shutdown`, when cancelled,
/// asks for a graceful close: the frame being received is finished, what
/// is queued is flushed, then the connection closes. When this returns the
/// session has run [`Handler::disconnected`], and the stream has been
/// flushed and shut down (for at most the session's
/// [`close_linger`](tej_core::SessionConfig::close_linger)).
pub async fn run_session<S, H>(stream: S, mut session: Session<H>, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let mut driver = Driver {
        buffer: ReadBuffer::new(session.config().read_buffer_len),
        drive: Drive::new(),
        stream,
        origin: Instant::now(),
        timer: Box::pin(tokio::time::sleep_until(Instant::now())),
        timer_deadline: None,
        shutdown: Box::pin(shutdown.cancelled_owned()),
        shutdown_seen: false,
    };
    poll_fn(|cx| driver.poll(cx, &mut session)).await;
}

struct Driver<S> {
    stream: S,
    drive: Drive,
    buffer: ReadBuffer,
    origin: Instant,
    timer: Pin<Box<Sleep>>,
    timer_deadline: Option<Duration>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    shutdown_seen: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver<S> {
    fn poll<H: Handler>(&mut self, cx: &mut Context<'_>, session: &mut Session<H>) -> Poll<()> {
        if !self.shutdown_seen && self.shutdown.as_mut().poll(cx).is_ready() {
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
            self.timer_deadline = None;
            return false;
        };
        if self.timer_deadline != Some(deadline) {
            let Some(at) = self.origin.checked_add(deadline) else {
                // Too far away to represent: never.
                return false;
            };
            self.timer.as_mut().reset(at);
            self.timer_deadline = Some(deadline);
        }
        if self.timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        self.timer_deadline = None;
        self.drive.timer_fired(deadline);
        true
    }
}

/// A Tokio stream as a non-blocking [`Transport`]: `Pending` becomes
/// `WouldBlock`, with the task's waker registered.
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
        let mut buf = ReadBuf::new(buf);
        ready(Pin::new(&mut *self.stream).poll_read(self.cx, &mut buf))?;
        Ok(buf.filled().len())
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        ready(Pin::new(&mut *self.stream).poll_write_vectored(self.cx, bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        ready(Pin::new(&mut *self.stream).poll_flush(self.cx))
    }

    fn shutdown(&mut self) -> io::Result<()> {
        ready(Pin::new(&mut *self.stream).poll_shutdown(self.cx))
    }
}
