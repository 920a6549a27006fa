//! The drive loop every adapter runs, written once: map a stream's read and
//! write results onto a [`Session`], loop while there is progress, and
//! close the stream when the session ends.
//!
//! An adapter supplies three things: a non-blocking [`Transport`] (its
//! stream, with "not ready" reported as [`io::ErrorKind::WouldBlock`] after
//! arranging a wake-up, as tokio-tungstenite's `AllowStd` does for an async
//! stream), a timer armed for [`Drive::poll_timeout`], and a waker. An
//! async adapter hands the stream and its [`Timer`] to [`Drive::poll`],
//! which is the whole loop; an event loop such as mio's runs it itself:
//!
//! ```text
//! loop {
//!     match drive.step(&mut session, &mut transport, &mut buffer, &waker, now) {
//!         Step::Done => break,          // the session ended and the stream is closed
//!         Step::Yield => reschedule,    // the turn's budget is spent: let others run
//!         Step::Pending => {
//!             arm the timer for drive.poll_timeout(&session);
//!             wait for the stream, the timer or the waker;
//!             if the timer fired: drive.timer_fired(deadline);
//!         }
//!     }
//! }
//! ```
//!
//! Everything else (backpressure, the bytes a session did not take yet,
//! flushing, the timers' effects, the bounded close) is decided here.

use std::io::{self, IoSlice};
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tej_core::{DisconnectReason, Handler, Session};

use crate::ReadBuffer;

/// Rounds of writing and reading in one [`Drive::step`] before it yields.
const MAX_ROUNDS_PER_STEP: usize = 32;
/// Slices in one vectored write.
const MAX_IO_SLICES: usize = 64;

/// A byte stream that never blocks: an operation that cannot proceed now
/// fails with [`io::ErrorKind::WouldBlock`] and has arranged for the
/// adapter to be woken when it can (a registered waker or readiness event).
///
/// An adapter implements it for its stream borrowed with whatever the
/// stream needs to register interest (an async `Context`, mio readiness).
pub trait Transport {
    /// Reads into `buf`; `Ok(0)` is the end of the stream.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when nothing is ready, or the stream's error.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Writes some of `bufs`, in order; returns how many bytes.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when the stream takes nothing now, or its error.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;

    /// Pushes out what a buffering stream (TLS, say) still holds.
    ///
    /// # Errors
    ///
    /// `WouldBlock` while in progress, or the stream's error.
    fn flush(&mut self) -> io::Result<()>;

    /// Ends this side's direction of the stream: a TCP FIN, a TLS
    /// `close_notify`. Called once the session has ended and everything
    /// it owed is written.
    ///
    /// # Errors
    ///
    /// `WouldBlock` while in progress, or the stream's error.
    fn shutdown(&mut self) -> io::Result<()>;
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (**self).write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }
    fn shutdown(&mut self) -> io::Result<()> {
        (**self).shutdown()
    }
}

/// An async stream's poll result as a [`Transport`] result: `Pending`
/// (the task's waker is registered) becomes `WouldBlock`.
pub fn pending_as_would_block<T>(poll: Poll<io::Result<T>>) -> io::Result<T> {
    match poll {
        Poll::Ready(result) => result,
        Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}

/// A one-shot timer of an async runtime, for [`Drive::poll`].
pub trait Timer {
    /// Sets the timer for `deadline` (on the clock the adapter passes as
    /// `now`), replacing the one set before. A deadline too far away to
    /// represent never fires.
    fn arm(&mut self, deadline: Duration);

    /// Whether the deadline last armed has passed; if not, the timer has
    /// arranged to wake the task when it does.
    fn poll_expired(&mut self) -> bool;
}

/// What the adapter does after a [`Drive::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the step says whether to wait, yield or drop the stream"]
pub enum Step {
    /// Nothing more can happen now: wait for the stream (it returned
    /// `WouldBlock` and arranged a wake-up), for the waker (a
    /// [`Sender`](tej_core::Sender) queued a frame), or for the timer at
    /// [`Drive::poll_timeout`].
    Pending,
    /// The step's budget is spent with work left: let other connections
    /// run, then step again without waiting.
    Yield,
    /// The session has ended ([`Handler::disconnected`] has run) and the
    /// stream was flushed and shut down, or that failed or ran out of time:
    /// drop the stream.
    Done,
}

/// Where closing the stream stands once the session has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// The session is running.
    No,
    /// Flushing and shutting the stream down, until the deadline.
    Until(Duration),
    /// Shut down; reading and dropping what the peer sends. After a
    /// graceful end (`linger`), until the peer's end of stream (or an
    /// error, or the deadline): closing a socket with unread input, or one
    /// the peer still writes to, resets the connection, and a reset
    /// destroys what the peer has not read of ours yet (a TLS server's late
    /// session tickets did, under load). Our shutdown half-closes the
    /// stream, so a peer that read everything closes its side in turn.
    /// After a failure (a protocol error, a timeout), only until nothing
    /// more has arrived: such a peer is owed no wait.
    Draining { deadline: Duration, linger: bool },
    /// Closed, or given up.
    Done,
}

/// One connection's drive state: the input the session did not take yet,
/// whether the stream needs a flush, and the stream's close.
///
/// The bytes a session leaves (it stopped at a frame boundary because its
/// outbox was over the high-water mark) are kept here as a slice of the read,
/// at most one read's worth
/// ([`read_buffer_len`](tej_core::SessionConfig::read_buffer_len)), and
/// offered again before the stream is read once the session
/// [`wants_read`](Session::wants_read) again.
#[derive(Debug)]
pub struct Drive {
    /// Input read but not yet taken by the session.
    unconsumed: Bytes,
    /// Bytes were written since the stream was last flushed.
    unflushed: bool,
    /// A read or write failed: the stream is not closed gracefully.
    failed: bool,
    closing: Closing,
    /// The latest deadline the adapter's timer reported as fired: the
    /// session's clock is at least there, whatever the adapter's clock says.
    fired: Duration,
    /// The deadline [`poll`](Drive::poll) armed the timer for.
    armed: Option<Duration>,
}

impl Default for Drive {
    fn default() -> Self {
        Drive::new()
    }
}

impl Drive {
    /// The drive state of a new connection.
    pub fn new() -> Drive {
        Drive {
            unconsumed: Bytes::new(),
            unflushed: false,
            failed: false,
            closing: Closing::No,
            fired: Duration::ZERO,
            armed: None,
        }
    }

    /// The whole loop for an async adapter: [`step`](Self::step)s until
    /// the connection is over (`Ready`), and otherwise arms `io`'s timer for
    /// [`poll_timeout`](Self::poll_timeout), running what is due when it
    /// has fired. `Pending` means the stream, the timer or `waker` will wake
    /// the task (a spent budget wakes it at once, so other tasks run first).
    /// `now` reads the adapter's clock.
    pub fn poll<H, T>(
        &mut self,
        session: &mut Session<H>,
        io: &mut T,
        buffer: &mut ReadBuffer,
        waker: &Waker,
        now: impl Fn() -> Duration,
    ) -> Poll<()>
    where
        H: Handler,
        T: Transport + Timer + ?Sized,
    {
        loop {
            match self.step(session, io, buffer, waker, now()) {
                Step::Done => return Poll::Ready(()),
                Step::Yield => {
                    waker.wake_by_ref();
                    return Poll::Pending;
                }
                Step::Pending => {}
            }
            let Some(deadline) = self.poll_timeout(session) else {
                self.armed = None;
                return Poll::Pending;
            };
            if self.armed != Some(deadline) {
                io.arm(deadline);
                self.armed = Some(deadline);
            }
            if !io.poll_expired() {
                return Poll::Pending;
            }
            self.armed = None;
            self.timer_fired(deadline);
        }
    }

    /// Moves bytes between `transport` and `session` until neither can
    /// make progress, the step's budget is spent, or the connection is
    /// over; runs the session's timers that are due at `now`, and takes
    /// frames from its send queue (registering `waker` for more).
    ///
    /// Starts the session on the first call. `buffer` is what the stream
    /// is read into: a connection's own, or one shared by every connection
    /// of a thread (what the session does not take is kept as a slice of it).
    pub fn step<H: Handler, T: Transport + ?Sized>(
        &mut self,
        session: &mut Session<H>,
        transport: &mut T,
        buffer: &mut ReadBuffer,
        waker: &Waker,
        now: Duration,
    ) -> Step {
        let now = now.max(self.fired);
        session.start(now);
        // Whether the caller runs this step where blocking file I/O may run
        // (`Runtime::run_blocking` asks the same question before the step).
        let file_io = session.does_file_io();
        for _ in 0..MAX_ROUNDS_PER_STEP {
            if session.is_closed() {
                return self.close(session, transport, buffer, now);
            }
            session.poll_queue(waker);
            session.poll_room(waker, now);
            if !file_io && session.does_file_io() {
                // A file to store or to send from disk is next: a step of
                // its own, which the caller can move off its async threads.
                return Step::Yield;
            }
            let mut progress = false;
            if session.wants_write() {
                progress |= self.write(session, transport, now);
            } else if self.unflushed {
                progress |= self.flush(session, transport);
            }
            if session.wants_read() {
                progress |= self.read(session, transport, buffer, now);
            }
            // Timers after I/O: input that arrived while this task waited
            // for its turn counts before an idle or frame deadline that
            // passed meanwhile.
            if session.poll_timeout().is_some_and(|due| due <= now) {
                session.handle_timeout(now);
                progress = true;
            }
            if !progress && !session.is_closed() {
                return Step::Pending;
            }
        }
        Step::Yield
    }

    /// When the adapter's timer must fire next, if ever: the session's next
    /// deadline, or the end of the time a closing stream may take.
    pub fn poll_timeout<H: Handler>(&self, session: &Session<H>) -> Option<Duration> {
        match self.closing {
            Closing::No => session.poll_timeout(),
            Closing::Until(deadline) | Closing::Draining { deadline, .. } => Some(deadline),
            Closing::Done => None,
        }
    }

    /// The adapter's timer for `deadline` fired: the next step runs what
    /// is due then, even if the adapter's clock reads a little earlier.
    pub fn timer_fired(&mut self, deadline: Duration) {
        self.fired = self.fired.max(deadline);
    }

    /// Whether the stream should be watched for room to write: bytes wait
    /// in the session, or the stream needs a flush or its close.
    pub fn wants_write<H: Handler>(&self, session: &Session<H>) -> bool {
        session.wants_write() || self.unflushed || matches!(self.closing, Closing::Until(_))
    }

    /// Bytes read from the stream that the session has not taken yet.
    pub fn unconsumed_len(&self) -> usize {
        self.unconsumed.len()
    }

    /// One write of what the session offers; true if anything happened.
    fn write<H: Handler, T: Transport + ?Sized>(
        &mut self,
        session: &mut Session<H>,
        transport: &mut T,
        now: Duration,
    ) -> bool {
        let mut slices = [IoSlice::new(&[]); MAX_IO_SLICES];
        let filled = session.transmit_io_slices(&mut slices);
        if filled == 0 {
            // Nothing to offer after all: a file to send failed and closed the session.
            return true;
        }
        match transport.write_vectored(&slices[..filled]) {
            Ok(0) => {
                // The stream takes no more bytes: it will not take these.
                self.fail(session, io::ErrorKind::WriteZero.into());
                true
            }
            Ok(written) => {
                self.unflushed = true;
                session.advance_at(written, now);
                true
            }
            Err(error) => self.on_error(session, error),
        }
    }

    /// Flushes once the session has nothing more to write; true if anything happened.
    fn flush<H: Handler, T: Transport + ?Sized>(
        &mut self,
        session: &mut Session<H>,
        transport: &mut T,
    ) -> bool {
        match transport.flush() {
            Ok(()) => {
                self.unflushed = false;
                true
            }
            Err(error) => self.on_error(session, error),
        }
    }

    /// Offers the input the session left, or else reads once; true if
    /// anything happened.
    fn read<H: Handler, T: Transport + ?Sized>(
        &mut self,
        session: &mut Session<H>,
        transport: &mut T,
        buffer: &mut ReadBuffer,
        now: Duration,
    ) -> bool {
        if !self.unconsumed.is_empty() {
            let used = session.handle_bytes(&self.unconsumed, now);
            if used == self.unconsumed.len() || !session.is_open() {
                // Drained (or closing, when the rest is not for the session):
                // an idle connection keeps no buffer.
                self.unconsumed = Bytes::new();
                return true;
            }
            self.unconsumed.advance(used);
            // Nothing taken: the session waits for room, not for this step.
            return used > 0;
        }
        // Within a large body, read it in large pieces and nothing past it:
        // what the session may leave unread stays within one normal read.
        let body = session.body_remaining();
        let bulk_len = session.config().bulk_read_len;
        // A connection without a buffer (idle, or chatty in small pieces)
        // reads on the stack first; the buffer is made once a read fills it.
        if buffer.is_empty() {
            // A connection without a buffer (idle, or chatty in small
            // pieces) reads on the stack; the buffer is made once a read fills it.
            let mut first = [0u8; ReadBuffer::FIRST_READ_LEN];
            let read = match transport.read(&mut first) {
                Ok(read) if read > 0 => read,
                other => return self.read_ended(session, buffer, other, now),
            };
            let input = &first[..read];
            let used = session.handle_input(input, now);
            if used < read && session.is_open() {
                self.unconsumed = Bytes::copy_from_slice(&input[used..]);
            }
            buffer.record_body_read(read, body, bulk_len);
            return true;
        }
        let read = match transport.read(buffer.space_for_body(body, bulk_len)) {
            Ok(read) if read > 0 => read,
            other => return self.read_ended(session, buffer, other, now),
        };
        // Taken out of the buffer, so that messages can be slices of it.
        let input = buffer.take(read);
        let used = session.handle_bytes(&input, now);
        if used < read && session.is_open() {
            self.unconsumed = input.slice(used..);
        }
        buffer.record_body_read(read, body, bulk_len);
        true
    }

    /// A read that brought nothing: the end of the stream, or an error
    /// (would block included); true if anything happened.
    fn read_ended<H: Handler>(
        &mut self,
        session: &mut Session<H>,
        buffer: &mut ReadBuffer,
        result: io::Result<usize>,
        now: Duration,
    ) -> bool {
        match result {
            Ok(_) => {
                session.handle_eof(now);
                true
            }
            Err(error) => {
                if error.kind() == io::ErrorKind::WouldBlock {
                    buffer.quiet();
                }
                self.on_error(session, error)
            }
        }
    }

    /// After the shutdown: reads and drops the peer's input until its end of
    /// stream, an error or the deadline (done); waits for more (pending),
    /// and gives a peer still sending another turn (yield).
    fn drain<T: Transport + ?Sized>(
        &mut self,
        transport: &mut T,
        buffer: &mut ReadBuffer,
        now: Duration,
        (deadline, linger): (Duration, bool),
    ) -> Step {
        if now >= deadline {
            self.closing = Closing::Done;
            return Step::Done;
        }
        for _ in 0..MAX_ROUNDS_PER_STEP {
            match transport.read(buffer.space()) {
                // The peer has closed its side (or is gone): done.
                Ok(0) => {
                    self.closing = Closing::Done;
                    return Step::Done;
                }
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if linger {
                        return Step::Pending;
                    }
                    self.closing = Closing::Done;
                    return Step::Done;
                }
                Err(_) => {
                    self.closing = Closing::Done;
                    return Step::Done;
                }
            }
        }
        // The peer is still sending: let other work run, then go on.
        Step::Yield
    }

    /// Maps a read, write or flush error; true if anything happened.
    fn on_error<H: Handler>(&mut self, session: &mut Session<H>, error: io::Error) -> bool {
        match error.kind() {
            io::ErrorKind::WouldBlock => false,
            io::ErrorKind::Interrupted => true,
            _ => {
                self.fail(session, error);
                true
            }
        }
    }

    fn fail<H: Handler>(&mut self, session: &mut Session<H>, error: io::Error) {
        self.failed = true;
        session.handle_io_error(error);
    }

    /// The session has ended: flush and shut the stream down, for at most
    /// the session's `close_linger`.
    fn close<H: Handler, T: Transport + ?Sized>(
        &mut self,
        session: &Session<H>,
        transport: &mut T,
        buffer: &mut ReadBuffer,
        now: Duration,
    ) -> Step {
        self.unconsumed = Bytes::new();
        let deadline = match self.closing {
            Closing::Done => return Step::Done,
            Closing::No if self.failed => {
                self.closing = Closing::Done;
                return Step::Done;
            }
            Closing::No => now.saturating_add(session.config().close_linger),
            Closing::Until(deadline) => deadline,
            Closing::Draining { deadline, linger } => {
                return self.drain(transport, buffer, now, (deadline, linger));
            }
        };
        self.closing = Closing::Until(deadline);
        if now >= deadline {
            self.closing = Closing::Done;
            return Step::Done;
        }
        loop {
            let result = if self.unflushed {
                transport.flush().map(|()| self.unflushed = false)
            } else {
                match transport.shutdown() {
                    Ok(()) => {
                        let linger = session
                            .disconnect_reason()
                            .is_some_and(DisconnectReason::is_graceful);
                        self.closing = Closing::Draining { deadline, linger };
                        return self.drain(transport, buffer, now, (deadline, linger));
                    }
                    Err(error) => Err(error),
                }
            };
            match result {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Step::Pending,
                Err(_) => {
                    // The peer is gone: nothing more to tell it.
                    self.closing = Closing::Done;
                    return Step::Done;
                }
            }
        }
    }
}
