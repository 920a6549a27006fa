//! One connection: its stream, its session (made once the stream's
//! handshake is done), its drive state and what is known of the stream's
//! readiness.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use mio::{Interest, Registry, Token};
use tej_core::{ConnectionInfo, Handler, Session};
use tej_net::accept::ConnectionSlot;
use tej_net::drive::{Drive, Step, Transport};
use tej_net::{Observer, ReadBuffer};

use super::wake::ConnWaker;

/// A non-blocking stream a [`Driver`](crate::Driver) runs a connection
/// over: mio's `TcpStream` and `UnixStream`, a
/// `tls::TlsStream` over either (feature `tls`), or a
/// stream of your own that reports "not ready" as `WouldBlock` and its
/// readiness through its [`Source`](mio::event::Source).
///
/// A stream may need a handshake before it carries the session's bytes
/// (TLS does): the driver calls [`handshake`](Self::handshake) whenever the
/// stream is ready until it succeeds, and only then makes the session's
/// handler (for an accepted connection) and starts the session. A
/// handshake that does not complete within
/// [`SessionConfig::handshake_timeout`](tej_core::SessionConfig::handshake_timeout)
/// closes the connection, and no handler callback runs for it.
pub trait Stream: mio::event::Source + Read + Write + Send {
    /// Ends this side's direction of the stream (a TCP FIN; for TLS, a
    /// `close_notify` first).
    ///
    /// # Errors
    ///
    /// The operating system's error; `WouldBlock` while in progress.
    fn shutdown_write(&mut self) -> io::Result<()>;

    /// Advances what must happen before the session's first byte, such as
    /// a TLS handshake: `Ok(())` once done (at once for a plain stream).
    ///
    /// # Errors
    ///
    /// `WouldBlock` while waiting for the peer or for room to write (see
    /// [`wants_write`](Self::wants_write)); any other error fails the
    /// handshake and the connection is closed.
    fn handshake(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Whether a handshake is still in progress (false for a plain stream).
    fn is_handshaking(&self) -> bool {
        false
    }

    /// Whether the stream holds bytes of its own to write (TLS records
    /// not yet on the socket): the driver then watches the socket for room
    /// to write even when the session has nothing to send.
    fn wants_write(&self) -> bool {
        false
    }

    /// The peer's IP address, if the stream has one.
    fn peer_addr(&self) -> Option<SocketAddr> {
        None
    }

    /// This side's IP address, if the stream has one.
    fn local_addr(&self) -> Option<SocketAddr> {
        None
    }

    /// The load balancer's address, when [`peer_addr`](Self::peer_addr)
    /// is the client a PROXY protocol header named (a
    /// [`ProxyStream`](crate::proxy::ProxyStream), once its header is
    /// read); `None` otherwise.
    fn proxy_addr(&self) -> Option<SocketAddr> {
        None
    }

    /// Fills in what the stream knows of its connection once its
    /// handshake is done: its [`Transport`](tej_core::Transport), local address and TLS
    /// details (the driver sets the peer and proxy addresses from
    /// [`peer_addr`](Self::peer_addr) and [`proxy_addr`](Self::proxy_addr)).
    /// The default sets the local address only.
    fn describe(&self, info: &mut ConnectionInfo) {
        info.local = self.local_addr();
    }

    /// Whether a read that returns fewer bytes than asked for shows that
    /// the operating system has no more to give now, and a write that
    /// takes fewer than offered that it has no more room: the driver then
    /// waits for the next readiness event instead of trying again and
    /// getting `WouldBlock` (one system call saved per read, as tokio
    /// does). True only for a stream whose reads come straight from a
    /// socket under an edge-triggered selector (mio's TCP and Unix streams
    /// on epoll and kqueue); a stream that buffers, such as TLS, keeps the
    /// default, `false`.
    fn short_io_drains(&self) -> bool {
        false
    }
}

/// Whether mio's selector here is edge-triggered epoll or kqueue, where a
/// short read or write shows the socket drained or full (the platforms
/// tokio applies the same rule on).
const EDGE_TRIGGERED: bool = cfg!(all(
    not(mio_unsupported_force_poll_poll),
    any(
        target_os = "android",
        target_os = "illumos",
        target_os = "linux",
        target_os = "dragonfly",
        target_os = "freebsd",
        target_os = "ios",
        target_os = "macos",
        target_os = "netbsd",
        target_os = "openbsd",
    )
));

impl Stream for mio::net::TcpStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    fn short_io_drains(&self) -> bool {
        EDGE_TRIGGERED
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        mio::net::TcpStream::peer_addr(self).ok()
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        mio::net::TcpStream::local_addr(self).ok()
    }

    fn describe(&self, info: &mut ConnectionInfo) {
        info.transport = tej_core::Transport::Tcp;
        info.local = Stream::local_addr(self);
    }
}

#[cfg(unix)]
impl Stream for mio::net::UnixStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    fn describe(&self, info: &mut ConnectionInfo) {
        info.transport = tej_core::Transport::Unix;
    }

    fn short_io_drains(&self) -> bool {
        EDGE_TRIGGERED
    }
}

impl<S: Stream + ?Sized> Stream for Box<S> {
    fn shutdown_write(&mut self) -> io::Result<()> {
        (**self).shutdown_write()
    }
    fn handshake(&mut self) -> io::Result<()> {
        (**self).handshake()
    }
    fn is_handshaking(&self) -> bool {
        (**self).is_handshaking()
    }
    fn wants_write(&self) -> bool {
        (**self).wants_write()
    }
    fn peer_addr(&self) -> Option<SocketAddr> {
        (**self).peer_addr()
    }
    fn local_addr(&self) -> Option<SocketAddr> {
        (**self).local_addr()
    }
    fn proxy_addr(&self) -> Option<SocketAddr> {
        (**self).proxy_addr()
    }
    fn describe(&self, info: &mut ConnectionInfo) {
        (**self).describe(info);
    }
    fn short_io_drains(&self) -> bool {
        (**self).short_io_drains()
    }
}

pub(super) struct Conn<H: Handler> {
    /// `None` until the handshake is done, for an accepted connection; a
    /// session added by the caller waits here unstarted meanwhile.
    pub(super) session: Option<Session<H>>,
    io: Io,
    drive: Drive,
    token: Token,
    /// The peer's address, for a session made after the handshake.
    pub(super) peer: Option<SocketAddr>,
    /// While handshaking: when the handshake must be done by.
    handshake_until: Option<Duration>,
    /// Shut down before the handshake was done.
    shutdown: bool,
    pub(super) waker: Waker,
    pub(super) wake_state: Arc<ConnWaker>,
    /// Whether `WRITABLE` is part of the registered interest.
    writable_interest: bool,
    /// The deadline this connection has in the driver's timers.
    pub(super) deadline: Option<Duration>,
    /// Whether it waits in the run queue.
    pub(super) scheduled: bool,
    /// Its place under the listener's connection cap, if accepted.
    _slot: Option<ConnectionSlot>,
    /// What of its traffic the driver's observer has been told.
    traffic: tej_net::observe::TrafficReport,
    /// Its `connection` span, entered for each of its turns.
    pub(super) span: tracing::Span,
}

/// What a new connection starts with.
pub(super) struct Opening<H: Handler> {
    pub(super) session: Option<Session<H>>,
    pub(super) stream: Box<dyn Stream>,
    pub(super) peer: Option<SocketAddr>,
    /// When the handshake must be done by.
    pub(super) handshake_until: Duration,
    pub(super) slot: Option<ConnectionSlot>,
}

impl<H: Handler> Conn<H> {
    pub(super) fn new(
        opening: Opening<H>,
        token: Token,
        (waker, wake_state): (Waker, Arc<ConnWaker>),
    ) -> Conn<H> {
        let info = describe(&*opening.stream, opening.peer);
        let span = tej_net::observe::connection_span(&info, "mio");
        Conn {
            session: opening.session,
            io: Io {
                stream: opening.stream,
                // Assume ready until the stream says otherwise.
                read_ready: true,
                write_ready: true,
                read_closed: false,
                write_closed: false,
            },
            drive: Drive::new(),
            token,
            peer: opening.peer,
            handshake_until: Some(opening.handshake_until),
            shutdown: false,
            waker,
            wake_state,
            writable_interest: false,
            deadline: None,
            scheduled: false,
            _slot: opening.slot,
            traffic: tej_net::observe::TrafficReport::default(),
            span,
        }
    }

    /// Whether the listener accepted it (not a session added by the caller).
    pub(super) fn is_accepted(&self) -> bool {
        self._slot.is_some()
    }

    pub(super) fn token(&self) -> Token {
        self.token
    }

    pub(super) fn stream(&mut self) -> &mut dyn Stream {
        &mut *self.io.stream
    }

    /// What is known of the connection once its handshake is done.
    pub(super) fn info(&self) -> ConnectionInfo {
        describe(&*self.io.stream, self.peer)
    }

    /// Whether the handshake is still to be done.
    pub(super) fn is_handshaking(&self) -> bool {
        self.handshake_until.is_some()
    }

    /// Records a readiness event.
    pub(super) fn ready(&mut self, event: &mio::event::Event) {
        let failed = event.is_error();
        let io = &mut self.io;
        io.read_closed |= event.is_read_closed() || failed;
        io.write_closed |= event.is_write_closed() || failed;
        io.read_ready |= event.is_readable() || io.read_closed;
        io.write_ready |= event.is_writable() || io.write_closed;
    }

    /// The timer of `deadline` fired.
    pub(super) fn timer_fired(&mut self, deadline: Duration) {
        self.drive.timer_fired(deadline);
    }

    /// Shuts the connection down gracefully: a running session finishes
    /// the frame it is receiving; a handshake is cut.
    pub(super) fn shutdown(&mut self) {
        if self.is_handshaking() {
            self.shutdown = true;
        } else if let Some(session) = &mut self.session {
            session.shutdown();
        }
    }

    /// Tries the stream's handshake once more, if it is not done yet:
    /// `Ok(true)` once done (a session added before it then learns what it
    /// agreed on, for `Connection::info`), `Ok(false)` while it waits for the peer or for
    /// room to write; `Err` if it failed or timed out, `Err(None)` if a
    /// shutdown cut it.
    pub(super) fn handshake(&mut self, now: Duration) -> Result<bool, Option<io::Error>> {
        let Some(until) = self.handshake_until else {
            return Ok(true);
        };
        if self.shutdown {
            return Err(None);
        }
        if !try_handshake(&mut *self.io.stream, now, until)? {
            return Ok(false);
        }
        self.handshake_until = None;
        if let Some(session) = &mut self.session {
            self.io.stream.describe(session.info_mut());
            tej_net::observe::record_handshake(&self.span, session.info());
        }
        Ok(true)
    }

    /// Runs the core's drive step over the stream (the session is there
    /// once the handshake is done), and tells `observer` of the traffic.
    pub(super) fn step(
        &mut self,
        buffer: &mut ReadBuffer,
        now: Duration,
        observer: Option<&dyn Observer>,
    ) -> Step {
        let Some(session) = self.session.as_mut() else {
            return Step::Done;
        };
        if session.config().read_buffer_len > buffer.max_len() {
            *buffer = ReadBuffer::new(session.config().read_buffer_len);
        }
        if self.io.stream.wants_write() && self.io.write_ready {
            // Bytes the stream queued on its own (a TLS alert or key
            // update answered while reading): push them out. An error
            // shows again in the drive's next read or write.
            let _ = self.io.flush();
        }
        let step = self
            .drive
            .step(session, &mut self.io, buffer, &self.waker, now);
        self.traffic
            .report(session.traffic(), session.info(), observer);
        step
    }

    /// When the driver's timers must run this connection next.
    pub(super) fn poll_timeout(&self) -> Option<Duration> {
        let session = || self.drive.poll_timeout(self.session.as_ref()?);
        self.handshake_until.or_else(session)
    }

    /// `WRITABLE` only while the drive or the stream has something to
    /// write.
    ///
    /// # Errors
    ///
    /// The registry's: fail the handshake, or the session (step it again).
    pub(super) fn update_interest(&mut self, registry: &Registry) -> io::Result<()> {
        let drive_wants = |session| !self.is_handshaking() && self.drive.wants_write(session);
        let wants_write =
            self.session.as_ref().is_some_and(drive_wants) || self.io.stream.wants_write();
        if wants_write == self.writable_interest {
            return Ok(());
        }
        let interest = if wants_write {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        registry.reregister(&mut *self.io.stream, self.token, interest)?;
        self.writable_interest = wants_write;
        Ok(())
    }

    /// Ends the session with `error` (it is running).
    pub(super) fn fail(&mut self, error: io::Error) {
        if let Some(session) = &mut self.session {
            session.handle_io_error(error);
        }
    }
}

/// Tries `stream`'s handshake at `now`: `Ok(true)` once done, `Ok(false)`
/// while it waits for the peer or for room to write, `TimedOut` if it
/// still waits at `until`.
pub(crate) fn try_handshake(
    stream: &mut dyn Stream,
    now: Duration,
    until: Duration,
) -> io::Result<bool> {
    loop {
        match stream.handshake() {
            Ok(()) => return Ok(true),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock && now < until => {
                return Ok(false)
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                let why = "the handshake did not complete within the handshake timeout";
                return Err(io::Error::new(io::ErrorKind::TimedOut, why));
            }
            Err(error) => return Err(error),
        }
    }
}

/// What `stream` knows of its connection ([`Stream::describe`]), its peer
/// the client a PROXY header named (with the balancer), or else `peer`.
pub(crate) fn describe(stream: &dyn Stream, peer: Option<SocketAddr>) -> ConnectionInfo {
    let mut info = ConnectionInfo::default();
    stream.describe(&mut info);
    info.proxy = stream.proxy_addr();
    info.peer = if info.proxy.is_some() {
        stream.peer_addr()
    } else {
        peer
    };
    info
}

/// A connection's stream and what is known of its readiness, as the
/// core's [`Transport`]: an operation the last
/// `WouldBlock` ruled out fails at once, without a system call, until an
/// event says the stream is ready again (mio's readiness is edge-triggered).
struct Io {
    stream: Box<dyn Stream>,
    /// The stream may have bytes to read: cleared by `WouldBlock`, or by a
    /// short read where that shows it drained.
    read_ready: bool,
    /// The stream may take bytes: cleared by `WouldBlock`, or by a short
    /// write where that shows it full.
    write_ready: bool,
    /// An event said the peer closed its side (or the stream failed): a
    /// short read no longer shows the stream drained, since no further
    /// event will come; reads go on until the end or `WouldBlock`.
    read_closed: bool,
    /// The same for writing.
    write_closed: bool,
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

impl Transport for Io {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.read_ready {
            return would_block();
        }
        let result = track(&mut self.read_ready, self.stream.read(buf));
        // A short read shows the stream drained, unless a close was seen.
        let drains = self.stream.short_io_drains() && !self.read_closed;
        if drains && matches!(result, Ok(n) if 0 < n && n < buf.len()) {
            self.read_ready = false;
        }
        result
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if !self.write_ready {
            return would_block();
        }
        let result = track(&mut self.write_ready, self.stream.write_vectored(bufs));
        // A short write shows the stream full, unless a close was seen.
        if self.stream.short_io_drains() && !self.write_closed {
            if let Ok(n) = result {
                if 0 < n && n < bufs.iter().map(|buf| buf.len()).sum() {
                    self.write_ready = false;
                }
            }
        }
        result
    }

    fn flush(&mut self) -> io::Result<()> {
        track(&mut self.write_ready, self.stream.flush())
    }

    fn shutdown(&mut self) -> io::Result<()> {
        match self.stream.shutdown_write() {
            // Already gone: nothing left to end.
            Err(error) if error.kind() == io::ErrorKind::NotConnected => Ok(()),
            result => track(&mut self.write_ready, result),
        }
    }
}
