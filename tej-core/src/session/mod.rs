//! One connection's protocol state, without I/O: the [`Session`].
//!
//! An adapter owns the socket, the clock and the timers; the session owns
//! everything the protocol means. The loop around it is written once, in
//! `tej_net::drive::Drive` (the std crate beside this one); an adapter without `std`
//! runs the same steps itself:
//!
//! 1. [`Session::start`] once, then repeatedly:
//! 2. while [`Session::wants_read`], hand input to
//!    [`Session::handle_input`], which returns how much it took: keep the
//!    rest and offer it again first (end of stream:
//!    [`Session::handle_eof`]);
//! 3. while [`Session::wants_write`], write what [`Session::transmit`] gives
//!    and report it with [`Session::advance`];
//! 4. arm a timer for [`Session::poll_timeout`] and call
//!    [`Session::handle_timeout`] when it fires;
//! 5. when woken through [`Session::poll_queue`]'s waker, call it again;
//! 6. stop when [`Session::is_closed`]: `disconnected` has run.
//!
//! Time is a parameter: `now` is a [`Duration`] since any fixed origin the
//! adapter picks (its start, say), and must not go backwards.
//!
//! # Memory
//!
//! Whatever a peer sends, and however little it reads, one connection
//! holds at most
//!
//! ```text
//! max(read_buffer_len, bulk_read_len) + read_buffer_len
//!   + max(outbox_high_water, send_queue_capacity, F) + R
//!   + send_queue_capacity + F + A
//! ```
//!
//! where `R` is what one callback sends (and a ping), `F` one frame over
//! the send queue's capacity (both this side's own frames) and `A` the frame being
//! received, at most `max_frame_size + max_file_count × max_name_len` plus
//! a few dozen bytes per file. A handler that buffers input for a consumer
//! adds `C + A`, `C` being the room it offers ([`Handler::poll_room`]).
//! The derivation, the defaults' figures and what a PROXY header or TLS
//! adds are in [`memory`].

/// What a peer can make a connection hold, and why: the derivation of the
/// formula in the [module docs](self).
#[doc = include_str!("memory.md")]
pub mod memory {}

mod config;
mod connection;
mod deadlines;
mod error;
mod handler;
mod info;
mod outbox;
mod outgoing;
#[cfg(feature = "std")]
mod progress;
#[cfg(feature = "std")]
mod run;
#[cfg(feature = "std")]
mod send_queue;
#[cfg(feature = "std")]
mod sync;
#[cfg(feature = "std")]
mod unwritten;

use alloc::sync::Arc;
use core::time::Duration;

pub use config::{FrameTimeout, SessionConfig};
pub use connection::Connection;
pub use error::{DisconnectReason, SendError};
pub use handler::Handler;
pub use info::{ConnectionInfo, TlsInfo, Traffic, Transport};
#[cfg(feature = "std")]
pub use progress::{NotWritten, SendProgress, Written};
#[cfg(feature = "std")]
pub use send_queue::{BufferedSender, SendFuture, Sender};

use crate::assemble::{ApplyError, PartialFrame, StorageError};
use crate::decode::{Decoder, Event};
use crate::error::DecodeError;
use crate::frame::{Frame, FrameView};
use deadlines::{Deadlines, Due};
use outbox::Outbox;
use outgoing::OutgoingFrame;

#[derive(Debug)]
enum Lifecycle {
    New,
    Open,
    Closing(DisconnectReason),
    /// Ended, for this reason (given to `disconnected`).
    Closed(DisconnectReason),
}

/// What callbacks reach through a [`Connection`]: everything but the handler.
struct Link {
    outbox: Outbox,
    close_requested: bool,
    info: ConnectionInfo,
    #[cfg(feature = "std")]
    queue: send_queue::Receiver,
}

impl Link {
    fn connection(&mut self, closing: bool) -> Connection<'_> {
        Connection {
            outbox: &mut self.outbox,
            close_requested: &mut self.close_requested,
            closing,
            info: &self.info,
            #[cfg(feature = "std")]
            sender: self.queue.sender(),
        }
    }
}

/// One connection's protocol state: decoder, frame assembly, the user's
/// [`Handler`], the outgoing bytes and the timers. See the [module
/// docs](self) for the loop an adapter runs around it.
pub struct Session<H: Handler> {
    /// Shared by every session a server made with the same configuration
    /// ([`with_shared_config`](Session::with_shared_config)).
    config: Arc<SessionConfig>,
    handler: H,
    decoder: Decoder,
    partial: PartialFrame,
    link: Link,
    lifecycle: Lifecycle,
    /// Close at the next frame boundary (graceful shutdown).
    shutdown_requested: bool,
    /// A graceful shutdown reached a frame boundary: nothing more is read.
    input_ended: bool,
    now: Duration,
    deadlines: Deadlines,
    /// Whole frames delivered to the handler, for [`Session::traffic`].
    frames_in: u64,
    /// A handler callback is running: if the session is dropped meanwhile,
    /// the handler panicked and must not be called again.
    in_handler: bool,
    /// Input the handler takes now ([`Handler::poll_room`]), as of the last
    /// ask less what was given since.
    room: usize,
    /// Entries just taken from the send queue, reused to spare an allocation.
    #[cfg(feature = "std")]
    taken: alloc::vec::Vec<send_queue::Queued>,
}

impl<H: Handler> core::fmt::Debug for Session<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("lifecycle", &self.lifecycle)
            .field("peer", &self.link.info.peer)
            .field("queued_bytes", &self.link.outbox.pending_len())
            .field("stream_offset", &self.decoder.stream_offset())
            .finish()
    }
}

impl<H: Handler> Session<H> {
    /// A session for a new connection, not yet started.
    pub fn new(handler: H, config: SessionConfig) -> Self {
        Self::with_shared_config(handler, Arc::new(config))
    }

    /// As [`new`](Self::new), with a configuration shared with other
    /// sessions: a server's connections then hold one copy of it, not one
    /// each.
    pub fn with_shared_config(handler: H, config: Arc<SessionConfig>) -> Self {
        Session {
            decoder: Decoder::new(config.limits.for_session_decoder()),
            partial: PartialFrame::default(),
            link: Link {
                outbox: Outbox::default(),
                close_requested: false,
                info: ConnectionInfo::default(),
                #[cfg(feature = "std")]
                queue: send_queue::Receiver::new(config.send_queue_capacity),
            },
            config,
            handler,
            lifecycle: Lifecycle::New,
            shutdown_requested: false,
            input_ended: false,
            now: Duration::ZERO,
            deadlines: Deadlines::default(),
            frames_in: 0,
            in_handler: false,
            room: usize::MAX,
            #[cfg(feature = "std")]
            taken: alloc::vec::Vec::new(),
        }
    }

    /// Records the peer's address, for [`Connection::peer_addr`].
    pub fn with_peer(mut self, peer: core::net::SocketAddr) -> Self {
        self.link.info.peer = Some(peer);
        self
    }

    /// Records the peer's address and the proxy it came through, when
    /// known: what a server's PROXY protocol step gives
    /// ([`proxy::Admission`](crate::proxy::Admission)).
    pub fn with_addresses(
        mut self,
        peer: Option<core::net::SocketAddr>,
        proxy: Option<core::net::SocketAddr>,
    ) -> Self {
        self.link.info.peer = peer;
        self.link.info.proxy = proxy;
        self
    }

    /// Records that the connection came through the proxy at `proxy`,
    /// whose PROXY protocol header named `peer` as the client: for
    /// [`Connection::peer_addr`] and [`Connection::proxy_addr`].
    pub fn with_proxied_peer(
        mut self,
        peer: core::net::SocketAddr,
        proxy: core::net::SocketAddr,
    ) -> Self {
        self.link.info.peer = Some(peer);
        self.link.info.proxy = Some(proxy);
        self
    }

    /// Records what the adapter knows of the connection (addresses,
    /// transport, TLS), for [`Connection::info`], replacing what
    /// [`with_peer`](Self::with_peer) and the like recorded.
    pub fn with_info(mut self, info: ConnectionInfo) -> Self {
        self.link.info = info;
        self
    }

    /// What is known of the connection: see [`with_info`](Self::with_info).
    pub fn info(&self) -> &ConnectionInfo {
        &self.link.info
    }

    /// Frames and bytes moved so far each way, for metrics.
    pub fn traffic(&self) -> Traffic {
        let (frames_out, bytes_out) = self.link.outbox.totals();
        Traffic {
            frames_in: self.frames_in,
            bytes_in: self.decoder.stream_offset(),
            frames_out,
            bytes_out,
        }
    }

    /// What is known of the connection, for an adapter that learns more
    /// after making the session (a TLS handshake run before it starts).
    pub fn info_mut(&mut self) -> &mut ConnectionInfo {
        &mut self.link.info
    }

    /// Whether the next steps may do blocking file I/O: a body being
    /// received goes to a spool file or a writer, or a file on disk is
    /// being sent. An executor whose threads must not block (Tokio's
    /// multi-thread runtime, through `block_in_place`) can move such steps
    /// off its async threads; tej-tokio does.
    #[cfg(feature = "std")]
    pub fn does_file_io(&self) -> bool {
        self.partial.is_storing() || self.link.outbox.reads_files()
    }

    /// Bytes of the file or message body now arriving that are still to
    /// come (0 between bodies): what a driver may read in one piece knowing
    /// it is all payload, none of it past the frame's next boundary.
    pub fn body_remaining(&self) -> u64 {
        self.decoder.body_remaining()
    }

    /// Why the connection ended, once it has: the reason
    /// [`Handler::disconnected`] was given.
    pub fn disconnect_reason(&self) -> Option<&DisconnectReason> {
        match &self.lifecycle {
            Lifecycle::Closed(reason) => Some(reason),
            _ => None,
        }
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
        self.link.queue.sender().clone()
    }

    /// Opens the session: calls [`Handler::connected`] and starts the timers.
    /// Call once, before anything else.
    pub fn start(&mut self, now: Duration) {
        if !matches!(self.lifecycle, Lifecycle::New) {
            return;
        }
        self.now = now;
        self.lifecycle = Lifecycle::Open;
        self.deadlines.open(now, &self.config);
        self.in_handler = true;
        self.handler.connected(&mut self.link.connection(false));
        self.in_handler = false;
        self.after_callbacks();
    }

    /// Whether the session takes input now. False once closing; while the
    /// handler has no room ([`Handler::poll_room`]: ask again with
    /// [`poll_room`](Self::poll_room)); and between frames while the outbox
    /// holds
    /// [`outbox_high_water`](SessionConfig::outbox_high_water) bytes or more
    /// (backpressure); a frame part-way is always read to its end then,
    /// since its bytes go to the assembler, not the outbox.
    pub fn wants_read(&self) -> bool {
        matches!(self.lifecycle, Lifecycle::Open)
            && self.room > 0
            && !self.input_ended
            && (self.link.outbox.memory_len() < self.config.outbox_high_water
                || self.frame_in_progress())
    }

    /// Asks the handler how much input it takes now
    /// ([`Handler::poll_room`]), registering `waker` to be woken when it has
    /// room again: call before deciding to read, as `tej_net::drive::Drive`
    /// does each round. While it has none, [`wants_read`](Self::wants_read)
    /// is false and the idle, stall and frame deadlines stand still.
    pub fn poll_room(&mut self, waker: &core::task::Waker, now: Duration) {
        self.now = self.now.max(now);
        if matches!(self.lifecycle, Lifecycle::Open) {
            self.in_handler = true;
            self.room = self.handler.poll_room(waker);
            self.in_handler = false;
            self.track_pause();
        }
    }

    /// Asks the handler again for room, without a waker to register: the
    /// driver's next [`poll_room`](Self::poll_room) registers one.
    #[inline(always)]
    fn refresh_room(&mut self) {
        self.room = self.handler.poll_room(core::task::Waker::noop());
    }

    /// Stops or restarts the deadlines the peer is not to blame for.
    fn track_pause(&mut self) {
        if self.room == 0 || self.input_ended {
            self.deadlines.pause(self.now);
        } else {
            self.deadlines.resume(self.now);
        }
    }

    /// Whether part of a frame has arrived and the rest has not.
    fn frame_in_progress(&self) -> bool {
        self.partial.is_started() || !self.decoder.is_between_frames()
    }

    /// Whether input must stop at this frame boundary: the session is not
    /// open, the replies waiting are over the high-water mark, or the
    /// handler has no room.
    #[inline(always)]
    fn stop_taking_input(&self) -> bool {
        !matches!(self.lifecycle, Lifecycle::Open)
            || self.link.outbox.memory_len() >= self.config.outbox_high_water
            || self.room == 0
            || self.input_ended
    }

    /// Whether bytes wait to be written: call [`transmit`](Self::transmit).
    pub fn wants_write(&self) -> bool {
        !matches!(self.lifecycle, Lifecycle::Closed(_)) && !self.link.outbox.is_empty()
    }

    /// Whether the connection is over: [`Handler::disconnected`] has run and
    /// the adapter should close the socket.
    pub fn is_closed(&self) -> bool {
        matches!(self.lifecycle, Lifecycle::Closed(_))
    }

    /// Whether the session is open: started, and neither closing nor closed.
    pub fn is_open(&self) -> bool {
        matches!(self.lifecycle, Lifecycle::Open)
    }

    /// Whether the session is closing: flushing what it queued, reading nothing.
    pub fn is_closing(&self) -> bool {
        matches!(self.lifecycle, Lifecycle::Closing(_))
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> u64 {
        self.link.outbox.pending_len()
    }

    /// Bytes of the frame being received that are held in memory (files
    /// kept in memory, names, the message so far); files spooled to disk or
    /// sent to a writer count only their names.
    pub fn receiving_bytes(&self) -> usize {
        self.partial.memory_len()
    }

    /// Takes bytes received from the socket; returns how many were used.
    ///
    /// Completed frames go to [`Handler::received`] or
    /// [`Handler::ping_received`] before this returns. Fewer bytes than
    /// given are used in these cases:
    ///
    /// - **Backpressure.** Once a frame ends while the outbox (replies sent
    ///   from callbacks included) holds more than
    ///   [`outbox_high_water`](SessionConfig::outbox_high_water) bytes, the
    ///   session stops at that frame boundary. Keep the rest and offer it
    ///   again once [`wants_read`](Self::wants_read) is true (after writes
    ///   drained the outbox). `tej_net::drive::Drive` does this.
    /// - **The handler's room.** [`Handler::poll_room`] said how much it
    ///   takes: file bodies stop there, mid-body included, and whole
    ///   frames at the boundary once it is spent. Offer the rest once
    ///   [`poll_room`](Self::poll_room) found room again.
    /// - **Closing.** The session started closing part-way (a protocol
    ///   error, a handler's close, a graceful shutdown): the rest is not for
    ///   this session.
    /// - **A sink that blocks.** A file's header just chose a
    ///   [`FileSink`](crate::storage::FileSink) that
    ///   [`blocks`](crate::storage::FileSink::blocks): the session returns
    ///   before the sink's first step, with [`does_file_io`](Self::does_file_io)
    ///   now true, so that a driver can run the next call off its async
    ///   threads. Offer the rest again at once.
    ///
    /// Messages and in-memory files are copied out of `input`; input in a
    /// shared buffer can go to [`handle_bytes`](Self::handle_bytes) instead,
    /// which hands them out without a copy.
    pub fn handle_input(&mut self, input: &[u8], now: Duration) -> usize {
        self.take_input(input, None, now)
    }

    /// As [`handle_input`](Self::handle_input), for input in a shared
    /// buffer: a message or an in-memory file that arrived whole in
    /// `input` is handed out as a slice of it (no copy, no allocation), and
    /// a [`FileSink`](crate::storage::FileSink) gets its bytes as slices
    /// ([`write_bytes`](crate::storage::FileSink::write_bytes)).
    ///
    /// A slice keeps the whole buffer it is part of alive: a handler that
    /// keeps a few bytes of many frames for long should copy them.
    pub fn handle_bytes(&mut self, input: &bytes::Bytes, now: Duration) -> usize {
        self.take_input(input, Some(input), now)
    }

    /// [`handle_input`](Self::handle_input), with `shared` (if any) the
    /// buffer `input` is: slices of it are handed out instead of copies.
    #[inline(always)]
    fn take_input(&mut self, input: &[u8], shared: Option<&bytes::Bytes>, now: Duration) -> usize {
        self.now = now;
        if matches!(self.lifecycle, Lifecycle::Open) {
            self.refresh_room();
        }
        if !self.wants_read() {
            return 0;
        }
        if !input.is_empty() {
            self.deadlines.received(now, &self.config);
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
                    self.deliver_view(FrameView::of(&whole, shared));
                    self.refresh_room();
                    if self.shutdown_requested {
                        self.end_input();
                    }
                    if self.stop_taking_input() {
                        break;
                    }
                    continue;
                }
            }
            // A file body goes to the handler no faster than it has room.
            let end = if self.partial.in_file() && self.decoder.body_remaining() > 0 {
                consumed + (input.len() - consumed).min(self.room)
            } else {
                input.len()
            };
            let decoded = match self.decoder.decode(&input[consumed..end]) {
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
            let file_started = matches!(event, Event::FileStart { .. });
            let handler = &mut self.handler;
            self.in_handler = true;
            match event {
                Event::FileData(data) => self.room = self.room.saturating_sub(data.len()),
                Event::FrameStart {
                    status, file_count, ..
                } if file_count > 0 => handler.frame_started(status, file_count),
                _ => {}
            }
            let applied = self.partial.apply(
                event,
                shared,
                Some(&self.config.limits),
                &mut |name, size, index| handler.file_target(name, size, index),
            );
            self.in_handler = false;
            match applied {
                Ok(Some(frame)) => self.deliver(frame),
                Ok(None) => {}
                Err(ApplyError::Storage(error)) => {
                    self.begin_close(storage_reason(error));
                    break;
                }
                Err(ApplyError::Limit { limit, value, max }) => {
                    // The length just read: the 8 bytes before where the decoder stands.
                    let offset = self.decoder.stream_offset().saturating_sub(8);
                    let error = DecodeError::LimitExceeded {
                        limit,
                        value,
                        max,
                        offset,
                    };
                    self.begin_close(DisconnectReason::Protocol(error));
                    break;
                }
            }
            if frame_ended {
                self.refresh_room();
                if self.shutdown_requested {
                    self.end_input();
                }
                if self.stop_taking_input() {
                    break;
                }
            } else if !matches!(self.lifecycle, Lifecycle::Open)
                || self.room == 0
                || (file_started && self.partial.is_storing())
            {
                // A file just went to a sink that blocks: its first bytes
                // wait for the next call, which a driver can move off its
                // async threads (`does_file_io` now says so).
                break;
            }
        }
        self.track_pause();
        let in_progress = self.frame_in_progress();
        self.deadlines
            .track_frame(now, &self.config, in_progress, self.decoder.stream_offset());
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
            Lifecycle::Open => match self.deadlines.due(now, &self.config) {
                Some(Due::Idle) => self.begin_close(DisconnectReason::IdleTimeout),
                // Nothing could be written for the stall timeout: a flush
                // for `close_linger` on top would only wait longer.
                Some(Due::Stall) => self.end_now(DisconnectReason::StallTimeout),
                Some(Due::Frame) => self.begin_close(DisconnectReason::FrameTimeout),
                // A peer that reads nothing gets no more pings: queued
                // behind what waits, they would only grow the outbox.
                Some(Due::Ping)
                    if self.link.outbox.memory_len() < self.config.outbox_high_water =>
                {
                    self.queue_own(Frame::ping())
                }
                Some(Due::Ping) | None => {}
            },
            Lifecycle::Closing(_) => {
                if self.deadlines.linger_over(now) {
                    self.finish();
                }
            }
            Lifecycle::New | Lifecycle::Closed(_) => {}
        }
        self.pump();
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Duration> {
        match self.lifecycle {
            Lifecycle::Open => self.deadlines.next_open(),
            Lifecycle::Closing(_) => self.deadlines.next_closing(),
            Lifecycle::New | Lifecycle::Closed(_) => None,
        }
    }

    /// Fills `out` with the next bytes to write, in order; returns how many
    /// slices it filled. Write them (all or part, ideally in one vectored
    /// write), then call [`advance`](Self::advance) with the count written.
    pub fn transmit<'a>(&'a mut self, out: &mut [&'a [u8]]) -> usize {
        if matches!(self.lifecycle, Lifecycle::Closed(_)) {
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
        self.advance_at(written, self.now);
    }

    /// As [`advance`](Self::advance), at `now`: a closing session that
    /// writes keeps flushing for another
    /// [`close_linger`](SessionConfig::close_linger) from here.
    pub fn advance_at(&mut self, written: usize, now: Duration) {
        self.now = self.now.max(now);
        if written > 0 {
            self.deadlines.wrote(self.now, &self.config);
            self.deadlines.moved(self.now, &self.config);
        }
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

    /// Stops reading at the next frame boundary (a frame being received
    /// is finished first), then asks the handler what follows
    /// ([`Handler::input_ended`]): by default the connection closes once
    /// what is queued is sent.
    pub fn shutdown(&mut self) {
        if self.decoder.is_between_frames() && !self.partial.is_started() {
            self.end_input();
            self.pump();
        } else {
            self.shutdown_requested = true;
        }
    }

    /// Reads no more, and tells the handler.
    fn end_input(&mut self) {
        self.shutdown_requested = false;
        if self.input_ended || !matches!(self.lifecycle, Lifecycle::Open) {
            return;
        }
        self.input_ended = true;
        self.deadlines.pause(self.now);
        self.in_handler = true;
        self.handler.input_ended(&mut self.link.connection(false));
        self.in_handler = false;
        self.after_callbacks();
    }

    // Inlined so that a frame is built where the handler receives it: moving
    // it through a call costs more than the rest of a small frame's delivery.
    #[inline(always)]
    fn deliver(&mut self, frame: Frame) {
        self.count_delivered();
        self.hand_over(frame);
    }

    /// A frame is delivered: the next frame's bytes start here, and a
    /// deadline for this one ends.
    #[inline(always)]
    fn count_delivered(&mut self) {
        self.deadlines.frame_delivered(self.decoder.stream_offset());
        self.frames_in += 1;
    }

    /// Gives `frame` to the handler (counted already).
    #[inline(always)]
    fn hand_over(&mut self, frame: Frame) {
        let mut conn = self.link.connection(false);
        self.in_handler = true;
        if frame.is_ping() {
            self.handler.ping_received(&mut conn, frame);
        } else {
            self.handler.received(&mut conn, frame);
        }
        self.in_handler = false;
        self.after_callbacks();
    }

    /// [`deliver`](Self::deliver) for a frame without files that arrived
    /// whole: lent to [`Handler::received_view`] first (not a ping), and
    /// made a frame if the handler hands it back. The default hands it
    /// back at once, so a handler that does not take views gets its frame
    /// as `deliver` gives it.
    #[inline(always)]
    fn deliver_view(&mut self, frame: FrameView<'_>) {
        self.count_delivered();
        if !frame.status.is_ping() {
            let mut conn = self.link.connection(false);
            self.in_handler = true;
            let declined = self.handler.received_view(&mut conn, frame);
            self.in_handler = false;
            if declined.is_none() {
                self.after_callbacks();
                return;
            }
        }
        self.hand_over(frame.to_frame());
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
            self.deadlines.closing(self.now, &self.config);
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
            let close_requested = self.link.queue.exchange(
                send_queue::Exchange {
                    waker,
                    room,
                    outbox_empty: self.link.outbox.is_empty(),
                    take_all: flushing_local_close,
                    spare: self.link.outbox.spare_run(),
                },
                &mut taken,
            );
            for queued in taken.drain(..) {
                match queued {
                    send_queue::Queued::Frame(frame) => self.link.outbox.push_tracked(frame),
                    send_queue::Queued::Encoded(run) => {
                        self.link.outbox.push_run(run.bytes.freeze(), run.frames);
                    }
                }
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
            && self.queue_drained()
        {
            self.finish();
        }
    }

    /// Whether a closing session has flushed its send queue. A local close
    /// ends only once the queue is empty, checked and closed under its
    /// lock, so that a frame another thread queues meanwhile is written,
    /// never accepted and handed back; other ends hand back what is queued
    /// ([`Sender::take_unsent`]).
    fn queue_drained(&self) -> bool {
        #[cfg(feature = "std")]
        if matches!(
            self.lifecycle,
            Lifecycle::Closing(DisconnectReason::LocalClose)
        ) {
            return self.link.queue.shut_if_empty();
        }
        true
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
        let reason = match &self.lifecycle {
            Lifecycle::Closing(reason) => reason.clone(),
            Lifecycle::Closed(_) => return,
            Lifecycle::New | Lifecycle::Open => DisconnectReason::Dropped,
        };
        self.lifecycle = Lifecycle::Closed(reason.clone());
        #[cfg(feature = "std")]
        self.link
            .queue
            .shut_with_unwritten(self.link.outbox.take_unwritten());
        // Dropping an unfinished frame removes the files it spooled.
        self.partial = PartialFrame::default();
        self.in_handler = true;
        self.handler.disconnected(reason);
        self.in_handler = false;
    }
}

impl<H: Handler> Drop for Session<H> {
    fn drop(&mut self) {
        // A handler that panicked must not be called again while unwinding;
        // its senders still learn that the connection is gone.
        if self.in_handler {
            #[cfg(feature = "std")]
            self.link.queue.shut();
            return;
        }
        if !matches!(self.lifecycle, Lifecycle::New | Lifecycle::Closed(_)) {
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
