//! The buffer an adapter reads a socket into: small while the connection is
//! quiet, grown to the configured size once reads fill it, and larger still
//! while a large body streams in. A connection's own buffer can be
//! allocated on demand: none until a read needs more than a small stack
//! buffer, and given back when the connection goes quiet.

use bytes::{Bytes, BytesMut};

/// Where a read buffer starts: an idle connection costs no more than this.
const INITIAL_LEN: usize = 16 * 1024;
/// How much a buffer grows when a read fills it.
const GROWTH_FACTOR: usize = 4;
/// Reads outside a large body before a buffer grown for bodies shrinks back:
/// a loop that shares one buffer between a bulk connection and chatty ones
/// does not reallocate on every turn.
const SHRINK_AFTER: u32 = 16;

/// A reused read buffer that starts at 16 KiB and grows (up to
/// [`SessionConfig::read_buffer_len`](tej_core::SessionConfig::read_buffer_len))
/// each time a read fills it, so a thousand idle connections cost little
/// while a busy one soon reads in large pieces. While a large body streams
/// in ([`space_for_body`](Self::space_for_body)) it may grow further, to
/// [`SessionConfig::bulk_read_len`](tej_core::SessionConfig::bulk_read_len),
/// and it shrinks back once bodies stop.
///
/// What a read brought is [`take`](Self::take)n out as [`Bytes`], so that
/// the session can hand messages out as slices of it
/// ([`Session::handle_bytes`](tej_core::Session::handle_bytes)). The next
/// read goes into the rest of the same allocation; a new one is made only
/// when less than a quarter of it is left and what was handed out of it is
/// still held, so slices kept by a consumer hold at most 4/3 of their
/// share of the bytes read, plus one buffer.
///
/// One made [`on_demand`](Self::on_demand) starts with no memory at all: it
/// is [`is_empty`](Self::is_empty) until a read of
/// [`FIRST_READ_LEN`](Self::FIRST_READ_LEN) bytes on the stack came back
/// full, and it is given back when a read would block after a run of reads
/// that all fit on the stack ([`quiet`](Self::quiet)), so that idle and
/// chatty connections hold no buffer while a busy one keeps its own from
/// read to read.
#[derive(Debug, Clone)]
pub struct ReadBuffer {
    /// Where the next read goes: the initialized rest of the current
    /// allocation, after what was taken out of it.
    window: BytesMut,
    /// The buffer's size: what a new window is made of.
    size: usize,
    /// The size the current window was made with.
    made: usize,
    /// The space last offered to a read.
    offered: usize,
    max_len: usize,
    /// Reads in a row that were not of a large body.
    small_reads: u32,
    /// Given back when the connection goes quiet.
    on_demand: bool,
    /// A read since the last one that would block did not fit on the stack.
    busy: bool,
}

impl ReadBuffer {
    /// What a connection without a buffer reads into first, on the stack
    /// ([`is_empty`](Self::is_empty)): a read that fills it makes the buffer.
    pub const FIRST_READ_LEN: usize = 1024;

    /// A buffer that may grow to `max_len` bytes outside large bodies.
    pub fn new(max_len: usize) -> ReadBuffer {
        let max_len = max_len.max(1);
        ReadBuffer {
            window: BytesMut::new(),
            size: INITIAL_LEN.min(max_len),
            made: 0,
            offered: 0,
            max_len,
            small_reads: 0,
            on_demand: false,
            busy: false,
        }
    }

    /// A buffer of one connection that holds no memory until a read needs
    /// it (the caller reads into a [`FIRST_READ_LEN`](Self::FIRST_READ_LEN)
    /// byte stack buffer while it [`is_empty`](Self::is_empty)) and gives it
    /// back when the connection goes [`quiet`](Self::quiet); it grows as
    /// [`new`](Self::new)'s does.
    pub fn on_demand(max_len: usize) -> ReadBuffer {
        ReadBuffer {
            size: 0,
            on_demand: true,
            ..ReadBuffer::new(max_len)
        }
    }

    /// Records that a read would block: the connection has nothing more to
    /// read for now. A buffer made [`on_demand`](Self::on_demand) is given
    /// back if every read since the last such moment fitted on the stack
    /// (the connection is idle or chatty, not busy), so that a busy
    /// connection does not allocate for every burst.
    pub fn quiet(&mut self) {
        if self.on_demand && !self.busy && self.size > 0 {
            self.window = BytesMut::new();
            self.size = 0;
            self.made = 0;
            self.small_reads = 0;
        }
        self.busy = false;
    }

    /// The space to read into (made now if the buffer [`is_empty`](Self::is_empty)).
    pub fn space(&mut self) -> &mut [u8] {
        if self.size == 0 {
            self.size = INITIAL_LEN.min(self.max_len);
        }
        self.offer(self.size)
    }

    /// The space to read into when `body_remaining` bytes of a file or
    /// message body are still to come
    /// ([`Session::body_remaining`](tej_core::Session::body_remaining)): for a
    /// body larger than [`max_len`](Self::max_len), at most that body's
    /// rest and at most `bulk_len` (the buffer grows toward it as reads fill
    /// it), so the read holds nothing past the body; otherwise the usual
    /// space, the buffer shrinking back after a run of such reads. Empty
    /// while the buffer [`is_empty`](Self::is_empty).
    pub fn space_for_body(&mut self, body_remaining: u64, bulk_len: usize) -> &mut [u8] {
        if self.size == 0 {
            self.offered = 0;
            return &mut [];
        }
        let bulk = body_remaining > self.max_len as u64 && bulk_len > self.max_len;
        if bulk {
            self.small_reads = 0;
            let want = usize::try_from(body_remaining).unwrap_or(usize::MAX);
            return self.offer(self.size.min(want));
        }
        if self.size > self.max_len {
            self.small_reads += 1;
            if self.small_reads >= SHRINK_AFTER {
                self.size = self.max_len;
                self.small_reads = 0;
            }
        }
        self.offer(self.size.min(self.max_len))
    }

    /// At most `len` bytes of the window, made anew first if less than a
    /// quarter of the buffer is left (in place when nothing taken out of
    /// it is still held).
    fn offer(&mut self, len: usize) -> &mut [u8] {
        let spent = self.window.len() < len.min(self.size / 4).max(1);
        if spent || self.made != self.size {
            self.window.clear();
            // A buffer that grew or shrank is a new allocation (the old one
            // freed once what was taken out of it is dropped).
            if self.made != self.size || !self.window.try_reclaim(self.size) {
                self.window = BytesMut::with_capacity(self.size);
            }
            self.made = self.size;
            self.window.resize(self.size, 0);
        }
        let len = len.min(self.window.len());
        self.offered = len;
        &mut self.window[..len]
    }

    /// The first `len` bytes of the space just offered, as read, taken out
    /// of the buffer.
    pub fn take(&mut self, len: usize) -> Bytes {
        let len = len.min(self.offered).min(self.window.len());
        self.window.split_to(len).freeze()
    }

    /// Records that a read returned `len` bytes; a read that filled the
    /// buffer makes it grow for the next one, up to [`max_len`](Self::max_len).
    pub fn record_read(&mut self, len: usize) {
        self.grow_after(len, self.max_len);
    }

    /// As [`record_read`](Self::record_read) for a read of
    /// [`space_for_body`](Self::space_for_body)'s space: the buffer may grow
    /// to `bulk_len` while large bodies stream in.
    pub fn record_body_read(&mut self, len: usize, body_remaining: u64, bulk_len: usize) {
        let limit = if body_remaining > self.max_len as u64 {
            bulk_len.max(self.max_len)
        } else {
            self.max_len
        };
        self.grow_after(len, limit);
    }

    fn grow_after(&mut self, len: usize, limit: usize) {
        if len >= Self::FIRST_READ_LEN {
            self.busy = true;
        }
        if self.size == 0 {
            // A read on the stack: one that came back full makes the buffer.
            if len >= Self::FIRST_READ_LEN {
                self.size = INITIAL_LEN.min(self.max_len);
            }
            return;
        }
        // Filled: the whole buffer, or all of the window's rest it was offered.
        let filled = len >= self.size || (self.offered > 0 && len >= self.offered);
        self.offered = 0;
        if filled && self.size < limit {
            self.size = self.size.saturating_mul(GROWTH_FACTOR).min(limit);
        }
    }

    /// The size it may grow to outside large bodies.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The buffer's current size.
    pub fn len(&self) -> usize {
        self.size
    }

    /// Whether the buffer holds no memory: one made
    /// [`on_demand`](Self::on_demand) before a read needed it or after it was
    /// given back (the caller reads into
    /// [`FIRST_READ_LEN`](Self::FIRST_READ_LEN) bytes of its own then, and
    /// reports the read with [`record_read`](Self::record_read) or
    /// [`record_body_read`](Self::record_body_read) as usual). A buffer made
    /// with [`new`](Self::new) never is.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
}

#[cfg(test)]
mod tests {
    use super::ReadBuffer;

    #[test]
    fn grows_only_when_a_read_fills_it_and_stops_at_the_maximum() {
        let mut buffer = ReadBuffer::new(256 * 1024);
        assert_eq!(buffer.len(), 16 * 1024);
        buffer.record_read(100);
        assert_eq!(buffer.len(), 16 * 1024);
        buffer.record_read(16 * 1024);
        assert_eq!(buffer.len(), 64 * 1024);
        buffer.record_read(64 * 1024);
        assert_eq!(buffer.len(), 256 * 1024);
        buffer.record_read(256 * 1024);
        assert_eq!(buffer.len(), 256 * 1024);
        assert_eq!(ReadBuffer::new(1000).len(), 1000);
        assert_eq!(ReadBuffer::new(0).len(), 1);
    }

    #[test]
    fn on_demand_holds_nothing_until_a_stack_read_fills_and_gives_back_when_quiet() {
        const FIRST: usize = ReadBuffer::FIRST_READ_LEN;
        let mut buffer = ReadBuffer::on_demand(256 * 1024);
        assert!(buffer.is_empty());
        assert_eq!(buffer.len(), 0);
        // Reads that fit on the stack make no buffer, whatever comes after.
        buffer.record_read(FIRST - 1);
        assert!(buffer.is_empty());
        buffer.quiet();
        assert!(buffer.is_empty());
        // A stack read that came back full makes one, which grows as usual.
        buffer.record_read(FIRST);
        assert_eq!(buffer.len(), 16 * 1024);
        buffer.record_read(16 * 1024);
        assert_eq!(buffer.len(), 64 * 1024);
        // Busy since the last quiet moment: kept, so a busy connection does
        // not allocate for every burst.
        buffer.quiet();
        assert_eq!(buffer.len(), 64 * 1024);
        buffer.record_read(FIRST);
        buffer.quiet();
        assert_eq!(buffer.len(), 64 * 1024);
        // A run of small reads, then a read that would block: given back.
        buffer.record_read(10);
        buffer.quiet();
        assert!(buffer.is_empty());
        // No read at all between two quiet moments: nothing to give back.
        buffer.quiet();
        assert!(buffer.is_empty());
        // `space` makes one for a caller that reads no stack first.
        assert_eq!(buffer.space().len(), 16 * 1024);
        // A buffer made with `new` is never given back.
        let mut kept = ReadBuffer::new(256 * 1024);
        kept.record_read(10);
        kept.quiet();
        assert_eq!(kept.len(), 16 * 1024);
    }

    #[test]
    fn reads_are_taken_out_and_the_allocation_reused_once_released() {
        const KIB: usize = 1024;
        let mut buffer = ReadBuffer::new(16 * KIB);
        let first = buffer.space().as_ptr() as usize;
        // A read taken out and held: the next read goes into the rest.
        let held = buffer.take(10 * KIB);
        buffer.record_read(10 * KIB);
        assert_eq!(held.as_ptr() as usize, first);
        let rest = buffer.space();
        assert_eq!(
            (rest.as_ptr() as usize, rest.len()),
            (first + 10 * KIB, 6 * KIB)
        );
        let _also_held = buffer.take(3 * KIB);
        buffer.record_read(3 * KIB);
        // Less than a quarter left, and what was taken is held: a new one.
        let second = buffer.space().as_ptr() as usize;
        assert!(!(first..first + 16 * KIB).contains(&second));
        assert_eq!(buffer.space().len(), 16 * KIB);
        // All of it taken and released: the same allocation again.
        drop(buffer.take(16 * KIB));
        buffer.record_read(16 * KIB);
        assert_eq!(buffer.space().as_ptr() as usize, second);
        drop(held);
    }

    #[test]
    fn grows_for_large_bodies_reads_none_past_them_and_shrinks_back() {
        const BULK: usize = 2 << 20;
        let mut buffer = ReadBuffer::new(256 * 1024);
        // A small body: never past max_len.
        assert_eq!(buffer.space_for_body(1000, BULK).len(), 16 * 1024);
        // A large body: the buffer grows past max_len as reads fill it.
        let mut remaining = 10u64 << 20;
        for expected in [16 << 10, 64 << 10, 256 << 10, 1 << 20, 2 << 20, 2 << 20] {
            let len = buffer.space_for_body(remaining, BULK).len();
            assert_eq!(len, expected);
            buffer.record_body_read(len, remaining, BULK);
            remaining -= len as u64;
        }
        // Near the body's end, the space stops at it.
        assert_eq!(buffer.space_for_body(300 * 1024, BULK).len(), 300 * 1024);
        // Outside bodies: max_len at most, and the memory goes back after a run.
        for _ in 0..15 {
            assert_eq!(buffer.space_for_body(0, BULK).len(), 256 * 1024);
            assert_eq!(buffer.len(), BULK);
        }
        assert_eq!(buffer.space_for_body(0, BULK).len(), 256 * 1024);
        assert_eq!(buffer.len(), 256 * 1024);
        // A bulk length at or below max_len never grows the buffer.
        assert_eq!(buffer.space_for_body(10 << 20, 1000).len(), 256 * 1024);
        buffer.record_body_read(256 * 1024, 10 << 20, 1000);
        assert_eq!(buffer.len(), 256 * 1024);
    }
}
