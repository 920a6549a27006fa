//! What concurrent large uploads spooled to disk do to a small-frame
//! client's round-trip latency on the same tej-tokio server.
//!
//! One run: a [`tej_tokio::Server`] on a multi-thread Tokio runtime of its
//! own (`server_threads` workers) whose handler spools every file into a
//! temporary directory and answers every frame with a short message. A
//! small client (a current-thread runtime on a thread of its own) does
//! request/reply round trips with small message frames, one every
//! `interval`: first alone for `idle_time`, then while `uploads` clients
//! (a current-thread runtime on another thread) each upload one file of
//! `upload_len` bytes from memory at the same time. The latencies of
//! each phase are reported separately. The clients run on their own
//! threads so that only the server is shared; on a machine with few cores
//! they still compete with it for CPU time.
//!
//! Used by `cargo run --release -p tej-examples --example spool_latency`
//! and a bounded smoke test.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tej_tokio::{Client, Connection, FileTarget, Frame, FrameBuilder, Handler, Server, Status};
use tokio::sync::mpsc;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bytes in each uploaded file.
    pub upload_len: u64,
    /// Clients uploading at the same time.
    pub uploads: usize,
    /// Worker threads of the server's runtime.
    pub server_threads: usize,
    /// How long the small client measures alone, before the uploads.
    pub idle_time: Duration,
    /// Pause between two round trips of the small client.
    pub interval: Duration,
    /// Bytes of each small request's message.
    pub request_len: usize,
    /// Where the server puts the uploaded files.
    pub target: Target,
}

/// Where the server puts the uploaded files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// [`tej_net::spool::to_dir`]: written by the connection's task.
    SpoolDir,
    /// [`FileTarget::Writer`] with a [`WriterThread`]: each file written on
    /// a thread of its own, at most a few MiB on their way to it.
    WriterThread,
    /// [`FileTarget::Discard`]: no disk at all, for comparison.
    Discard,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            upload_len: 1 << 30,
            uploads: 2,
            server_threads: 2,
            idle_time: Duration::from_secs(3),
            interval: Duration::from_millis(1),
            request_len: 64,
            target: Target::SpoolDir,
        }
    }
}

/// Round-trip latencies of one phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    /// Round trips measured.
    pub samples: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

impl Latency {
    /// The statistics of `samples` (empty: all zero).
    pub fn of(mut samples: Vec<Duration>) -> Latency {
        samples.sort_unstable();
        let at = |fraction: f64| {
            if samples.is_empty() {
                Duration::ZERO
            } else {
                let index = ((samples.len() as f64 * fraction).ceil() as usize).saturating_sub(1);
                samples[index.min(samples.len() - 1)]
            }
        };
        Latency {
            samples: samples.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: samples.last().copied().unwrap_or_default(),
        }
    }

    /// The median of each statistic over several runs.
    pub fn median(runs: &[Latency]) -> Latency {
        fn mid<T: Ord + Copy>(mut values: Vec<T>) -> T {
            values.sort_unstable();
            values[values.len() / 2]
        }
        Latency {
            samples: mid(runs.iter().map(|run| run.samples).collect()),
            p50: mid(runs.iter().map(|run| run.p50).collect()),
            p99: mid(runs.iter().map(|run| run.p99).collect()),
            max: mid(runs.iter().map(|run| run.max).collect()),
        }
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms  ({} round trips)",
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3,
            self.samples
        )
    }
}

/// One run's figures.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// The small client alone.
    pub idle: Latency,
    /// The small client while the uploads ran.
    pub loaded: Latency,
    /// From the uploads' start until the server had spooled every file.
    pub upload_time: Duration,
    /// Bytes uploaded in all.
    pub uploaded: u64,
}

impl Report {
    /// Uploaded bytes per second, all uploads together.
    pub fn upload_rate(&self) -> f64 {
        self.uploaded as f64 / self.upload_time.as_secs_f64()
    }
}

/// Spools every file and answers every frame with a short message.
struct Spooler {
    dir: PathBuf,
    target: Target,
}

impl Handler for Spooler {
    fn file_target(&mut self, name: &str, _size: u64, _index: usize) -> FileTarget {
        match self.target {
            Target::SpoolDir => tej_net::spool::to_dir(self.dir.clone()),
            Target::Discard => FileTarget::Discard,
            Target::WriterThread => {
                // The uploads' names are distinct.
                let path = self.dir.join(tej_net::spool::sanitize_file_name(name));
                match std::fs::File::create_new(path).and_then(WriterThread::spawn) {
                    Ok(writer) => FileTarget::Writer(Box::new(writer)),
                    // The spool directory reports the same error its way.
                    Err(_) => tej_net::spool::to_dir(self.dir.clone()),
                }
            }
        }
    }

    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        let reply = if frame.files.is_empty() {
            "pong"
        } else {
            "stored"
        };
        let _ = conn.send(Frame::message(reply));
    }
}

/// Passes every frame that arrives to a channel.
struct Replies(mpsc::UnboundedSender<Frame>);

impl Handler for Replies {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        let _ = self.0.send(frame);
    }
}

/// `count` bytes of a repeating, not all-zero pattern.
pub fn upload_data(len: u64) -> Bytes {
    let len = usize::try_from(len).expect("upload fits in memory");
    let pattern: Vec<u8> = (0..=250u8).collect();
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        let take = (len - data.len()).min(pattern.len());
        data.extend_from_slice(&pattern[..take]);
    }
    Bytes::from(data)
}

/// A current-thread runtime on a thread of its own, running `task`.
fn on_own_thread<T, F>(name: &str, task: F) -> thread::JoinHandle<io::Result<T>>
where
    T: Send + 'static,
    F: std::future::Future<Output = io::Result<T>> + Send + 'static,
{
    thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(task)
        })
        .expect("spawn a client thread")
}

/// Round trips until `until` says stop; returns their latencies.
async fn round_trips(
    client: &Client,
    replies: &mut mpsc::UnboundedReceiver<Frame>,
    request: &Bytes,
    interval: Duration,
    mut until: impl FnMut(usize) -> bool,
) -> io::Result<Vec<Duration>> {
    let sender = client.sender();
    let mut samples = Vec::new();
    while !until(samples.len()) {
        let start = Instant::now();
        let request = Frame::message(request.clone());
        exchange(&sender, request, replies, "the small client's connection").await?;
        samples.push(start.elapsed());
        tokio::time::sleep(interval).await;
    }
    Ok(samples)
}

/// Sends `frame` and waits for the reply to it; an error if the connection
/// (`connection`, for the error) ends first.
async fn exchange(
    sender: &tej_tokio::Sender,
    frame: Frame,
    replies: &mut mpsc::UnboundedReceiver<Frame>,
    connection: &str,
) -> io::Result<Frame> {
    sender.send(frame).await.map_err(io::Error::other)?;
    replies
        .recv()
        .await
        .ok_or_else(|| io::Error::other(format!("{connection} ended")))
}

/// One run: the small client alone, then during the uploads of `data`.
pub fn run(options: &Options, data: &Bytes) -> io::Result<Report> {
    let spool = tempfile::tempdir()?;
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.server_threads)
        .enable_all()
        .build()?;
    let server = server_runtime.block_on(Server::bind("127.0.0.1:0"))?;
    let addr: SocketAddr = server.local_addr()?;
    let shutdown = server.shutdown_handle();
    let dir = spool.path().to_path_buf();
    let target = options.target;
    let serving = server_runtime.spawn(server.serve(move || Spooler {
        dir: dir.clone(),
        target,
    }));

    // Uploads start when told, and report when the server stored them.
    let (start_uploads, mut go) = mpsc::unbounded_channel::<()>();
    let uploads = options.uploads;
    let upload_data = data.clone();
    let uploader = on_own_thread("uploads", async move {
        let mut clients = Vec::new();
        for _ in 0..uploads {
            let (tx, rx) = mpsc::unbounded_channel();
            clients.push((Client::connect(addr, Replies(tx)).await?, rx));
        }
        go.recv().await;
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (index, (client, mut stored)) in clients.into_iter().enumerate() {
            let frame = FrameBuilder::new(Status::DEFAULT)
                .file(format!("upload-{index}.bin"), upload_data.clone())
                .build();
            tasks.push(tokio::spawn(async move {
                exchange(
                    &client.sender(),
                    frame,
                    &mut stored,
                    "an upload's connection",
                )
                .await?;
                client.close();
                client.join().await
            }));
        }
        for task in tasks {
            task.await.map_err(io::Error::other)??;
        }
        Ok(start.elapsed())
    });

    let idle_time = options.idle_time;
    let interval = options.interval;
    let request = Bytes::from(vec![b'x'; options.request_len]);
    let small = on_own_thread("small client", async move {
        let (tx, mut replies) = mpsc::unbounded_channel();
        let client = Client::connect(addr, Replies(tx)).await?;
        // Warm up: connection, allocations, caches.
        round_trips(&client, &mut replies, &request, interval, |n| n >= 100).await?;
        let idle_start = Instant::now();
        let idle = round_trips(&client, &mut replies, &request, interval, |_| {
            idle_start.elapsed() >= idle_time
        })
        .await?;
        let _ = start_uploads.send(());
        // Until the uploader thread's channel closes: its uploads are done.
        let loaded = round_trips(&client, &mut replies, &request, interval, |_| {
            start_uploads.is_closed()
        })
        .await?;
        client.close();
        client.join().await?;
        Ok((idle, loaded))
    });

    let upload_time = uploader.join().expect("the uploads' thread")?;
    let (idle, loaded) = small.join().expect("the small client's thread")?;
    shutdown.shutdown();
    server_runtime.block_on(serving).map_err(io::Error::other)?;
    drop(server_runtime);
    drop(spool);
    Ok(Report {
        idle: Latency::of(idle),
        loaded: Latency::of(loaded),
        upload_time,
        uploaded: data.len() as u64 * options.uploads as u64,
    })
}

/// Bytes a [`WriterThread`] gathers before handing them to its thread.
const THREAD_CHUNK_LEN: usize = 1 << 20;
/// Chunks a [`WriterThread`] lets wait for its thread at most.
const THREAD_CHUNKS_QUEUED: usize = 4;

/// What a [`WriterThread`] hands its thread.
enum ToThread {
    Data(Vec<u8>),
    Flush(std::sync::mpsc::SyncSender<io::Result<()>>),
}

/// A writer that hands its bytes to a thread of its own, which writes them
/// to the inner writer: the `writer-thread` target, for a
/// [`FileTarget::Writer`] whose writes may block.
///
/// Memory stays bounded: bytes are gathered in chunks (1 MiB by default)
/// and at most a few chunks (4) wait for the thread; when they are all
/// taken, `write` waits for the thread, so a disk slower than the network
/// still holds up the connection (which is why it did not help here).
/// Nothing is lost silently: an error of the inner writer is returned by
/// the next `write` or `flush`, and `flush` (which the session calls at the
/// end of each file) returns only once the thread has written and flushed
/// everything before it. Dropped without a `flush` (a frame cut short), the
/// thread writes what it had queued and ends.
pub struct WriterThread {
    chunk: Vec<u8>,
    chunk_len: usize,
    to_thread: Option<std::sync::mpsc::SyncSender<ToThread>>,
    /// Chunks the thread has written, to fill again.
    recycled: std::sync::mpsc::Receiver<Vec<u8>>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl WriterThread {
    /// Starts a thread writing to `inner`, with the default bounds.
    ///
    /// # Errors
    ///
    /// The thread could not be started.
    pub fn spawn<W: Write + Send + 'static>(inner: W) -> io::Result<WriterThread> {
        WriterThread::with_bounds(inner, THREAD_CHUNK_LEN, THREAD_CHUNKS_QUEUED)
    }

    /// Starts a thread writing to `inner`: bytes go in chunks of
    /// `chunk_len`, at most `queued` of them waiting for the thread (so at
    /// most `queued + 2` chunks in memory: one filling, one being written).
    ///
    /// # Errors
    ///
    /// The thread could not be started.
    pub fn with_bounds<W: Write + Send + 'static>(
        inner: W,
        chunk_len: usize,
        queued: usize,
    ) -> io::Result<WriterThread> {
        let chunk_len = chunk_len.max(1);
        let (to_thread, from_writer) = std::sync::mpsc::sync_channel::<ToThread>(queued);
        let (recycle, recycled) = std::sync::mpsc::sync_channel(queued + 2);
        let thread = std::thread::Builder::new()
            .name("tej-writer".into())
            .spawn(move || {
                let mut inner = inner;
                for message in from_writer {
                    match message {
                        ToThread::Data(mut chunk) => {
                            inner.write_all(&chunk)?;
                            chunk.clear();
                            let _ = recycle.try_send(chunk);
                        }
                        ToThread::Flush(reply) => {
                            let flushed = inner.flush();
                            let failed = flushed.is_err();
                            let _ = reply.send(flushed);
                            if failed {
                                return Ok(());
                            }
                        }
                    }
                }
                inner.flush()
            })?;
        Ok(WriterThread {
            chunk: Vec::new(),
            chunk_len,
            to_thread: Some(to_thread),
            recycled,
            thread: Some(thread),
        })
    }

    /// Hands `message` to the thread, waiting while the queue is full.
    fn hand(&mut self, message: ToThread) -> io::Result<()> {
        let sent = match &self.to_thread {
            Some(to_thread) => to_thread.send(message).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.ended())
        }
    }

    /// Hands the chunk being filled to the thread.
    fn hand_chunk(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let next = self.recycled.try_recv().unwrap_or_default();
        let full = core::mem::replace(&mut self.chunk, next);
        self.hand(ToThread::Data(full))
    }

    /// Why the thread stopped taking bytes: its writer's error.
    fn ended(&mut self) -> io::Error {
        self.to_thread = None;
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(Err(error))) => error,
            Some(Err(_)) => io::Error::other("the writer thread panicked"),
            Some(Ok(Ok(()))) | None => io::Error::other("the writer thread has stopped"),
        }
    }
}

impl Write for WriterThread {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.to_thread.is_none() {
            return Err(self.ended());
        }
        if self.chunk.capacity() == 0 {
            self.chunk.reserve_exact(self.chunk_len);
        }
        let take = data.len().min(self.chunk_len - self.chunk.len());
        self.chunk.extend_from_slice(&data[..take]);
        if self.chunk.len() == self.chunk_len {
            self.hand_chunk()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.hand_chunk()?;
        let (reply, flushed) = std::sync::mpsc::sync_channel(1);
        self.hand(ToThread::Flush(reply))?;
        match flushed.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                // The thread has ended after reporting it.
                self.to_thread = None;
                Err(error)
            }
            Err(_) => Err(self.ended()),
        }
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        // The thread writes what it was given, then ends on its own: a
        // connection dropping a cut-short file does not wait for a disk.
        if let Some(to_thread) = self.to_thread.take() {
            if !self.chunk.is_empty() {
                let _ = to_thread.try_send(ToThread::Data(core::mem::take(&mut self.chunk)));
            }
        }
    }
}

impl core::fmt::Debug for WriterThread {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WriterThread")
            .field("buffered", &self.chunk.len())
            .field("chunk_len", &self.chunk_len)
            .field("running", &self.to_thread.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::WriterThread;
    use std::io::{self, Write};
    use std::sync::{Arc, Mutex};

    /// Collects what it is given; fails once it holds `fail_after` bytes.
    #[derive(Clone, Default)]
    struct Sink {
        data: Arc<Mutex<Vec<u8>>>,
        fail_after: Option<usize>,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut data = self.data.lock().unwrap();
            if self.fail_after.is_some_and(|limit| data.len() >= limit) {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            data.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_writer_thread_writes_everything_in_order_by_flush() {
        let sink = Sink::default();
        let mut writer = WriterThread::with_bounds(sink.clone(), 1000, 2).unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        for piece in data.chunks(777) {
            writer.write_all(piece).unwrap();
        }
        writer.flush().unwrap();
        assert_eq!(*sink.data.lock().unwrap(), data);
        writer.write_all(b"more").unwrap();
        writer.flush().unwrap();
        assert_eq!(sink.data.lock().unwrap().len(), data.len() + 4);
    }

    #[test]
    fn a_writer_threads_error_comes_back() {
        let sink = Sink {
            fail_after: Some(5000),
            ..Sink::default()
        };
        let mut writer = WriterThread::with_bounds(sink, 1000, 2).unwrap();
        let mut result = Ok(());
        for _ in 0..100 {
            result = writer.write_all(&[1; 1000]);
            if result.is_err() {
                break;
            }
        }
        let error = result
            .err()
            .or_else(|| writer.flush().err())
            .expect("an error");
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        // And it stays failed.
        assert!(writer
            .write_all(b"x")
            .and_then(|()| writer.flush())
            .is_err());
    }
}
