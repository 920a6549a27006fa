//! The small-frame baseline's writer split across two threads, each way of
//! [`CROSS_THREAD_SWEEP`]: what plain Rust pays when the thread making the
//! frames is not the one that owns the socket, as with a `Sender`. Frames
//! are made on the calling thread and written by a thread of their own,
//! through a queue of 256 KiB (the adapters' default send queue; a batch
//! larger than that crosses one at a time); the reader is the small-frame
//! baseline's. The best batched way is the
//! ceiling of a `BufferedSender`, the best per-frame way that of
//! `send_blocking`.

use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::harness::size_name;
use super::small::{join_length_prefixed_reader, length_prefixed_pair, write_length_prefixed};

/// Bytes of frames that may wait between the two threads.
const QUEUE_LEN: usize = 256 * 1024;

/// How frames cross from the thread making them to the thread writing them.
pub const CROSS_THREAD_SWEEP: &[CrossThread] = &[
    CrossThread::Batches(64 * 1024),
    CrossThread::Batches(256 * 1024),
    CrossThread::Batches(1024 * 1024),
    CrossThread::LockPerFrame,
    CrossThread::ChannelPerFrame,
];

/// One way frames cross between threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossThread {
    /// Encoded into buffers of this many bytes on the making thread, each
    /// full one handed over through a bounded channel (buffers reused): a
    /// `BufferedSender`'s shape.
    Batches(usize),
    /// Each frame appended under a mutex to the buffer the writer takes
    /// whole: `send_blocking`'s shape.
    LockPerFrame,
    /// Each frame an owned `Vec` sent through a bounded `mpsc` channel; the
    /// writer drains it into a `BufWriter`, flushing when it is empty.
    ChannelPerFrame,
}

impl CrossThread {
    /// Its key in `baseline.cross_thread_sweep_fps`.
    pub fn key(self) -> String {
        match self {
            CrossThread::Batches(len) => format!("batches_{len}"),
            CrossThread::LockPerFrame => "lock_per_frame".into(),
            CrossThread::ChannelPerFrame => "channel_per_frame".into(),
        }
    }

    pub(super) fn name(self) -> String {
        match self {
            CrossThread::Batches(len) => format!("batches of {}", size_name(len)),
            CrossThread::LockPerFrame => "a lock per frame".into(),
            CrossThread::ChannelPerFrame => "a channel message per frame".into(),
        }
    }

    /// Whether each frame crosses on its own (`send_blocking`'s ceiling)
    /// rather than in batches (a `BufferedSender`'s).
    pub fn per_frame(self) -> bool {
        !matches!(self, CrossThread::Batches(_))
    }
}

/// Sends `count` length-prefixed frames of `message` across threads `how`;
/// the clock starts once the writing thread runs.
pub(super) fn cross_thread_small(
    count: u64,
    message: &[u8],
    how: CrossThread,
) -> io::Result<Duration> {
    let (stream, receiver) = length_prefixed_pair(count)?;
    let started = match how {
        CrossThread::Batches(len) => batches(stream, count, message, len)?,
        CrossThread::LockPerFrame => lock_per_frame(stream, count, message)?,
        CrossThread::ChannelPerFrame => channel_per_frame(stream, count, message)?,
    };
    join_length_prefixed_reader(receiver, count)?;
    Ok(started.elapsed())
}

/// The writing thread's result, its panic an error.
fn joined(writer: std::thread::JoinHandle<io::Result<()>>) -> io::Result<()> {
    writer
        .join()
        .map_err(|_| io::Error::other("the writing thread panicked"))?
}

fn batches(mut stream: TcpStream, count: u64, message: &[u8], len: usize) -> io::Result<Instant> {
    let (full_tx, full) = mpsc::sync_channel::<Vec<u8>>((QUEUE_LEN / len).max(1));
    let (empty_tx, empty) = mpsc::channel::<Vec<u8>>();
    let writer = std::thread::spawn(move || -> io::Result<()> {
        for mut batch in full {
            stream.write_all(&batch)?;
            batch.clear();
            // The making thread may have finished and gone: nothing to reuse.
            let _ = empty_tx.send(batch);
        }
        Ok(())
    });
    let frame_len = 4 + message.len();
    let mut batch = Vec::with_capacity(len);
    let started = Instant::now();
    for _ in 0..count {
        if batch.len() + frame_len > len && !batch.is_empty() {
            let next = empty.try_recv().unwrap_or_else(|_| Vec::with_capacity(len));
            if full_tx.send(std::mem::replace(&mut batch, next)).is_err() {
                break;
            }
        }
        write_length_prefixed(&mut batch, message)?;
    }
    // A send fails only once the writer has stopped, and `joined` says why.
    let _ = full_tx.send(batch);
    drop(full_tx);
    joined(writer)?;
    Ok(started)
}

/// The buffer shared by [`lock_per_frame`]'s two threads.
struct Locked {
    frames: Vec<u8>,
    done: bool,
    writer_waits: bool,
    maker_waits: bool,
}

fn lock_per_frame(mut stream: TcpStream, count: u64, message: &[u8]) -> io::Result<Instant> {
    let shared = Arc::new((
        Mutex::new(Locked {
            frames: Vec::with_capacity(QUEUE_LEN),
            done: false,
            writer_waits: false,
            maker_waits: false,
        }),
        Condvar::new(),
        Condvar::new(),
    ));
    let writer_shared = Arc::clone(&shared);
    let writer = std::thread::spawn(move || -> io::Result<()> {
        let (lock, queued, room) = &*writer_shared;
        let mut taken = Vec::with_capacity(QUEUE_LEN);
        loop {
            let mut locked = lock.lock().unwrap_or_else(PoisonError::into_inner);
            while locked.frames.is_empty() && !locked.done {
                locked.writer_waits = true;
                locked = queued.wait(locked).unwrap_or_else(PoisonError::into_inner);
                locked.writer_waits = false;
            }
            if locked.frames.is_empty() {
                return Ok(());
            }
            std::mem::swap(&mut locked.frames, &mut taken);
            let wake = locked.maker_waits;
            drop(locked);
            if wake {
                room.notify_one();
            }
            stream.write_all(&taken)?;
            taken.clear();
        }
    });
    let (lock, queued, room) = &*shared;
    let frame_len = 4 + message.len();
    let started = Instant::now();
    for _ in 0..count {
        let mut locked = lock.lock().unwrap_or_else(PoisonError::into_inner);
        while locked.frames.len() + frame_len > QUEUE_LEN && !writer.is_finished() {
            locked.maker_waits = true;
            locked = room
                .wait_timeout(locked, Duration::from_millis(10))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            locked.maker_waits = false;
        }
        write_length_prefixed(&mut locked.frames, message)?;
        if locked.writer_waits {
            queued.notify_one();
        }
    }
    lock.lock().unwrap_or_else(PoisonError::into_inner).done = true;
    queued.notify_one();
    joined(writer)?;
    Ok(started)
}

fn channel_per_frame(stream: TcpStream, count: u64, message: &[u8]) -> io::Result<Instant> {
    let frame_len = 4 + message.len();
    let (frames_tx, frames) = mpsc::sync_channel::<Vec<u8>>((QUEUE_LEN / frame_len).max(1));
    let writer = std::thread::spawn(move || -> io::Result<()> {
        let mut out = io::BufWriter::with_capacity(QUEUE_LEN, stream);
        while let Ok(frame) = frames.recv() {
            out.write_all(&frame)?;
            while let Ok(frame) = frames.try_recv() {
                out.write_all(&frame)?;
            }
            out.flush()?;
        }
        Ok(())
    });
    let started = Instant::now();
    for _ in 0..count {
        let mut frame = Vec::with_capacity(frame_len);
        write_length_prefixed(&mut frame, message)?;
        if frames_tx.send(frame).is_err() {
            break;
        }
    }
    drop(frames_tx);
    joined(writer)?;
    Ok(started)
}
