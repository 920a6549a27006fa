//! One connection: its stream, its session, its drive state and what is
//! known of the stream's readiness.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use mio::{Interest, Registry, Token};
use tej_core::accept::ConnectionSlot;
use tej_core::drive::{Drive, Step, Transport};
use tej_core::{Handler, ReadBuffer, Session};

use super::wake::ConnWaker;

/// A non-blocking stream a [`Driver`](crate::Driver) runs a connection
/// over: mio's `TcpStream` and `UnixStream`, or a stream of your own that
/// reports "not ready" as `WouldBlock` and readiness through its `Source`.
pub trait Stream: mio::event::Source + Read + Write + Send {
    /// Ends this side's direction of the stream (a TCP FIN).
    ///
    /// # Errors
    ///
    /// The operating system's error; `WouldBlock` while in progress.
    fn shutdown_write(&mut self) -> io::Result<()>;
}

impl Stream for mio::net::TcpStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

#[cfg(unix)]
impl Stream for mio::net::UnixStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

pub(super) struct Conn<H: Handler> {
    pub(super) session: Session<H>,
    stream: Box<dyn Stream>,
    drive: Drive,
    token: Token,
    pub(super) waker: Waker,
    pub(super) wake_state: Arc<ConnWaker>,
    /// The stream may have bytes to read: cleared only by `WouldBlock`.
    read_ready: bool,
    /// The stream may take bytes: cleared only by `WouldBlock`.
    write_ready: bool,
    /// Whether `WRITABLE` is part of the registered interest.
    writable_interest: bool,
    /// The deadline this connection has in the driver's timers.
    pub(super) deadline: Option<Duration>,
    /// Whether it waits in the run queue.
    pub(super) scheduled: bool,
    /// Its place under the listener's connection cap, if accepted.
    _slot: Option<ConnectionSlot>,
}

impl<H: Handler> Conn<H> {
    pub(super) fn new(
        session: Session<H>,
        stream: Box<dyn Stream>,
        token: Token,
        (waker, wake_state): (Waker, Arc<ConnWaker>),
        slot: Option<ConnectionSlot>,
    ) -> Conn<H> {
        Conn {
            session,
            stream,
            drive: Drive::new(),
            token,
            waker,
            wake_state,
            // Assume ready until the stream says otherwise.
            read_ready: true,
            write_ready: true,
            writable_interest: false,
            deadline: None,
            scheduled: false,
            _slot: slot,
        }
    }

    pub(super) fn token(&self) -> Token {
        self.token
    }

    pub(super) fn stream(&mut self) -> &mut dyn Stream {
        &mut *self.stream
    }

    /// Records a readiness event.
    pub(super) fn ready(&mut self, readable: bool, writable: bool) {
        self.read_ready |= readable;
        self.write_ready |= writable;
    }

    /// The timer of `deadline` fired.
    pub(super) fn timer_fired(&mut self, deadline: Duration) {
        self.drive.timer_fired(deadline);
    }

    /// Runs the core's drive step over the stream.
    pub(super) fn step(&mut self, buffer: &mut ReadBuffer, now: Duration) -> Step {
        let mut io = Readiness {
            stream: &mut *self.stream,
            read_ready: &mut self.read_ready,
            write_ready: &mut self.write_ready,
        };
        self.drive
            .step(&mut self.session, &mut io, buffer, &self.waker, now)
    }

    /// When the driver's timers must run this connection next.
    pub(super) fn poll_timeout(&self) -> Option<Duration> {
        self.drive.poll_timeout(&self.session)
    }

    /// `WRITABLE` only while the drive has something to write; false if
    /// the registry refused (the session has failed: step it again).
    pub(super) fn update_interest(&mut self, registry: &Registry) -> bool {
        let wants_write = self.drive.wants_write(&self.session);
        if wants_write == self.writable_interest {
            return true;
        }
        let interest = if wants_write {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        match registry.reregister(&mut *self.stream, self.token, interest) {
            Ok(()) => {
                self.writable_interest = wants_write;
                true
            }
            Err(error) => {
                self.session.handle_io_error(error);
                false
            }
        }
    }
}

/// A mio stream as the core's [`Transport`]: an operation the last
/// `WouldBlock` ruled out fails at once, without a system call, until an
/// event says the stream is ready again (mio's readiness is edge-triggered).
struct Readiness<'a> {
    stream: &'a mut dyn Stream,
    read_ready: &'a mut bool,
    write_ready: &'a mut bool,
}

fn would_block<T>() -> io::Result<T> {
    Err(io::ErrorKind::WouldBlock.into())
}

/// Clears `ready` when `result` says the stream would block.
fn track<T>(ready: &mut bool, result: io::Result<T>) -> io::Result<T> {
    if matches!(&result, Err(error) if error.kind() == io::ErrorKind::WouldBlock) {
        *ready = false;
    }
    result
}

impl Transport for Readiness<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !*self.read_ready {
            return would_block();
        }
        track(self.read_ready, self.stream.read(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if !*self.write_ready {
            return would_block();
        }
        track(self.write_ready, self.stream.write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        track(self.write_ready, self.stream.flush())
    }

    fn shutdown(&mut self) -> io::Result<()> {
        match self.stream.shutdown_write() {
            // Already gone: nothing left to end.
            Err(error) if error.kind() == io::ErrorKind::NotConnected => Ok(()),
            result => track(self.write_ready, result),
        }
    }
}
