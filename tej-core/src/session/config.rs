//! A session's options.

use core::time::Duration;

use crate::limits::Limits;

/// A session's options. The defaults match the reference implementation:
/// no idle timeout, no periodic ping.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// What the peer may announce.
    pub limits: Limits,
    /// Close the connection when nothing is received for this long.
    pub idle_timeout: Option<Duration>,
    /// Close the connection when no byte moved either way for this long:
    /// nothing received and nothing written. Unlike the idle timeout, an
    /// upload keeps it alive as long as the peer takes its bytes, so a dead
    /// peer or a silent path is noticed whichever side is sending; a peer
    /// that stays silent longer than this while it works must send pings.
    /// The connection ends at once, without the
    /// [`close_linger`](Self::close_linger) flush: nothing could be written
    /// for this long already. Off by default.
    pub stall_timeout: Option<Duration>,
    /// Send an empty status-2 frame this often.
    pub ping_interval: Option<Duration>,
    /// Bytes of frames a [`Sender`](crate::Sender) may queue before it waits. The default,
    /// 256 KiB, keeps a busy sender's frames in the CPU's caches on their
    /// way to the socket: with 1 MiB, small frames went a third slower.
    pub send_queue_capacity: usize,
    /// Bytes waiting to be written above which the session stops reading
    /// and stops taking frames from the send queue.
    pub outbox_high_water: usize,
    /// How long a closing connection may go without writing a byte before
    /// it gives up flushing what it queued (a peer that stopped reading):
    /// while bytes go out, a large last file is flushed however long it
    /// takes. Also bounds, once the session has ended, the stream's flush,
    /// shutdown and, after a graceful end, the wait for the peer's end of
    /// stream (so that a reset cannot destroy what it has not read yet).
    pub close_linger: Duration,
    /// Size of the buffer an adapter reads the socket into. It starts at
    /// 16 KiB and grows to this as reads fill it.
    pub read_buffer_len: usize,
    /// Size the read buffer may grow to while a large file or message body
    /// streams in: reads of that body (and of nothing past it) up to this
    /// size, as the kernel's copies go fastest in large pieces. Back to
    /// [`read_buffer_len`](Self::read_buffer_len) once bodies stop. Default
    /// 2 MiB; at most [`read_buffer_len`](Self::read_buffer_len) to never grow.
    pub bulk_read_len: usize,
    /// A deadline for every frame, against peers that send too slowly to
    /// ever finish one (see [`FrameTimeout`]). Off by default.
    pub frame_timeout: Option<FrameTimeout>,
    /// How long a server's connection may take, from accept, to get through
    /// what comes before the session: a TLS handshake, a PROXY protocol
    /// header. A peer that has not finished by then is closed and never
    /// reaches a handler. Default 10 s.
    pub handshake_timeout: Duration,
}

/// How long a frame may take to arrive, by the rule of Apache's
/// `mod_reqtimeout`: a fixed allowance plus time earned per byte.
///
/// A frame whose first byte arrives at `start` must be complete by
/// `start + base + received / min_rate`, where `received` is how many of
/// its bytes have arrived so far. A fast transfer earns its time as it
/// goes, so a multi-GiB file at full speed is never cut; a peer that drips
/// a byte now and then below `min_rate` is, with
/// [`DisconnectReason::FrameTimeout`](crate::DisconnectReason::FrameTimeout), even if it stays under the idle
/// timeout.
///
/// ```
/// use std::time::Duration;
/// use tej_core::FrameTimeout;
///
/// let rule = FrameTimeout::new(Duration::from_secs(10), 64 * 1024);
/// let start = Duration::from_secs(100);
/// // 1 MiB received earns 16 s on top of the 10 s allowance.
/// assert_eq!(rule.deadline(start, 1 << 20), Duration::from_secs(126));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameTimeout {
    /// Time every frame gets, however small.
    pub base: Duration,
    /// Bytes per second a peer must keep up on average; each byte received
    /// earns `1 / min_rate` seconds. Zero earns nothing: every frame must
    /// then finish within `base`.
    pub min_rate: u64,
}

impl FrameTimeout {
    /// A frame may take `base` plus one second per `min_rate` bytes received.
    pub const fn new(base: Duration, min_rate: u64) -> FrameTimeout {
        FrameTimeout { base, min_rate }
    }

    /// When a frame that started at `start` and has `received` bytes so far
    /// must be complete. Saturates instead of overflowing.
    pub fn deadline(&self, start: Duration, received: u64) -> Duration {
        let earned = match self.min_rate {
            0 => Duration::ZERO,
            rate => {
                let secs = received / rate;
                let nanos = u128::from(received % rate) * 1_000_000_000 / u128::from(rate);
                // `nanos` is below 10^9, so the conversion cannot fail.
                Duration::new(secs, u32::try_from(nanos).unwrap_or(999_999_999))
            }
        };
        start.saturating_add(self.base).saturating_add(earned)
    }
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
            bulk_read_len: 2 << 20,
            frame_timeout: None,
            stall_timeout: None,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl SessionConfig {
    setters! {
        limits(limits: Limits);
        idle_timeout(timeout: Option<Duration>);
        stall_timeout(timeout: Option<Duration>);
        ping_interval(interval: Option<Duration>);
        send_queue_capacity(bytes: usize);
        outbox_high_water(bytes: usize);
        read_buffer_len(bytes: usize);
        bulk_read_len(bytes: usize);
        frame_timeout(timeout: Option<FrameTimeout>);
        handshake_timeout(timeout: Duration);
        close_linger(linger: Duration);
    }
}
