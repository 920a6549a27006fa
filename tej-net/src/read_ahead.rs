//! A file read ahead on a thread of its own: the connection sending it
//! takes chunks already read, and steps off its async threads only when
//! none is ready ([`SourceReader::may_block`]).
//!
//! At most [`READ_AHEAD_CHUNKS`] chunks of [`READ_AHEAD_CHUNK_LEN`] bytes
//! wait, besides the one being taken.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use bytes::{Buf, Bytes};
use tej_core::storage::SourceReader;

/// Bytes read per chunk.
pub(crate) const READ_AHEAD_CHUNK_LEN: usize = 256 * 1024;
/// Chunks read and not yet taken, at most.
pub(crate) const READ_AHEAD_CHUNKS: usize = 4;

/// A reader whose bytes a thread of its own reads ahead, started by the
/// first read. Dropped, it stops the thread after the read in progress.
pub(crate) struct ReadAhead {
    shared: Arc<Shared>,
    /// The reader, until the first read moves it to the thread.
    unstarted: Option<Box<dyn Read + Send>>,
    /// The chunk being taken.
    current: Bytes,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a chunk is read or taken, or the reader dropped.
    changed: Condvar,
}

#[derive(Default)]
struct Queue {
    chunks: VecDeque<Bytes>,
    /// The thread has read all there is (or failed: `failed`).
    ended: bool,
    failed: Option<io::Error>,
    /// The reader was dropped: stop.
    stop: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wait<'a>(&self, queue: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        self.changed
            .wait(queue)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ReadAhead {
    /// `reader`, to be read ahead once read.
    pub(crate) fn new(reader: Box<dyn Read + Send>) -> ReadAhead {
        ReadAhead {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                changed: Condvar::new(),
            }),
            unstarted: Some(reader),
            current: Bytes::new(),
        }
    }

    /// The next chunk, waiting for the thread if none is ready; empty at
    /// the end.
    fn next_chunk(&mut self) -> io::Result<Bytes> {
        if let Some(reader) = self.unstarted.take() {
            let shared = Arc::clone(&self.shared);
            std::thread::Builder::new()
                .name("tej-read-ahead".into())
                .spawn(move || read_chunks(&shared, reader))?;
        }
        let mut queue = self.shared.lock();
        loop {
            if let Some(chunk) = queue.chunks.pop_front() {
                drop(queue);
                self.shared.changed.notify_all();
                return Ok(chunk);
            }
            if let Some(error) = queue.failed.take() {
                return Err(error);
            }
            if queue.ended {
                return Ok(Bytes::new());
            }
            queue = self.shared.wait(queue);
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.current.is_empty() {
            self.current = self.next_chunk()?;
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

impl SourceReader for ReadAhead {
    fn may_block(&self) -> bool {
        if !self.current.is_empty() {
            return false;
        }
        if self.unstarted.is_some() {
            return true;
        }
        let queue = self.shared.lock();
        queue.chunks.is_empty() && !queue.ended
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
    }
}

/// The thread: reads chunks while fewer than [`READ_AHEAD_CHUNKS`] wait,
/// until the end, an error or the reader is dropped.
fn read_chunks(shared: &Shared, mut reader: Box<dyn Read + Send>) {
    loop {
        let mut chunk = vec![0u8; READ_AHEAD_CHUNK_LEN];
        let mut filled = 0;
        let result = loop {
            match reader.read(&mut chunk[filled..]) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    filled += n;
                    if filled == chunk.len() {
                        break Ok(());
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => break Err(error),
            }
        };
        chunk.truncate(filled);
        let mut queue = shared.lock();
        if !chunk.is_empty() {
            queue.chunks.push_back(Bytes::from(chunk));
        }
        match result {
            Err(error) => {
                queue.failed = Some(error);
                queue.ended = true;
            }
            Ok(()) if filled < READ_AHEAD_CHUNK_LEN => queue.ended = true,
            Ok(()) => {}
        }
        let ended = queue.ended;
        while !queue.stop && queue.chunks.len() >= READ_AHEAD_CHUNKS {
            shared.changed.notify_all();
            queue = shared.wait(queue);
        }
        let stop = queue.stop;
        drop(queue);
        shared.changed.notify_all();
        if ended || stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Reads `reader` to its end in reads of `piece` bytes.
    fn read_all(reader: &mut ReadAhead, piece: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; piece];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn it_reads_every_byte_in_order_whatever_the_read_sizes() {
        for len in [0, 1, READ_AHEAD_CHUNK_LEN, 3 * READ_AHEAD_CHUNK_LEN + 17] {
            for piece in [1000, 64 * 1024, 1 << 20] {
                let data = pattern(len);
                let mut reader = ReadAhead::new(Box::new(io::Cursor::new(data.clone())));
                assert!(reader.may_block(), "not started yet");
                assert_eq!(read_all(&mut reader, piece).unwrap(), data);
                assert!(!reader.may_block(), "at its end a read returns at once");
            }
        }
    }

    #[test]
    fn bytes_read_ahead_are_taken_without_blocking() {
        let data = pattern(10 * READ_AHEAD_CHUNK_LEN);
        let mut reader = ReadAhead::new(Box::new(io::Cursor::new(data.clone())));
        let mut first = [0u8; 10];
        reader.read_exact(&mut first).unwrap();
        assert!(!reader.may_block(), "the rest of the first chunk is here");
        // The thread fills the queue to its bound, and no further.
        let mut waited = 0;
        while reader.shared.lock().chunks.len() < READ_AHEAD_CHUNKS {
            std::thread::sleep(std::time::Duration::from_millis(1));
            waited += 1;
            assert!(waited < 10_000, "the thread never read ahead");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(reader.shared.lock().chunks.len(), READ_AHEAD_CHUNKS);
        let rest = read_all(&mut reader, 64 * 1024).unwrap();
        assert_eq!([&first[..], &rest].concat(), data);
    }

    /// Fails after `good` bytes.
    struct Failing {
        good: usize,
    }

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.good == 0 {
                return Err(io::Error::new(io::ErrorKind::PermissionDenied, "gone"));
            }
            let n = buf.len().min(self.good);
            buf[..n].fill(9);
            self.good -= n;
            Ok(n)
        }
    }

    #[test]
    fn an_error_comes_after_the_bytes_read_before_it() {
        let mut reader = ReadAhead::new(Box::new(Failing { good: 300_000 }));
        let mut buf = vec![0u8; 1 << 20];
        let mut taken = 0;
        let error = loop {
            match reader.read(&mut buf) {
                Ok(n) => {
                    assert!(n > 0, "no end of file before the error");
                    taken += n;
                }
                Err(error) => break error,
            }
        };
        assert_eq!(taken, 300_000);
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
    }
}
