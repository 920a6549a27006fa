//! Bytes written on a thread of their own: a writer that may block (a file
//! on a slow disk) fed from a connection's task without blocking it, with
//! at most [`WRITE_BEHIND_LEN`] bytes (and the chunk that crossed it)
//! waiting for it.
//!
//! The connection's reads and the disk's writes then overlap, and a task
//! that would wait for the disk only does so once the queue is full: the
//! sink says so ([`is_full`](WriteBehind::is_full)) before that write, so
//! that a driver can run it off its async threads.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;

/// Bytes queued for the writer before [`WriteBehind::is_full`] says so.
pub(crate) const WRITE_BEHIND_LEN: usize = 2 << 20;

/// How long a dropped [`WriteBehind`] waits for the write in progress: a
/// connection ending must not wait on a stalled disk for long.
const DISCARD_WAIT: Duration = Duration::from_millis(100);

/// A writer moved to a thread of its own, fed chunk by chunk.
///
/// [`finish`](Self::finish) waits for every chunk and a flush and gives
/// the writer back. Dropped before that, it discards what is queued, and
/// the thread drops the writer after the write in progress: the drop waits
/// for that up to [`DISCARD_WAIT`] (a disk that stalls longer is left to
/// the thread).
pub(crate) struct WriteBehind<W: Write + Send + 'static> {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Ended<W>>>,
}

/// What the thread ends with: its writer and how the writing went, or
/// nothing once discarded (the writer dropped on the thread).
type Ended<W> = Option<(W, io::Result<()>)>;

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a chunk arrives, room is made, or the end is asked.
    changed: Condvar,
}

#[derive(Default)]
struct Queue {
    chunks: VecDeque<Bytes>,
    /// Bytes in `chunks`.
    len: usize,
    /// No more chunks will come: write what is queued (or drop it, if
    /// `discard`) and stop.
    ended: bool,
    discard: bool,
    /// The thread is done: its writer dropped (discarded) or about to be
    /// returned.
    exited: bool,
    /// The writer failed: its error, said again to every later write.
    failed: Option<(io::ErrorKind, String)>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic on the writer thread leaves nothing half-updated here.
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

impl<W: Write + Send + 'static> WriteBehind<W> {
    /// Starts the thread that writes into `writer`.
    pub(crate) fn spawn(writer: W) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("tej-write-behind".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || write_queued(&shared, writer)
            })?;
        Ok(WriteBehind {
            shared,
            thread: Some(thread),
        })
    }

    /// Whether the next [`write`](Self::write) would wait for the writer.
    pub(crate) fn is_full(&self) -> bool {
        self.shared.lock().len >= WRITE_BEHIND_LEN
    }

    /// Queues `data`, first waiting for room if the queue is full; fails
    /// with the writer's error once it has had one.
    pub(crate) fn write(&mut self, data: Bytes) -> io::Result<()> {
        let mut queue = self.shared.lock();
        loop {
            if let Some((kind, message)) = &queue.failed {
                return Err(io::Error::new(*kind, message.clone()));
            }
            if queue.len < WRITE_BEHIND_LEN {
                break;
            }
            queue = self.shared.wait(queue);
        }
        queue.len += data.len();
        queue.chunks.push_back(data);
        drop(queue);
        self.shared.changed.notify_all();
        Ok(())
    }

    /// Waits until everything queued is written and flushed; the writer
    /// back, or its first error.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.shared.lock().ended = true;
        self.shared.changed.notify_all();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Some((writer, result)))) => result.map(|()| writer),
            Some(Err(_)) => Err(io::Error::other("the file's writer thread panicked")),
            _ => Err(io::Error::other("the file's writer has already ended")),
        }
    }
}

impl<W: Write + Send + 'static> Drop for WriteBehind<W> {
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let mut queue = self.shared.lock();
        queue.ended = true;
        queue.discard = true;
        self.shared.changed.notify_all();
        // What the writer leaves when dropped (a spool file removing
        // itself) is normally done when this returns.
        let (queue, _) = self
            .shared
            .changed
            .wait_timeout_while(queue, DISCARD_WAIT, |queue| !queue.exited)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if queue.exited {
            drop(queue);
            // At once: it has exited, or is about to; a writer it returned
            // (after an error) is dropped here.
            let _ = thread.join();
        }
    }
}

/// The writer thread: writes chunks as they come until the end is asked,
/// then flushes; stops at the first error. Discarded, it drops the writer
/// and says so.
fn write_queued<W: Write>(shared: &Shared, mut writer: W) -> Ended<W> {
    loop {
        let chunk = {
            let mut queue = shared.lock();
            while queue.chunks.is_empty() && !queue.ended {
                queue = shared.wait(queue);
            }
            if queue.discard {
                queue.chunks.clear();
                drop(queue);
                drop(writer);
                exited(shared);
                return None;
            }
            match queue.chunks.pop_front() {
                Some(chunk) => chunk,
                None => break,
            }
        };
        let written = writer.write_all(&chunk);
        let mut queue = shared.lock();
        queue.len -= chunk.len();
        if let Err(error) = written {
            queue.failed = Some((error.kind(), error.to_string()));
            queue.chunks.clear();
            queue.len = 0;
            drop(queue);
            exited(shared);
            return Some((writer, Err(error)));
        }
        drop(queue);
        shared.changed.notify_all();
    }
    let flushed = writer.flush();
    exited(shared);
    Some((writer, flushed))
}

/// Tells a dropped [`WriteBehind`] waiting for the thread that it is done.
fn exited(shared: &Shared) {
    shared.lock().exited = true;
    shared.changed.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Collects what it is given; fails once it holds `fail_after` bytes.
    struct Collect {
        bytes: Vec<u8>,
        fail_after: usize,
        flushed: bool,
    }

    impl Write for Collect {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            if self.bytes.len() + data.len() > self.fail_after {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            self.bytes.extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.flushed = true;
            Ok(())
        }
    }

    fn collect(fail_after: usize) -> Collect {
        Collect {
            bytes: Vec::new(),
            fail_after,
            flushed: false,
        }
    }

    #[test]
    fn every_chunk_is_written_in_order_and_flushed() {
        let mut behind = WriteBehind::spawn(collect(usize::MAX)).unwrap();
        let mut expected = Vec::new();
        for index in 0..200u32 {
            let chunk = vec![index as u8; 1 + (index as usize * 7919) % 40_000];
            expected.extend_from_slice(&chunk);
            behind.write(Bytes::from(chunk)).unwrap();
        }
        let writer = behind.finish().unwrap();
        assert_eq!(writer.bytes, expected);
        assert!(writer.flushed);
    }

    #[test]
    fn the_first_error_is_said_to_later_writes_and_to_finish() {
        let mut behind = WriteBehind::spawn(collect(10)).unwrap();
        behind.write(Bytes::from_static(b"0123456789abc")).unwrap();
        // The writer fails on its own thread; a later write sees it.
        let error = loop {
            match behind.write(Bytes::from_static(b"x")) {
                Ok(()) => std::thread::yield_now(),
                Err(error) => break error,
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        assert_eq!(error.to_string(), "disk full");
        let error = behind.finish().err().expect("finish reports the failure");
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
    }

    /// A writer that waits for a go before each write: a stalled disk.
    struct Gated {
        go: mpsc::Receiver<()>,
        written: usize,
    }

    impl Write for Gated {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.go.recv().map_err(io::Error::other)?;
            self.written += data.len();
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_writer_fills_the_queue_to_its_bound_and_no_further() {
        let (go, gate) = mpsc::channel();
        let mut behind = WriteBehind::spawn(Gated {
            go: gate,
            written: 0,
        })
        .unwrap();
        let chunk = Bytes::from(vec![7u8; WRITE_BEHIND_LEN / 4]);
        let mut queued = 0;
        while !behind.is_full() {
            behind.write(chunk.clone()).unwrap();
            queued += chunk.len();
            assert!(
                queued <= WRITE_BEHIND_LEN + chunk.len(),
                "queued past the bound"
            );
        }
        // The first chunk may be out of the queue, held by the stalled write.
        assert!(queued >= WRITE_BEHIND_LEN);
        for _ in 0..queued / chunk.len() {
            go.send(()).unwrap();
        }
        let writer = behind.finish().unwrap();
        assert_eq!(writer.written, queued);
    }

    /// Says when a write begins, then waits for a go: a disk that stalls.
    struct Stalled {
        entered: mpsc::Sender<()>,
        go: mpsc::Receiver<()>,
    }

    impl Write for Stalled {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            let _ = self.entered.send(());
            self.go.recv().map_err(io::Error::other)?;
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn dropped_while_its_writer_is_stalled_it_returns_and_the_thread_ends_later() {
        let (go, gate) = mpsc::channel();
        let (entered, writing) = mpsc::channel();
        let mut behind = WriteBehind::spawn(Stalled { entered, go: gate }).unwrap();
        behind.write(Bytes::from_static(b"stuck")).unwrap();
        writing.recv().unwrap();
        // Returns though the write in progress does not end by itself.
        drop(behind);
        // Released, the thread ends and drops its writer (and the gate).
        go.send(()).unwrap();
        let mut waited = 0;
        while go.send(()).is_ok() {
            std::thread::sleep(Duration::from_millis(10));
            waited += 1;
            assert!(waited < 1000, "the writer thread never ended");
        }
    }

    /// Holds a channel's sender, which closes the channel when it is dropped.
    struct Dropped(#[allow(dead_code)] mpsc::Sender<()>);

    impl Write for Dropped {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Fails every write; holds a channel's sender like [`Dropped`].
    struct FailingDropped(#[allow(dead_code)] mpsc::Sender<()>);

    impl Write for FailingDropped {
        fn write(&mut self, _data: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("broken"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn dropped_after_its_writer_failed_it_has_dropped_the_writer_when_it_returns() {
        let (dropped, was_dropped) = mpsc::channel::<()>();
        let mut behind = WriteBehind::spawn(FailingDropped(dropped)).unwrap();
        behind.write(Bytes::from_static(b"data")).unwrap();
        while behind.write(Bytes::from_static(b"more")).is_ok() {
            std::thread::yield_now();
        }
        drop(behind);
        assert_eq!(
            was_dropped.try_recv(),
            Err(mpsc::TryRecvError::Disconnected)
        );
    }

    #[test]
    fn dropped_it_has_dropped_its_writer_when_it_returns() {
        let (dropped, was_dropped) = mpsc::channel::<()>();
        let mut behind = WriteBehind::spawn(Dropped(dropped)).unwrap();
        behind.write(Bytes::from_static(b"data")).unwrap();
        drop(behind);
        // The sender inside the writer is gone: the channel is closed now.
        assert_eq!(
            was_dropped.try_recv(),
            Err(mpsc::TryRecvError::Disconnected)
        );
    }
}
