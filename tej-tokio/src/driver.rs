//! Maps one Tokio stream and timer onto the core's [`Drive`], which runs
//! the connection.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tej_core::{DisconnectReason, Handler, Session};
use tej_net::drive::{pending_as_would_block as ready, Drive, Timer, Transport};
use tej_net::{ReadBuffer, ShutdownHandle};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Far enough to stand for "never" where a deadline cannot be represented.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Runs `session` over `stream` until the connection ends.
///
/// `stream` is any Tokio byte stream: a `TcpStream`, a `UnixStream`, a TLS
/// stream, one half of `tokio::io::duplex`. `shutdown`, once given,
/// asks for a graceful close: the frame being received is finished, what
/// is queued is flushed, then the connection closes. When this returns the
/// session has run [`Handler::disconnected`], and the stream has been
/// flushed and shut down (for at most the session's
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
/// the stream is dropped without a shutdown. To end a connection, trigger
/// `shutdown` or close a `Sender` and let this return.
///
/// # Blocking file I/O
///
/// Files received into a spool directory or a writer, and files sent from
/// disk, are written and read by the session itself
/// ([`Session::does_file_io`]). On Tokio's multi-thread runtime those
/// steps run inside [`tokio::task::block_in_place`], so a disk that
/// stalls (write-back throttling) holds up this connection only: the
/// runtime moves its other tasks to another thread. On the current-thread
/// runtime they run in place.
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
    let mut timer = Box::pin(tokio::time::sleep_until(origin + NEVER));
    let mut shutdown = shutdown.wait();
    let mut shutdown_seen = false;
    let can_block_in_place = tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
        runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
    });
    poll_fn(|cx| {
        if !shutdown_seen && Pin::new(&mut shutdown).poll(cx).is_ready() {
            shutdown_seen = true;
            session.shutdown();
        }
        // The transport borrows the context; the session registers this.
        let waker = cx.waker().clone();
        let mut io = Io {
            stream: &mut stream,
            timer: timer.as_mut(),
            origin,
            cx,
        };
        let now = || origin.elapsed();
        if can_block_in_place && session.does_file_io() {
            tokio::task::block_in_place(|| {
                drive.poll(&mut session, &mut io, &mut buffer, &waker, now)
            })
        } else {
            drive.poll(&mut session, &mut io, &mut buffer, &waker, now)
        }
    })
    .await;
    // The drive ends once the session has closed: it has its reason.
    session
        .disconnect_reason()
        .cloned()
        .unwrap_or(DisconnectReason::Dropped)
}

/// A Tokio stream and timer as the core's [`Transport`] and [`Timer`]:
/// `Pending` becomes `WouldBlock`, with the task's waker registered.
struct Io<'a, 'b, S> {
    stream: &'a mut S,
    timer: Pin<&'a mut Sleep>,
    origin: Instant,
    cx: &'a mut Context<'b>,
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

impl<S> Timer for Io<'_, '_, S> {
    fn arm(&mut self, deadline: Duration) {
        let at = self.origin + deadline.min(NEVER);
        self.timer.as_mut().reset(at);
    }

    fn poll_expired(&mut self) -> bool {
        self.timer.as_mut().poll(self.cx).is_ready()
    }
}
