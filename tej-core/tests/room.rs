//! The consumer's backpressure without I/O: a handler that buffers what it
//! receives for a slower consumer, offering only the room its buffer has
//! ([`Handler::poll_room`]). The session must give file bodies no faster
//! than that, stop mid-body at 0, keep the idle, stall and frame deadlines
//! still while it waits, and keep what the handler holds within its room
//! plus one frame.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};
use std::time::Duration;

use tej_core::storage::{FileSink, StorageError};
use tej_core::{
    DisconnectReason, File, FileBody, FileTarget, Frame, FrameTimeout, Handler, Session,
    SessionConfig, Status,
};

/// What the consumer has not taken yet, and who waits for room.
#[derive(Default)]
struct Buffer {
    /// Bytes held for the consumer: file chunks and whole messages.
    chunks: VecDeque<Vec<u8>>,
    held: usize,
    /// The most ever held at once.
    peak: usize,
    capacity: usize,
    waker: Option<Waker>,
    /// What the handler saw, in order.
    log: Vec<String>,
    ended: Option<String>,
}

impl Buffer {
    fn push(&mut self, bytes: Vec<u8>) {
        self.held += bytes.len();
        self.peak = self.peak.max(self.held);
        self.chunks.push_back(bytes);
    }

    /// The consumer takes up to `len` bytes; wakes the session if it freed room.
    fn consume(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < len {
            let Some(mut chunk) = self.chunks.pop_front() else {
                break;
            };
            let want = len - out.len();
            if chunk.len() > want {
                let rest = chunk.split_off(want);
                self.chunks.push_front(rest);
            }
            out.extend_from_slice(&chunk);
        }
        self.held -= out.len();
        if !out.is_empty() {
            if let Some(waker) = self.waker.take() {
                waker.wake();
            }
        }
        out
    }
}

type Shared = Arc<Mutex<Buffer>>;

/// The handler of a consumer with a buffer of `capacity` bytes.
struct Buffering(Shared);

struct BufferSink(Shared);

impl FileSink for BufferSink {
    fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        self.0.lock().unwrap().push(data.to_vec());
        Ok(())
    }

    fn finish(&mut self) -> Result<FileBody, StorageError> {
        Ok(FileBody::Delivered { len: 0 })
    }

    fn blocks(&self) -> bool {
        false
    }
}

impl Handler for Buffering {
    fn received(&mut self, _conn: &mut tej_core::Connection<'_>, frame: Frame) {
        let mut buffer = self.0.lock().unwrap();
        let files = frame.files.len();
        buffer.log.push(format!("received {files} files"));
        if let Some(message) = frame.message {
            buffer.push(message.to_vec());
        }
    }

    fn frame_started(&mut self, status: Status, file_count: u64) {
        let mut buffer = self.0.lock().unwrap();
        buffer
            .log
            .push(format!("started {} {file_count}", status.get()));
    }

    fn file_target(&mut self, name: &str, size: u64, index: usize) -> FileTarget {
        let mut buffer = self.0.lock().unwrap();
        buffer.log.push(format!("file {index} {name} {size}"));
        FileTarget::Sink(Box::new(BufferSink(self.0.clone())))
    }

    fn poll_room(&mut self, waker: &Waker) -> usize {
        let mut buffer = self.0.lock().unwrap();
        let room = buffer.capacity.saturating_sub(buffer.held);
        if room == 0 {
            buffer.waker = Some(waker.clone());
        }
        room
    }

    fn disconnected(&mut self, reason: DisconnectReason) {
        self.0.lock().unwrap().ended = Some(format!("{reason}"));
    }
}

/// Counts its wakes.
struct Count(Mutex<usize>);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        *self.0.lock().unwrap() += 1;
    }
}

fn session(capacity: usize, config: SessionConfig) -> (Session<Buffering>, Shared) {
    let shared = Shared::default();
    shared.lock().unwrap().capacity = capacity;
    let mut session = Session::new(Buffering(shared.clone()), config);
    session.start(Duration::ZERO);
    (session, shared)
}

fn file_frame(len: usize) -> (Frame, Vec<u8>) {
    let body: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    let mut frame = Frame::message("done");
    frame.status = Status::new(9).unwrap();
    frame.files.push(File::new("a.bin", body.clone()));
    (frame, body)
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn a_file_body_stops_where_the_room_ends_and_goes_on_when_it_frees() {
    let (mut session, shared) = session(10_000, SessionConfig::default());
    let (frame, body) = file_frame(100_000);
    let wire = frame.encode_to_vec().unwrap();
    let counter = Arc::new(Count(Mutex::new(0)));
    let waker = Waker::from(counter.clone());

    let mut offset = 0;
    let mut received = Vec::new();
    let mut rounds = 0;
    while offset < wire.len() {
        rounds += 1;
        assert!(rounds < 1_000, "no progress");
        session.poll_room(&waker, Duration::ZERO);
        if !session.wants_read() {
            // The session waits for the consumer, who frees room and wakes it.
            let wakes = *counter.0.lock().unwrap();
            received.extend(shared.lock().unwrap().consume(3_000));
            assert_eq!(
                *counter.0.lock().unwrap(),
                wakes + 1,
                "freeing room wakes the session"
            );
            continue;
        }
        offset += session.handle_input(&wire[offset..], Duration::ZERO);
        let buffer = shared.lock().unwrap();
        assert!(buffer.held <= 10_000, "held {} over the room", buffer.held);
    }
    received.extend(shared.lock().unwrap().consume(usize::MAX));
    let mut expected = body;
    expected.extend_from_slice(b"done");
    assert_eq!(received, expected);
    let buffer = shared.lock().unwrap();
    assert_eq!(
        buffer.log,
        ["started 9 1", "file 0 a.bin 100000", "received 1 files"]
    );
    assert!(buffer.peak <= 10_000);
    assert!(session.is_open());
}

#[test]
fn whole_frames_stop_at_the_boundary_once_the_room_is_spent() {
    let capacity = 1_000;
    let (mut session, shared) = session(capacity, SessionConfig::default());
    let mut wire = Vec::new();
    let mut sent = Vec::new();
    for i in 0..50u32 {
        let message = vec![i as u8; 100 + (i as usize * 37) % 700];
        sent.extend_from_slice(&message);
        wire.extend(Frame::message(message).encode_to_vec().unwrap());
    }
    let largest = 800;
    let mut offset = 0;
    let mut received = Vec::new();
    while offset < wire.len() {
        session.poll_room(Waker::noop(), Duration::ZERO);
        if session.wants_read() {
            offset += session.handle_input(&wire[offset..], Duration::ZERO);
        } else {
            received.extend(shared.lock().unwrap().consume(usize::MAX));
        }
        // The handler's room plus one frame, never more.
        assert!(shared.lock().unwrap().held < capacity + largest);
    }
    received.extend(shared.lock().unwrap().consume(usize::MAX));
    assert_eq!(received, sent);
}

#[test]
fn deadlines_stand_still_while_the_consumer_is_the_one_not_reading() {
    let config = SessionConfig::default()
        .idle_timeout(Some(SECOND))
        .stall_timeout(Some(2 * SECOND))
        .ping_interval(None)
        .frame_timeout(Some(FrameTimeout::new(3 * SECOND, 0)));
    let (mut session, shared) = session(1_000, config);
    let (frame, _) = file_frame(10_000);
    let wire = frame.encode_to_vec().unwrap();
    let used = session.handle_input(&wire, Duration::ZERO);
    assert!(used < wire.len());
    session.poll_room(Waker::noop(), Duration::ZERO);
    assert!(!session.wants_read(), "the room is spent mid-body");

    // An hour with the consumer stalled: nothing is due, nothing fires.
    let hour = Duration::from_secs(3600);
    assert_eq!(session.poll_timeout(), None);
    session.handle_timeout(hour);
    assert!(session.is_open(), "{:?}", shared.lock().unwrap().ended);

    // Room again: the clocks go on from where they stood, and the peer is
    // now the one late: the idle deadline is a second later.
    shared.lock().unwrap().consume(usize::MAX);
    session.poll_room(Waker::noop(), hour);
    assert!(session.wants_read());
    assert_eq!(session.poll_timeout(), Some(hour + SECOND));
    session.handle_timeout(hour + SECOND / 2);
    assert!(session.is_open());
    session.handle_timeout(hour + SECOND);
    assert!(!session.is_open());
    assert_eq!(
        shared.lock().unwrap().ended.as_deref(),
        Some(&*format!("{}", DisconnectReason::IdleTimeout))
    );
}

#[test]
fn the_frame_deadline_counts_only_the_time_the_peer_had() {
    let config = SessionConfig::default()
        .idle_timeout(None)
        .stall_timeout(None)
        .ping_interval(None)
        .frame_timeout(Some(FrameTimeout::new(3 * SECOND, 0)));
    let (mut session, shared) = session(1_000, config);
    let (frame, _) = file_frame(10_000);
    let wire = frame.encode_to_vec().unwrap();
    // Two seconds of the frame pass with the peer sending.
    let mut offset = session.handle_input(&wire[..500], Duration::ZERO);
    offset += session.handle_input(&wire[offset..], 2 * SECOND);
    session.poll_room(Waker::noop(), 2 * SECOND);
    assert!(!session.wants_read());
    // Ten seconds with the consumer stalled, then room again.
    shared.lock().unwrap().consume(usize::MAX);
    session.poll_room(Waker::noop(), 12 * SECOND);
    // One second of the frame's three is left.
    assert_eq!(session.poll_timeout(), Some(13 * SECOND));
    session.handle_timeout(13 * SECOND);
    assert_eq!(
        shared.lock().unwrap().ended.as_deref(),
        Some(&*format!("{}", DisconnectReason::FrameTimeout))
    );
    assert!(offset < wire.len());
}
