//! The buffer an adapter reads a socket into: small while the connection is
//! quiet, grown to the configured size once reads fill it.

use alloc::vec;
use alloc::vec::Vec;

/// Where a read buffer starts: an idle connection costs no more than this.
const INITIAL_LEN: usize = 16 * 1024;
/// How much a buffer grows when a read fills it.
const GROWTH_FACTOR: usize = 4;

/// A reused read buffer that starts at 16 KiB and grows (up to
/// [`SessionConfig::read_buffer_len`](crate::SessionConfig::read_buffer_len))
/// each time a read fills it, so a thousand idle connections cost little
/// while a busy one soon reads in large pieces.
#[derive(Debug, Clone)]
pub struct ReadBuffer {
    buffer: Vec<u8>,
    max_len: usize,
}

impl ReadBuffer {
    /// A buffer that may grow to `max_len` bytes.
    pub fn new(max_len: usize) -> ReadBuffer {
        let max_len = max_len.max(1);
        ReadBuffer {
            buffer: vec![0; INITIAL_LEN.min(max_len)],
            max_len,
        }
    }

    /// The space to read into.
    pub fn space(&mut self) -> &mut [u8] {
        &mut self.buffer
    }

    /// The first `len` bytes, as read.
    pub fn filled(&self, len: usize) -> &[u8] {
        &self.buffer[..len.min(self.buffer.len())]
    }

    /// Records that a read returned `len` bytes; a read that filled the
    /// buffer makes it grow for the next one.
    pub fn record_read(&mut self, len: usize) {
        if len == self.buffer.len() && self.buffer.len() < self.max_len {
            let grown = self
                .buffer
                .len()
                .saturating_mul(GROWTH_FACTOR)
                .min(self.max_len);
            self.buffer.resize(grown, 0);
        }
    }

    /// The size it may grow to.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The buffer's current size.
    pub fn len(&self) -> usize {
        self.buffer.len()
    }

    /// Whether the buffer has no room at all (never: it holds at least one byte).
    pub fn is_empty(&self) -> bool {
        self.buffer.is_empty()
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
}
