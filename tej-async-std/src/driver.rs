//! Moves bytes between one `futures-io` stream and one `Session`, and runs
//! its timers.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::{future, AsyncWriteExt};
use tej_core::{Handler, ReadBuffer, Session};

use crate::shutdown::ShutdownHandle;

/// Rounds of reading and writing in one poll before yielding to other tasks.
const MAX_ROUNDS_PER_POLL: usize = 32;
/// Slices in one vectored write.
const MAX_IO_SLICES: usize = 64;

/// Runs `session` over `stream` until the connection ends.
///
/// `stream` is any [`futures-io`](futures_io) byte stream: async-std's
/// `TcpStream`, smol's `TcpStream` or `Async<std::net::TcpStream>`, a TLS
/// stream on top of one of those. Timers use [`async_io::Timer`], which
/// async-std and smol both drive, so this runs on either executor.
///
/// `shutdown`, when triggered, asks for a graceful close: the frame being
/// received is finished, what is queued is flushed, then the connection
/// closes. The session has run [`Handler::disconnected`] when this returns,
/// and the stream has been flushed and closed (for at most the session's
/// [`close_linger`](tej_core::SessionConfig::close_linger)).
pub async fn run_session<S, H>(stream: S, mut session: Session<H>, shutdown: ShutdownHandle)
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let linger = session.config().close_linger;
    let mut driver = Driver {
        buffer: ReadBuffer::new(session.config().read_buffer_len),
        stream,
        origin: Instant::now(),
        timer: Timer::never(),
        timer_deadline: None,
        shutdown,
        shutdown_seen: false,
        unflushed: false,
    };
    session.start(driver.now());
    // A handler that panics unwinds through this function, which drops the
    // session on the way: its `Drop` sees the panic and does not call the
    // handler again, whichever executor catches the panic.
    poll_fn(|cx| driver.poll(cx, &mut session)).await;
    drop(session);

    // A buffering stream may still hold the last bytes; the peer also
    // learns of the end before the socket is dropped. Best effort, bounded.
    let close = async {
        let _result = driver.stream.close().await;
    };
    future::or(close, async {
        Timer::after(linger).await;
    })
    .await;
}

struct Driver<S> {
    stream: S,
    buffer: ReadBuffer,
    origin: Instant,
    timer: Timer,
    timer_deadline: Option<Duration>,
    shutdown: ShutdownHandle,
    shutdown_seen: bool,
    /// Bytes were written since the stream was last flushed.
    unflushed: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver<S> {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn poll<H: Handler>(&mut self, cx: &mut Context<'_>, session: &mut Session<H>) -> Poll<()> {
        for _ in 0..MAX_ROUNDS_PER_POLL {
            if !self.shutdown_seen && self.shutdown.poll_shutdown(cx).is_ready() {
                self.shutdown_seen = true;
                session.shutdown();
            }
            session.poll_queue(cx.waker());
            let mut progress = false;
            if session.wants_write() {
                progress |= self.write(cx, session);
            } else if self.unflushed {
                progress |= self.flush(cx, session);
            }
            if session.wants_read() {
                progress |= self.read(cx, session);
            }
            progress |= self.poll_timer(cx, session);
            if session.is_closed() {
                return Poll::Ready(());
            }
            if !progress {
                return Poll::Pending;
            }
        }
        // Busy connection: let other tasks run, then continue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Writes what the session offers; true if anything happened.
    fn write<H: Handler>(&mut self, cx: &mut Context<'_>, session: &mut Session<H>) -> bool {
        let mut slices = [IoSlice::new(&[]); MAX_IO_SLICES];
        let filled = session.transmit_io_slices(&mut slices);
        if filled == 0 {
            // Nothing to offer after all (a failed file read closed the session).
            return true;
        }
        match Pin::new(&mut self.stream).poll_write_vectored(cx, &slices[..filled]) {
            Poll::Pending => false,
            Poll::Ready(Ok(0)) => {
                // The stream takes no more bytes: it will not take these.
                session.handle_io_error(io::ErrorKind::WriteZero.into());
                true
            }
            Poll::Ready(Ok(written)) => {
                self.unflushed = true;
                session.advance(written);
                true
            }
            Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::Interrupted => true,
            Poll::Ready(Err(error)) => {
                session.handle_io_error(error);
                true
            }
        }
    }

    /// Flushes a buffering stream once the session has nothing more to
    /// write; true if anything happened.
    fn flush<H: Handler>(&mut self, cx: &mut Context<'_>, session: &mut Session<H>) -> bool {
        match Pin::new(&mut self.stream).poll_flush(cx) {
            Poll::Pending => false,
            Poll::Ready(Ok(())) => {
                self.unflushed = false;
                true
            }
            Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::Interrupted => true,
            Poll::Ready(Err(error)) => {
                session.handle_io_error(error);
                true
            }
        }
    }

    /// Reads once into the buffer and hands the bytes over; true if anything happened.
    fn read<H: Handler>(&mut self, cx: &mut Context<'_>, session: &mut Session<H>) -> bool {
        match Pin::new(&mut self.stream).poll_read(cx, self.buffer.space()) {
            Poll::Pending => false,
            Poll::Ready(Ok(0)) => {
                session.handle_eof(self.now());
                true
            }
            Poll::Ready(Ok(read)) => {
                let now = self.now();
                // What a closing session does not use is not for it.
                let _ = session.handle_input(self.buffer.filled(read), now);
                self.buffer.record_read(read);
                true
            }
            Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::Interrupted => true,
            Poll::Ready(Err(error)) => {
                session.handle_io_error(error);
                true
            }
        }
    }

    /// Arms the timer for the session's next deadline; fires it when due.
    fn poll_timer<H: Handler>(&mut self, cx: &mut Context<'_>, session: &mut Session<H>) -> bool {
        let Some(deadline) = session.poll_timeout() else {
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
        session.handle_timeout(self.now().max(deadline));
        true
    }
}
