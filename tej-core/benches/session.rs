//! Session benchmarks on one thread, without sockets: the per-frame cost of
//! each side of a connection for small frames (a 64-byte message).
//!
//! - `sender_to_wire`: `Sender::send_blocking` per frame, the session taking
//!   the queue every 1,000 frames and its bytes being "written" (dropped),
//!   as a connection's driver does;
//! - `buffered_sender_to_wire`: the same through a `BufferedSender`;
//! - `buffered_ref_to_wire`: the same, fed borrowed (`feed_ref_blocking`):
//!   no `Frame` built per message;
//! - `wire_to_handler`: encoded frames handed to `Session::handle_input` in
//!   64 KiB reads, each delivered to a handler as a `Frame`;
//! - `shared_wire_to_handler`: the same reads as `Bytes` to
//!   `Session::handle_bytes`, messages handed out as slices of them;
//! - `shared_wire_to_view`: the same, to a handler that takes frames lent
//!   (`Handler::received_view`): no slice, no reference count per frame.
//!
//! Run with `cargo bench -p tej-core --bench session`.

use std::hint::black_box;
use std::task::Waker;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tej_core::{Connection, Frame, FrameView, Handler, Session, SessionConfig};

/// Frames per iteration.
const FRAMES: usize = 10_000;
/// Frames queued between two turns of the simulated driver.
const FRAMES_PER_TURN: usize = 1_000;
/// The simulated socket read size.
const READ_LEN: usize = 64 << 10;

struct Counter(u64);

impl Handler for Counter {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.0 += frame.message.map_or(0, |message| message.len() as u64);
    }
}

/// Sums the message lengths of the frames lent to it, and of those given
/// (a frame split between two reads is not lent).
struct Viewer(u64);

impl Handler for Viewer {
    fn received_view<'a>(
        &mut self,
        _conn: &mut Connection<'_>,
        frame: FrameView<'a>,
    ) -> Option<FrameView<'a>> {
        self.0 += frame.message().map_or(0, |message| message.len() as u64);
        None
    }

    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.0 += frame.message.map_or(0, |message| message.len() as u64);
    }
}

/// Takes everything the session offers, as a driver's writes would.
fn write_all<H: Handler>(session: &mut Session<H>) -> usize {
    let mut written = 0;
    while session.wants_write() {
        let mut slices: [&[u8]; 64] = [&[]; 64];
        let filled = session.transmit(&mut slices);
        let len: usize = slices[..filled]
            .iter()
            .map(|slice| black_box(slice).len())
            .sum();
        session.advance(len);
        written += len;
    }
    written
}

/// The message of every frame.
static MESSAGE: [u8; 64] = [0x5a; 64];

/// A new frame around the same `'static` message, as `tej bench` sends:
/// cloning one frame would time `Bytes`' reference counting instead.
fn small() -> Frame {
    Frame::message(bytes::Bytes::from_static(&MESSAGE))
}

/// `FRAMES` frames of `frame_len` bytes through the session's send queue:
/// `queue_turn` queues `FRAMES_PER_TURN` of them, then the session takes
/// the queue and everything is written, as a driver's turn would.
fn to_wire<H: Handler>(session: &mut Session<H>, frame_len: u64, mut queue_turn: impl FnMut()) {
    let mut written = 0;
    for _ in 0..FRAMES / FRAMES_PER_TURN {
        queue_turn();
        session.poll_queue(Waker::noop());
        written += write_all(session);
    }
    assert_eq!(written as u64, frame_len * FRAMES as u64);
}

fn small_frames(c: &mut Criterion) {
    let frame = Frame::message(vec![0x5a; 64]);
    let mut group = c.benchmark_group("session_small_frames");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(FRAMES as u64));

    let mut session = Session::new(Counter(0), SessionConfig::default());
    session.start(Duration::ZERO);
    let sender = session.sender();
    let frame_len = frame.encoded_len();
    group.bench_function("sender_to_wire", |b| {
        b.iter(|| {
            to_wire(&mut session, frame_len, || {
                for _ in 0..FRAMES_PER_TURN {
                    sender.send_blocking(small()).unwrap();
                }
            })
        })
    });

    group.bench_function("buffered_sender_to_wire", |b| {
        let mut buffered = sender.buffered();
        b.iter(|| {
            to_wire(&mut session, frame_len, || {
                for _ in 0..FRAMES_PER_TURN {
                    buffered.feed_blocking(small()).unwrap();
                }
                buffered.flush_blocking();
            })
        })
    });

    group.bench_function("buffered_ref_to_wire", |b| {
        let mut buffered = sender.buffered();
        b.iter(|| {
            to_wire(&mut session, frame_len, || {
                for _ in 0..FRAMES_PER_TURN {
                    buffered
                        .feed_ref_blocking(tej_core::FrameRef::message(&MESSAGE))
                        .unwrap();
                }
                buffered.flush_blocking();
            })
        })
    });

    let wire: Vec<u8> = (0..FRAMES)
        .flat_map(|_| frame.encode_to_vec().unwrap())
        .collect();
    let mut receiver = Session::new(Counter(0), SessionConfig::default());
    receiver.start(Duration::ZERO);
    group.bench_function("wire_to_handler", |b| {
        b.iter(|| {
            let before = receiver.handler().0;
            let mut rest = &wire[..];
            let mut pending: Vec<u8> = Vec::with_capacity(READ_LEN);
            while !rest.is_empty() || !pending.is_empty() {
                let take = (READ_LEN - pending.len()).min(rest.len());
                pending.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                let used = receiver.handle_input(&pending, Duration::ZERO);
                pending.drain(..used);
                if take == 0 && used == 0 {
                    break;
                }
            }
            assert_eq!(receiver.handler().0 - before, 64 * FRAMES as u64);
        })
    });

    // The same wire as shared buffers, as `tej_net`'s drive hands them:
    // messages are slices of the input, not copies.
    let shared = bytes::Bytes::from(wire);
    group.bench_function("shared_wire_to_handler", |b| {
        b.iter(|| {
            let before = receiver.handler().0;
            let mut offset = 0;
            while offset < shared.len() {
                let read = shared.slice(offset..(offset + READ_LEN).min(shared.len()));
                let used = receiver.handle_bytes(&read, Duration::ZERO);
                assert_eq!(used, read.len());
                offset += used;
            }
            assert_eq!(receiver.handler().0 - before, 64 * FRAMES as u64);
        })
    });

    let mut viewer = Session::new(Viewer(0), SessionConfig::default());
    viewer.start(Duration::ZERO);
    group.bench_function("shared_wire_to_view", |b| {
        b.iter(|| {
            let before = viewer.handler().0;
            let mut offset = 0;
            while offset < shared.len() {
                let read = shared.slice(offset..(offset + READ_LEN).min(shared.len()));
                let used = viewer.handle_bytes(&read, Duration::ZERO);
                assert_eq!(used, read.len());
                offset += used;
            }
            assert_eq!(viewer.handler().0 - before, 64 * FRAMES as u64);
        })
    });
    group.finish();
}

criterion_group!(benches, small_frames);
criterion_main!(benches);
