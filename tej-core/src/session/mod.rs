//! One connection's protocol state, without I/O: the [`Session`].
//!
//! An adapter owns the socket, the clock and the timers; the session owns
//! everything the protocol means. The adapter's loop:
//!
//! 1. [`Session::start`] once, then repeatedly:
//! 2. while [`Session::wants_read`], read into a buffer and hand the bytes to
//!    [`Session::handle_input`] (end of stream: [`Session::handle_eof`]);
//! 3. while [`Session::wants_write`], write what [`Session::transmit`] gives
//!    and report it with [`Session::advance`];
//! 4. arm a timer for [`Session::poll_timeout`] and call
//!    [`Session::handle_timeout`] when it fires;
//! 5. when woken through [`Session::poll_queue`]'s waker, call it again;
//! 6. stop when [`Session::is_closed`]: `disconnected` has run.
//!
//! Time is a parameter: `now` is a [`Duration`] since any fixed origin the
//! adapter picks (its start, say), and must not go backwards.

#[cfg(feature = "std")]
mod buffered;
mod handler;
mod outbox;
mod outgoing;
#[cfg(feature = "std")]
mod queued;
mod read_buffer;
#[cfg(feature = "std")]
mod sender;
#[cfg(feature = "std")]
mod unwritten;

use core::time::Duration;

#[cfg(feature = "std")]
pub use buffered::BufferedSender;
pub use handler::{Connection, DisconnectReason, Handler, SendError};
pub use read_buffer::ReadBuffer;
#[cfg(feature = "std")]
use sender::Exchange;
#[cfg(feature = "std")]
pub use sender::{SendFuture, Sender};

use crate::assemble::{PartialFrame, StorageError};
use crate::decode::{Decoder, Event};
use crate::frame::Frame;
use crate::limits::Limits;
use outbox::Outbox;
use outgoing::OutgoingFrame;

/// A session's options. The defaults match the reference implementation:
/// no idle timeout, no periodic ping.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// What the peer may announce.
    pub limits: Limits,
    /// Close the connection when nothing is received for this long.
    pub idle_timeout: Option<Duration>,
    /// Send an empty status-2 frame this often.
    pub ping_interval: Option<Duration>,
    /// Bytes of frames a [`Sender`] may queue before it waits. The default,
    /// 256 KiB, keeps a busy sender's frames in the CPU's caches on their
    /// way to the socket: with 1 MiB, small frames went a third slower.
    pub send_queue_capacity: usize,
    /// Bytes waiting to be written above which the session stops reading
    /// and stops taking frames from the send queue.
    pub outbox_high_water: usize,
    /// How long a closing connection may take to flush what it queued.
    pub close_linger: Duration,
    /// Size of the buffer an adapter reads the socket into.
    pub read_buffer_len: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            limits: Limits::DEFAULT,
            idle_timeout: None,
            ping_interval: None,
            send_queue_capacity: 256 << 10,
            outbox_high_water: 1 << 20,
            close_linger: Duration::from_secs(5),
            read_buffer_len: 256 * 1024,
        }
    }
}

impl SessionConfig {
    /// Sets [`limits`](Self::limits).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets [`idle_timeout`](Self::idle_timeout).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`ping_interval`](Self::ping_interval).
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Sets [`send_queue_capacity`](Self::send_queue_capacity).
    pub fn send_queue_capacity(mut self, bytes: usize) -> Self {
        self.send_queue_capacity = bytes;
        self
    }

    /// Sets [`outbox_high_water`](Self::outbox_high_water).
    pub fn outbox_high_water(mut self, bytes: usize) -> Self {
        self.outbox_high_water = bytes;
        self
    }

    /// Sets [`read_buffer_len`](Self::read_buffer_len).
    pub fn read_buffer_len(mut self, bytes: usize) -> Self {
        self.read_buffer_len = bytes;
        self
    }

    /// Sets [`close_linger`](Self::close_linger).
    pub fn close_linger(mut self, linger: Duration) -> Self {
        self.close_linger = linger;
        self
    }
}

#[derive(Debug)]
enum Lifecycle {
    New,
    Open,
    Closing(DisconnectReason),
    Closed,
}

/// What callbacks reach through a [`Connection`]: everything but the handler.
struct Link {
    outbox: Outbox,
    close_requested: bool,
    peer: Option<core::net::SocketAddr>,
    #[cfg(feature = "std")]
    sender: Sender,
}

impl Link {
    fn connection(&mut self, closing: bool) -> Connection<'_> {
        Connection {
            outbox: &mut self.outbox,
            close_requested: &mut self.close_requested,
            closing,
            peer: self.peer,
            #[cfg(feature = "std")]
            sender: &self.sender,
        }
    }
}

/// One connection's protocol state: decoder, frame assembly, the user's
/// [`Handler`], the outgoing bytes and the timers. See the [module
/// docs](self) for the loop an adapter runs around it.
pub struct Session<H: Handler> {
    config: SessionConfig,
    handler: H,
    decoder: Decoder,
    partial: PartialFrame,
    link: Link,
    lifecycle: Lifecycle,
    /// Close at the next frame boundary (graceful shutdown).
    shutdown_requested: bool,
    now: Duration,
    idle_deadline: Option<Duration>,
    next_ping: Option<Duration>,
    linger_deadline: Option<Duration>,
    /// Entries just taken from the send queue, reused to spare an allocation.
    #[cfg(feature = "std")]
    taken: alloc::vec::Vec<queued::Queued>,
}

impl<H: Handler> core::fmt::Debug for Session<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("lifecycle", &self.lifecycle)
            .field("peer", &self.link.peer)
            .field("queued_bytes", &self.link.outbox.pending_len())
            .field("stream_offset", &self.decoder.stream_offset())
            .finish()
    }
}

impl<H: Handler> Session<H> {
    /// A session for a new connection, not yet started.
    pub fn new(handler: H, config: SessionConfig) -> Self {
        Session {
            decoder: Decoder::new(config.limits),
            partial: PartialFrame::default(),
            link: Link {
                outbox: Outbox::default(),
                close_requested: false,
                peer: None,
                #[cfg(feature = "std")]
                sender: Sender::new(config.send_queue_capacity),
            },
            config,
            handler,
            lifecycle: Lifecycle::New,
            shutdown_requested: false,
            now: Duration::ZERO,
            idle_deadline: None,
            next_ping: None,
            linger_deadline: None,
            #[cfg(feature = "std")]
            taken: alloc::vec::Vec::new(),
        }
    }

    /// Records the peer's address, for [`Connection::peer_addr`].
    pub fn with_peer(mut self, peer: core::net::SocketAddr) -> Self {
        self.link.peer = Some(peer);
        self
    }

    /// The options in force.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// A sender for this connection, usable from any thread or task.
    #[cfg(feature = "std")]
    pub fn sender(&self) -> Sender {
        self.link.sender.clone()
    }

    /// Opens the session: calls [`Handler::connected`] and starts the timers.
    /// Call once, before anything else.
    pub fn start(&mut self, now: Duration) {
        if !matches!(self.lifecycle, Lifecycle::New) {
            return;
        }
        self.now = now;
        self.lifecycle = Lifecycle::Open;
        self.idle_deadline = self.config.idle_timeout.map(|timeout| now + timeout);
        self.next_ping = self.config.ping_interval.map(|interval| now + interval);
        self.handler.connected(&mut self.link.connection(false));
        self.after_callbacks();
    }

    /// Whether the adapter should read from the socket now. False while too
    /// much waits to be written (backpressure) and once closing.
    pub fn wants_read(&self) -> bool {
        matches!(self.lifecycle, Lifecycle::Open)
            && self.link.outbox.memory_len() < self.config.outbox_high_water
    }

    /// Whether bytes wait to be written: call [`transmit`](Self::transmit).
    pub fn wants_write(&self) -> bool {
        !matches!(self.lifecycle, Lifecycle::Closed) && !self.link.outbox.is_empty()
    }

    /// Whether the connection is over: [`Handler::disconnected`] has run and
    /// the adapter should close the socket.
    pub fn is_closed(&self) -> bool {
        matches!(self.lifecycle, Lifecycle::Closed)
    }

    /// Whether the session is closing: flushing what it queued, reading nothing.
    pub fn is_closing(&self) -> bool {
        matches!(self.lifecycle, Lifecycle::Closing(_))
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> u64 {
        self.link.outbox.pending_len()
    }

    /// Takes bytes received from the socket; returns how many were used.
    ///
    /// Completed frames go to [`Handler::received`] or
    /// [`Handler::ping_received`] before this returns. Fewer bytes than
    /// given are used only when the session starts closing part-way (a
    /// protocol error, a handler's close, a graceful shutdown); the rest is
    /// not for this session.
    pub fn handle_input(&mut self, input: &[u8], now: Duration) -> usize {
        self.now = now;
        if !matches!(self.lifecycle, Lifecycle::Open) {
            return 0;
        }
        if !input.is_empty() {
            self.idle_deadline = self.config.idle_timeout.map(|timeout| now + timeout);
        }
        let mut consumed = 0;
        loop {
            // The one-step path for whole frames without files. Its three
            // closing checks repeat the event path's below on purpose: merged
            // into one loop tail, small frames went 74 -> 52 M/s (session
            // bench, `wire_to_handler`).
            if !self.partial.is_started() {
                if let Some(whole) = self.decoder.decode_message_frame(&input[consumed..]) {
                    consumed += whole.consumed;
                    let frame = self.partial.message_frame(&whole);
                    self.deliver(frame);
                    if self.shutdown_requested {
                        self.begin_close(DisconnectReason::LocalClose);
                    }
                    if !matches!(self.lifecycle, Lifecycle::Open) {
                        break;
                    }
                    continue;
                }
            }
            let decoded = match self.decoder.decode(&input[consumed..]) {
                Ok(decoded) => decoded,
                Err(error) => {
                    self.begin_close(DisconnectReason::Protocol(error));
                    break;
                }
            };
            consumed += decoded.consumed;
            let Some(event) = decoded.event else {
                break;
            };
            let frame_ended = matches!(event, Event::FrameEnd);
            let handler = &mut self.handler;
            let applied = self.partial.apply(event, &mut |name, size, index| {
                handler.file_target(name, size, index)
            });
            match applied {
                Ok(Some(frame)) => self.deliver(frame),
                Ok(None) => {}
                Err(error) => {
                    self.begin_close(storage_reason(error));
                    break;
                }
            }
            if frame_ended && self.shutdown_requested {
                self.begin_close(DisconnectReason::LocalClose);
            }
            if !matches!(self.lifecycle, Lifecycle::Open) {
                break;
            }
        }
        self.pump();
        consumed
    }

    /// The peer closed its side of the connection (a read returned 0).
    pub fn handle_eof(&mut self, now: Duration) {
        self.now = now;
        if !matches!(self.lifecycle, Lifecycle::Open) {
            return;
        }
        let reason = match self.decoder.finish() {
            Ok(()) => DisconnectReason::PeerClosed,
            Err(error) => DisconnectReason::Protocol(error),
        };
        self.begin_close(reason);
        self.pump();
    }

    /// Reading or writing the socket failed: the connection is over.
    #[cfg(feature = "std")]
    pub fn handle_io_error(&mut self, error: std::io::Error) {
        // While closing, the first reason stands; the error only ends the flush.
        self.end_now(DisconnectReason::Io(std::sync::Arc::new(error)));
    }

    /// Runs the timers that are due at `now`: idle timeout, ping, the end
    /// of a closing connection's flush.
    pub fn handle_timeout(&mut self, now: Duration) {
        self.now = now;
        match self.lifecycle {
            Lifecycle::Open => {
                if self.idle_deadline.is_some_and(|deadline| now >= deadline) {
                    self.begin_close(DisconnectReason::IdleTimeout);
                } else if let (Some(due), Some(interval)) =
                    (self.next_ping, self.config.ping_interval)
                {
                    if now >= due {
                        self.queue_own(Frame::ping());
                        // Catch up without a burst after a long stall.
                        self.next_ping = Some(now.max(due) + interval);
                    }
                }
            }
            Lifecycle::Closing(_) => {
                if self.linger_deadline.is_some_and(|deadline| now >= deadline) {
                    self.finish();
                }
            }
            Lifecycle::New | Lifecycle::Closed => {}
        }
        self.pump();
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Duration> {
        match self.lifecycle {
            Lifecycle::Open => match (self.idle_deadline, self.next_ping) {
                (Some(idle), Some(ping)) => Some(idle.min(ping)),
                (idle, ping) => idle.or(ping),
            },
            Lifecycle::Closing(_) => self.linger_deadline,
            Lifecycle::New | Lifecycle::Closed => None,
        }
    }

    /// Fills `out` with the next bytes to write, in order; returns how many
    /// slices it filled. Write them (all or part, ideally in one vectored
    /// write), then call [`advance`](Self::advance) with the count written.
    pub fn transmit<'a>(&'a mut self, out: &mut [&'a [u8]]) -> usize {
        if matches!(self.lifecycle, Lifecycle::Closed) {
            return 0;
        }
        if let Err(error) = self.link.outbox.read_ahead() {
            self.end_now(storage_reason(error));
            return 0;
        }
        self.link.outbox.fill(out)
    }

    /// As [`transmit`](Self::transmit), as `IoSlice`s for `write_vectored`.
    #[cfg(feature = "std")]
    pub fn transmit_io_slices<'a>(&'a mut self, out: &mut [std::io::IoSlice<'a>]) -> usize {
        const MAX_SLICES: usize = 64;
        let mut slices: [&'a [u8]; MAX_SLICES] = [&[]; MAX_SLICES];
        let limit = out.len().min(MAX_SLICES);
        let filled = self.transmit(&mut slices[..limit]);
        for (slot, slice) in out.iter_mut().zip(&slices[..filled]) {
            *slot = std::io::IoSlice::new(slice);
        }
        filled
    }

    /// Records that `written` bytes from [`transmit`](Self::transmit) went out.
    pub fn advance(&mut self, written: usize) {
        self.link.outbox.advance(written);
        self.pump();
    }

    /// Registers the waker to wake when a [`Sender`] queues a frame or asks
    /// to close, and takes queued frames while there is room.
    #[cfg(feature = "std")]
    pub fn poll_queue(&mut self, waker: &core::task::Waker) {
        self.exchange(Some(waker));
    }

    /// Closes the connection after flushing what is queued.
    pub fn close(&mut self) {
        self.begin_close(DisconnectReason::LocalClose);
        self.pump();
    }

    /// Closes the connection at the next frame boundary: a frame being
    /// received is finished first.
    pub fn shutdown(&mut self) {
        if self.decoder.is_between_frames() && !self.partial.is_started() {
            self.close();
        } else {
            self.shutdown_requested = true;
        }
    }

    // Inlined so that a frame is built where the handler receives it: moving
    // it through a call costs more than the rest of a small frame's delivery.
    #[inline(always)]
    fn deliver(&mut self, frame: Frame) {
        let mut conn = self.link.connection(false);
        if frame.is_ping() {
            self.handler.ping_received(&mut conn, frame);
        } else {
            self.handler.received(&mut conn, frame);
        }
        self.after_callbacks();
    }

    fn after_callbacks(&mut self) {
        if core::mem::take(&mut self.link.close_requested) {
            self.begin_close(DisconnectReason::LocalClose);
        }
    }

    /// Queues a frame the session itself sends (a ping).
    fn queue_own(&mut self, frame: Frame) {
        if let Ok(outgoing) = OutgoingFrame::prepare(frame) {
            self.link.outbox.push(outgoing);
        }
    }

    fn begin_close(&mut self, reason: DisconnectReason) {
        if matches!(self.lifecycle, Lifecycle::New | Lifecycle::Open) {
            self.lifecycle = Lifecycle::Closing(reason);
            self.linger_deadline = Some(self.now + self.config.close_linger);
        }
    }

    /// Moves queued frames into the outbox while there is room, and ends a
    /// closing session once everything it owes is written.
    fn pump(&mut self) {
        self.exchange(None);
    }

    /// [`pump`](Self::pump), also registering the driver's waker.
    fn exchange(&mut self, #[allow(unused_variables)] waker: Option<&core::task::Waker>) {
        #[cfg(feature = "std")]
        {
            let flushing_local_close = matches!(
                self.lifecycle,
                Lifecycle::Closing(DisconnectReason::LocalClose)
            );
            let room = if matches!(self.lifecycle, Lifecycle::Open) || flushing_local_close {
                self.config
                    .outbox_high_water
                    .saturating_sub(self.link.outbox.memory_len())
            } else {
                0
            };
            let mut taken = core::mem::take(&mut self.taken);
            let close_requested = self.link.sender.exchange(
                Exchange {
                    waker,
                    room,
                    outbox_empty: self.link.outbox.is_empty(),
                    take_all: flushing_local_close,
                    spare: self.link.outbox.spare_run(),
                },
                &mut taken,
            );
            for queued in taken.drain(..) {
                self.link.outbox.push_queued(queued);
            }
            self.taken = taken;
            if matches!(self.lifecycle, Lifecycle::Open) && close_requested {
                self.begin_close(DisconnectReason::LocalClose);
                // Frames queued before the close request still go out.
                self.pump();
                return;
            }
        }
        if matches!(self.lifecycle, Lifecycle::Closing(_))
            && self.link.outbox.is_empty()
            && !self.queue_pending()
        {
            self.finish();
        }
    }

    /// Whether a local close still has frames in the send queue to flush.
    fn queue_pending(&self) -> bool {
        #[cfg(feature = "std")]
        {
            matches!(
                self.lifecycle,
                Lifecycle::Closing(DisconnectReason::LocalClose)
            ) && self.link.sender.queued_bytes() > 0
        }
        #[cfg(not(feature = "std"))]
        {
            false
        }
    }

    /// Ends the session without flushing. A closing session keeps its reason.
    fn end_now(&mut self, reason: DisconnectReason) {
        if matches!(self.lifecycle, Lifecycle::New | Lifecycle::Open) {
            self.lifecycle = Lifecycle::Closing(reason);
        }
        self.finish();
    }

    /// Ends the session: `disconnected` runs, exactly once.
    fn finish(&mut self) {
        let reason = match core::mem::replace(&mut self.lifecycle, Lifecycle::Closed) {
            Lifecycle::Closing(reason) => reason,
            Lifecycle::Closed => return,
            Lifecycle::New | Lifecycle::Open => DisconnectReason::Dropped,
        };
        #[cfg(feature = "std")]
        self.link
            .sender
            .shut_with_unwritten(self.link.outbox.take_unwritten());
        // Dropping an unfinished frame removes the files it spooled.
        self.partial = PartialFrame::default();
        self.handler.disconnected(reason);
    }
}

impl<H: Handler> Drop for Session<H> {
    fn drop(&mut self) {
        // A handler that panicked must not be called again while unwinding;
        // its senders still learn that the connection is gone.
        #[cfg(feature = "std")]
        if std::thread::panicking() {
            self.link.sender.shut();
            return;
        }
        if !matches!(self.lifecycle, Lifecycle::New | Lifecycle::Closed) {
            self.finish();
        }
    }
}

#[cfg(feature = "std")]
fn storage_reason(error: StorageError) -> DisconnectReason {
    DisconnectReason::Storage(std::sync::Arc::new(error))
}

#[cfg(not(feature = "std"))]
fn storage_reason(error: StorageError) -> DisconnectReason {
    match error {}
}
