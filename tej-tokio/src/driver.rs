//! Moves bytes between one `TcpStream` and one `Session`, and runs its timers.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tej_core::{Handler, ReadBuffer, Session};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Rounds of reading and writing in one poll before yielding to other tasks.
const MAX_ROUNDS_PER_POLL: usize = 32;
/// Slices in one vectored write.
const MAX_IO_SLICES: usize = 64;

/// Runs `session` over `stream` until the connection ends.
///
/// `shutdown`, when cancelled, asks for a graceful close: the frame being
/// received is finished, what is queued is flushed, then the connection
/// closes. The session has run [`Handler::disconnected`] when this returns.
pub async fn run_session<H: Handler>(
    stream: TcpStream,
    mut session: Session<H>,
    shutdown: CancellationToken,
) {
    let mut driver = Driver {
        buffer: ReadBuffer::new(session.config().read_buffer_len),
        stream,
        origin: Instant::now(),
        timer: Box::pin(tokio::time::sleep_until(Instant::now())),
        timer_deadline: None,
        shutdown: Box::pin(shutdown.cancelled_owned()),
        shutdown_seen: false,
    };
    session.start(driver.now());
    poll_fn(|cx| driver.poll(cx, &mut session)).await;
}

struct Driver {
    stream: TcpStream,
    buffer: ReadBuffer,
    origin: Instant,
    timer: Pin<Box<Sleep>>,
    timer_deadline: Option<Duration>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    shutdown_seen: bool,
}

impl Driver {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn poll<H: Handler>(&mut self, cx: &mut Context<'_>, session: &mut Session<H>) -> Poll<()> {
        for _ in 0..MAX_ROUNDS_PER_POLL {
            if !self.shutdown_seen && self.shutdown.as_mut().poll(cx).is_ready() {
                self.shutdown_seen = true;
                session.shutdown();
            }
            session.poll_queue(cx.waker());
            let mut progress = false;
            if session.wants_write() {
                progress |= self.write(cx, session);
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
        match self.stream.poll_write_ready(cx) {
            Poll::Pending => return false,
            Poll::Ready(Err(error)) => {
                session.handle_io_error(error);
                return true;
            }
            Poll::Ready(Ok(())) => {}
        }
        let mut slices = [IoSlice::new(&[]); MAX_IO_SLICES];
        let filled = session.transmit_io_slices(&mut slices);
        if filled == 0 {
            // Nothing to offer after all (a failed file read closed the session).
            return true;
        }
        match self.stream.try_write_vectored(&slices[..filled]) {
            Ok(0) => {
                session.handle_io_error(io::ErrorKind::WriteZero.into());
                true
            }
            Ok(written) => {
                session.advance(written);
                true
            }
            // Readiness was stale; poll_write_ready registers interest next round.
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => true,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => true,
            Err(error) => {
                session.handle_io_error(error);
                true
            }
        }
    }

    /// Reads once into the buffer and hands the bytes over; true if anything happened.
    fn read<H: Handler>(&mut self, cx: &mut Context<'_>, session: &mut Session<H>) -> bool {
        match self.stream.poll_read_ready(cx) {
            Poll::Pending => return false,
            Poll::Ready(Err(error)) => {
                session.handle_io_error(error);
                return true;
            }
            Poll::Ready(Ok(())) => {}
        }
        match self.stream.try_read(self.buffer.space()) {
            Ok(0) => session.handle_eof(self.now()),
            Ok(read) => {
                let now = self.now();
                // What a closing session does not use is not for it.
                let _ = session.handle_input(self.buffer.filled(read), now);
                self.buffer.record_read(read);
            }
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(error) => session.handle_io_error(error),
        }
        true
    }

    /// Arms the timer for the session's next deadline; fires it when due.
    fn poll_timer<H: Handler>(&mut self, cx: &mut Context<'_>, session: &mut Session<H>) -> bool {
        let Some(deadline) = session.poll_timeout() else {
            self.timer_deadline = None;
            return false;
        };
        if self.timer_deadline != Some(deadline) {
            self.timer.as_mut().reset(self.origin + deadline);
            self.timer_deadline = Some(deadline);
        }
        if self.timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        self.timer_deadline = None;
        session.handle_timeout(self.now().max(deadline));
        true
    }
}
