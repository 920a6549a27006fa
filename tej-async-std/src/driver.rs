//! Maps one `futures-io` stream and an `async-io` timer onto the core's
//! [`Drive`], which runs the connection.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::Context;
use std::time::{Duration, Instant};

use async_io::Timer as AsyncTimer;
use futures_io::{AsyncRead, AsyncWrite};
use tej_core::{DisconnectReason, Handler, Session};
use tej_net::drive::{pending_as_would_block as ready, Drive, Timer, Transport};
use tej_net::{ReadBuffer, ShutdownHandle};

/// Runs `session` over `stream` until the connection ends.
///
/// `stream` is any [`futures-io`](futures_io) byte stream: async-std's
/// `TcpStream`, smol's `TcpStream` or `Async<std::net::TcpStream>`, a Unix
/// socket, a TLS stream on top of one of those. Timers use
/// [`async_io::Timer`], which async-std and smol both drive, so this runs
/// on either executor. [`Server`](crate::generic::Server) and
/// [`Client`](crate::generic::Client) call this in their tasks; call it
/// yourself to run a connection on an executor of your own.
///
/// `shutdown`, when triggered, asks for a graceful close: the frame being
/// received is finished, what is queued is flushed, then the connection
/// closes. When this returns the session has run
/// [`Handler::disconnected`], and the stream has been flushed and closed
/// (for at most the session's
/// [`close_linger`](tej_core::SessionConfig::close_linger)), and this
/// returns why the connection ended: the [`DisconnectReason`] the handler
/// was given.
///
/// # Cancel safety
///
/// Not cancel-safe: dropping the future before it completes drops the
/// session while open. The handler's `disconnected` then runs at once with
/// [`DisconnectReason::Dropped`], the frame being received is discarded
/// (with the files it spooled), frames queued or partly written are not
/// sent (a [`Sender`](tej_core::Sender)'s
/// [`take_unsent`](tej_core::Sender::take_unsent) gives them back), and
/// the stream is dropped without being closed first. To end a connection,
/// trigger `shutdown` or close a `Sender` and let this return.
pub async fn run_session<S, H>(
    stream: S,
    mut session: Session<H>,
    shutdown: ShutdownHandle,
) -> DisconnectReason
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let mut stream = stream;
    let mut drive = Drive::new();
    let mut buffer = ReadBuffer::new(session.config().read_buffer_len);
    let origin = Instant::now();
    let mut timer = AsyncTimer::never();
    let mut shutdown_seen = false;
    let mut shutdown = shutdown.wait();
    // A handler that panics unwinds through this function, which drops the
    // session on the way: its `Drop` sees the panic and does not call the
    // handler again, whichever executor catches the panic.
    poll_fn(|cx| {
        if !shutdown_seen && Pin::new(&mut shutdown).poll(cx).is_ready() {
            shutdown_seen = true;
            session.shutdown();
        }
        // The transport borrows the context; the session registers this.
        let waker = cx.waker().clone();
        let mut io = Io {
            stream: &mut stream,
            timer: &mut timer,
            origin,
            cx,
        };
        drive.poll(&mut session, &mut io, &mut buffer, &waker, || {
            origin.elapsed()
        })
    })
    .await;
    // The drive ends once the session has closed: it has its reason.
    session
        .disconnect_reason()
        .cloned()
        .unwrap_or(DisconnectReason::Dropped)
}

/// A `futures-io` stream and an `async-io` timer as the core's
/// [`Transport`] and [`Timer`]: `Pending` becomes `WouldBlock`, with the
/// task's waker registered.
struct Io<'a, 'b, S> {
    stream: &'a mut S,
    timer: &'a mut AsyncTimer,
    origin: Instant,
    cx: &'a mut Context<'b>,
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

impl<S> Timer for Io<'_, '_, S> {
    fn arm(&mut self, deadline: Duration) {
        match self.origin.checked_add(deadline) {
            Some(at) => self.timer.set_at(at),
            // Too far away to represent: never.
            None => self.timer.clear(),
        }
    }

    fn poll_expired(&mut self) -> bool {
        Pin::new(&mut *self.timer).poll(self.cx).is_ready()
    }
}
