//! The small-frame workload: many small frames in one direction through
//! the callback API, fed through a `BufferedSender` or sent one
//! `send_blocking` at a time, against a minimal length-prefixed protocol
//! over buffered plain sockets.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tej_core::{Frame, FrameRef, SessionConfig};

use super::harness::{loopback, wait, Counter, Quiet};
use crate::runtime::{self, Runtime};

/// Buffer sizes shared by the adapters (their default read buffer) and the
/// small-frame baseline.
pub(super) const READ_BUFFER_LEN: usize = 256 * 1024;

/// How the small-frame workload hands frames to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SmallSend {
    /// Fed borrowed through a `BufferedSender`, flushed at the end.
    Buffered,
    /// One `Sender::send_blocking` per frame, each written as soon as possible.
    PerFrame,
}

pub(super) fn tej_small(
    runtime: Runtime,
    count: u64,
    message: &'static [u8],
    how: SmallSend,
) -> io::Result<Duration> {
    let (done_tx, done) = mpsc::sync_channel(1);
    let server = runtime::start_server(runtime, loopback(), SessionConfig::default(), move || {
        Counter::new(count, done_tx.clone())
    })?;
    let client = runtime::connect(runtime, server.addr(), Quiet, SessionConfig::default())?;
    let sender = client.sender();
    let started = Instant::now();
    let refused = |error: tej_core::SendError| io::Error::other(error.to_string());
    match how {
        SmallSend::Buffered => {
            // Batched on this thread, as `BufWriter` batches the baseline's
            // bytes, and encoded from the borrowed message as it writes them.
            let mut buffered = sender.buffered();
            for _ in 0..count {
                buffered
                    .feed_ref_blocking(FrameRef::message(message))
                    .map_err(refused)?;
            }
            buffered.flush_blocking();
        }
        SmallSend::PerFrame => {
            for _ in 0..count {
                sender
                    .send_blocking(Frame::message(Bytes::from_static(message)))
                    .map_err(refused)?;
            }
        }
    }
    wait(&done, "the small frames")?;
    let took = started.elapsed();
    client.close()?;
    server.stop();
    Ok(took)
}

/// The least a framed protocol can do: a u32 length and the bytes, through
/// `BufWriter` and `BufReader` of `READ_BUFFER_LEN`: the writer on the
/// calling thread, the reader of [`spawn_length_prefixed_reader`].
pub(super) fn length_prefixed_small(count: u64, message: &[u8]) -> io::Result<Duration> {
    let (stream, receiver) = length_prefixed_pair(count)?;
    let mut writer = BufWriter::with_capacity(READ_BUFFER_LEN, stream);
    let started = Instant::now();
    for _ in 0..count {
        write_length_prefixed(&mut writer, message)?;
    }
    writer.flush()?;
    join_length_prefixed_reader(receiver, count)?;
    Ok(started.elapsed())
}

/// One length-prefixed frame of `message`.
pub(super) fn write_length_prefixed(out: &mut impl Write, message: &[u8]) -> io::Result<()> {
    out.write_all(&(message.len() as u32).to_be_bytes())?;
    out.write_all(message)
}

/// A connected loopback stream (`TCP_NODELAY`) whose peer is a
/// [`spawn_length_prefixed_reader`] expecting `count` frames.
pub(super) fn length_prefixed_pair(count: u64) -> io::Result<(TcpStream, LengthPrefixedReader)> {
    let listener = TcpListener::bind(loopback())?;
    let addr = listener.local_addr()?;
    let receiver = spawn_length_prefixed_reader(listener, count);
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    Ok((stream, receiver))
}

/// The reader thread of the length-prefixed baselines: the frames it read.
pub(super) type LengthPrefixedReader = std::thread::JoinHandle<io::Result<u64>>;

/// Waits for the reader, which must have read `count` frames.
pub(super) fn join_length_prefixed_reader(
    receiver: LengthPrefixedReader,
    count: u64,
) -> io::Result<()> {
    let frames = receiver
        .join()
        .map_err(|_| io::Error::other("receiver panicked"))??;
    if frames != count {
        return Err(io::Error::other("the baseline lost frames"));
    }
    Ok(())
}

/// Accepts one connection and reads `count` length-prefixed frames through
/// a `BufReader` of `READ_BUFFER_LEN`. It takes whole frames straight from
/// the buffer, copying each message into a reused `Vec` (what a receiver
/// needs to own it), and falls back to `read_exact` only for a frame split
/// between two reads: the fastest a hand-written reader gets, whatever the
/// compiler inlines.
fn spawn_length_prefixed_reader(listener: TcpListener, count: u64) -> LengthPrefixedReader {
    std::thread::spawn(move || -> io::Result<u64> {
        let (stream, _) = listener.accept()?;
        let mut reader = BufReader::with_capacity(READ_BUFFER_LEN, stream);
        let mut body = Vec::new();
        let mut frames = 0u64;
        while frames < count {
            let buffer = reader.fill_buf()?;
            let mut used = 0;
            while frames < count {
                let Some(length) = buffer.get(used..used + 4) else {
                    break;
                };
                let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]);
                let Some(message) = buffer.get(used + 4..used + 4 + length as usize) else {
                    break;
                };
                body.clear();
                body.extend_from_slice(message);
                std::hint::black_box(&body);
                used += 4 + length as usize;
                frames += 1;
            }
            reader.consume(used);
            if used == 0 && frames < count {
                let mut length = [0u8; 4];
                reader.read_exact(&mut length)?;
                body.resize(u32::from_be_bytes(length) as usize, 0);
                reader.read_exact(&mut body)?;
                frames += 1;
            }
        }
        Ok(frames)
    })
}
