//! Structure-aware: one `Session` under a run of operations built with
//! `arbitrary` (the peer writing frames with arbitrary names and contents,
//! their bytes handed over in arbitrary pieces, the peer reading or not,
//! time passing, frames sent from the handler and from a `Sender`, closes,
//! shutdowns, end of stream, I/O errors), checked after every step against
//! a small reference model (the fuzzing twin of
//! `tej-core/tests/session_model.rs`):
//!
//! - callbacks in order: `connected` first and once, `disconnected` last
//!   and once, exactly when the session says it is closed;
//! - the frames reported are exactly the peer's frames the session took
//!   whole, in order;
//! - the bytes out decode to exactly the frames sent, kind by kind in the
//!   order they were sent (handler replies, Sender frames, pings); at the
//!   end each Sender frame was written whole or handed back, exactly once;
//! - memory within `tej_core::session::memory`'s bound at every step.
#![no_main]

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tej_core::{
    Assembler, Connection, DisconnectReason, Frame, FrameBuilder, Handler, Limits, SendError,
    Sender, Session, SessionConfig, Status,
};

/// A peer frame the handler only records.
const PLAIN: u8 = 10;
/// A peer frame the handler answers with a reply of the length its message names.
const ASK: u8 = 11;
/// A peer frame on which the handler closes the connection.
const BYE: u8 = 12;
/// The handler's replies.
const REPLY: u8 = 20;
/// Frames sent through the `Sender`.
const QUEUED: u8 = 21;
/// The ping status.
const PING: u8 = 2;
const MAX_REPLY: usize = 300;
const MAX_QUEUED: usize = 5000;
const MIN_FRAME: usize = 18;
const PING_LEN: usize = 18;
/// The longest file data and message a valid peer frame carries: three
/// files of 200 bytes, names of 8 and a message of 300 stay within 1,024.
const MAX_DATA: usize = 200;
const MAX_MESSAGE: usize = 300;

const LIMITS: Limits = Limits::DEFAULT
    .max_file_count(3)
    .max_name_len(8)
    .max_frame_size(1024);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Connected,
    Received(Frame),
    Ping(Frame),
    Disconnected,
}

#[derive(Default)]
struct Shared {
    seen: Vec<Seen>,
    /// Replies the connection accepted, in order.
    replies: Vec<Frame>,
}

struct ModelHandler(Arc<Mutex<Shared>>);

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Handler for ModelHandler {
    fn connected(&mut self, _conn: &mut Connection<'_>) {
        lock(&self.0).seen.push(Seen::Connected);
    }

    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        let mut shared = lock(&self.0);
        let status = frame.status.get();
        let asked = frame.message.as_ref().map_or(0, |message| message.len());
        shared.seen.push(Seen::Received(frame));
        match status {
            ASK => {
                let n = shared.replies.len() as u32;
                let mut message = n.to_be_bytes().to_vec();
                message.resize(asked.clamp(4, MAX_REPLY), b'r');
                let reply = FrameBuilder::new(Status::new(REPLY).unwrap())
                    .message(message)
                    .build();
                match conn.send(reply.clone()) {
                    Ok(()) => shared.replies.push(reply),
                    Err(SendError::Closed(_)) => assert!(conn.is_closing()),
                    Err(other) => panic!("{other}"),
                }
            }
            BYE => conn.close(),
            _ => {}
        }
    }

    fn ping_received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        lock(&self.0).seen.push(Seen::Ping(frame));
    }

    fn disconnected(&mut self, _reason: DisconnectReason) {
        lock(&self.0).seen.push(Seen::Disconnected);
    }
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Kind {
    Plain,
    Ask,
    Bye,
    Ping,
}

/// A frame the peer writes.
#[derive(Debug, Arbitrary)]
enum PeerFrame {
    /// Within the limits once cut to them: files (name, data) and a message.
    Valid {
        kind: Kind,
        files: Vec<(String, Vec<u8>)>,
        message: Option<Vec<u8>>,
    },
    /// The status byte's top bit clear: a protocol error.
    BadStatus,
    /// A message over `max_frame_size`: a protocol error when announced.
    TooLarge,
}

impl PeerFrame {
    /// The frame's bytes, and the frame if the session must accept it.
    fn build(self) -> (Vec<u8>, Option<Frame>) {
        match self {
            PeerFrame::Valid {
                kind,
                files,
                message,
            } => {
                let status = match kind {
                    Kind::Plain => PLAIN,
                    Kind::Ask => ASK,
                    Kind::Bye => BYE,
                    Kind::Ping => PING,
                };
                let mut builder = FrameBuilder::new(Status::new(status).unwrap());
                for (name, mut data) in files.into_iter().take(LIMITS.max_file_count as usize) {
                    data.truncate(MAX_DATA);
                    builder = builder.file(cut(name, LIMITS.max_name_len.into()), data);
                }
                if let Some(mut message) = message {
                    message.truncate(MAX_MESSAGE);
                    builder = builder.message(message);
                }
                let frame = builder.build();
                (frame.encode_to_vec().unwrap(), Some(frame))
            }
            PeerFrame::BadStatus => {
                let mut wire = Frame::message("bad").encode_to_vec().unwrap();
                wire[0] &= 0x7F;
                (wire, None)
            }
            PeerFrame::TooLarge => {
                let frame = Frame::message(vec![b'x'; 1025]);
                (frame.encode_to_vec().unwrap(), None)
            }
        }
    }
}

/// `name` cut to at most `max` bytes, on a character boundary.
fn cut(mut name: String, max: usize) -> String {
    let mut end = name.len().min(max);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    name
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum SendHow {
    Try,
    Send,
    Feed,
}

/// One step of the run.
#[derive(Debug, Arbitrary)]
enum Op {
    PeerWrites(PeerFrame),
    /// Up to this many of the peer's bytes reach the session in one piece.
    Deliver(u16),
    /// The peer reads up to this many bytes.
    PeerReads(u16),
    /// Time passes, in milliseconds; due timers run.
    Tick(u16),
    /// A Sender queues a frame with a message of this length and these
    /// files (the files dropped if the frame would pass `MAX_QUEUED`).
    Send(u16, SendHow, Vec<(String, Vec<u8>)>),
    Flush,
    PollQueue,
    SenderClose,
    Close,
    Shutdown,
    Eof,
    IoError,
}

#[derive(Debug, Arbitrary)]
struct Input {
    high_water: u8,
    capacity: u8,
    ping: Option<bool>,
    idle: bool,
    ops: Vec<Op>,
}

impl Input {
    fn config(&self) -> SessionConfig {
        SessionConfig::default()
            .limits(LIMITS)
            .outbox_high_water([64, 700, 8192][usize::from(self.high_water % 3)])
            .send_queue_capacity([19, 500, 16384][usize::from(self.capacity % 3)])
            .ping_interval(
                self.ping
                    .map(|short| Duration::from_millis(if short { 300 } else { 1000 })),
            )
            .idle_timeout(self.idle.then_some(Duration::from_millis(5000)))
            .close_linger(Duration::from_secs(3))
    }
}

struct Model {
    session: Session<ModelHandler>,
    shared: Arc<Mutex<Shared>>,
    sender: Sender,
    now: Duration,
    /// The peer's bytes not yet taken by the session.
    input: Vec<u8>,
    /// Bytes the session took, in all.
    taken: usize,
    /// Each peer frame: where its bytes end in the stream, and the frame if
    /// the session must accept it.
    peer_frames: Vec<(usize, Option<Frame>)>,
    written: usize,
    peer_eof: bool,
    /// The bytes the session wrote and the peer read.
    out: Vec<u8>,
    /// Sender frames the queue accepted, in order.
    queued: Vec<Frame>,
    failed: bool,
}

impl Model {
    fn new(config: SessionConfig) -> Model {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let mut session = Session::new(ModelHandler(shared.clone()), config);
        session.start(Duration::ZERO);
        let sender = session.sender();
        Model {
            session,
            shared,
            sender,
            now: Duration::ZERO,
            input: Vec::new(),
            taken: 0,
            peer_frames: Vec::new(),
            written: 0,
            peer_eof: false,
            out: Vec::new(),
            queued: Vec::new(),
            failed: false,
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::PeerWrites(frame) => {
                if !self.peer_eof {
                    let (wire, frame) = frame.build();
                    self.input.extend_from_slice(&wire);
                    self.written += wire.len();
                    self.peer_frames.push((self.written, frame));
                }
            }
            Op::Deliver(len) => {
                let len = usize::from(len).min(self.input.len());
                if len > 0 {
                    let wanted = self.session.wants_read();
                    let used = self.session.handle_input(&self.input[..len], self.now);
                    assert!(used <= len);
                    assert!(wanted || used == 0, "took input while not wanting it");
                    self.input.drain(..used);
                    self.taken += used;
                }
            }
            Op::PeerReads(limit) => {
                self.read(limit.into());
            }
            Op::Tick(ms) => {
                self.now += Duration::from_millis(ms.into());
                if self
                    .session
                    .poll_timeout()
                    .is_some_and(|deadline| deadline <= self.now)
                {
                    self.session.handle_timeout(self.now);
                }
            }
            Op::Send(len, how, files) => {
                let n = self.queued.len() as u32;
                let mut message = n.to_be_bytes().to_vec();
                message.resize(usize::from(len).clamp(4, MAX_QUEUED), b'q');
                let mut builder =
                    FrameBuilder::new(Status::new(QUEUED).unwrap()).message(message.clone());
                for (name, data) in files.into_iter().take(4) {
                    builder = builder.file(name, data);
                }
                let mut frame = builder.build();
                if frame.encoded_len() as usize > MIN_FRAME + MAX_QUEUED {
                    frame = FrameBuilder::new(Status::new(QUEUED).unwrap())
                        .message(message)
                        .build();
                }
                let result = match how {
                    SendHow::Try => Some(self.sender.try_send(frame.clone())),
                    SendHow::Send => poll_once(self.sender.send(frame.clone())),
                    SendHow::Feed => poll_once(self.sender.feed(frame.clone())),
                };
                match result {
                    Some(Ok(())) => self.queued.push(frame),
                    Some(Err(SendError::Full(back) | SendError::Closed(back))) => {
                        assert_eq!(back, frame)
                    }
                    Some(Err(other)) => panic!("{other}"),
                    // It waited for room and was dropped: nothing queued.
                    None => {}
                }
            }
            Op::Flush => self.sender.flush(),
            Op::PollQueue => self.session.poll_queue(Waker::noop()),
            Op::SenderClose => self.sender.close(),
            Op::Close => self.session.close(),
            Op::Shutdown => self.session.shutdown(),
            Op::Eof => {
                if !self.peer_eof {
                    self.peer_eof = true;
                    self.input.clear();
                    self.session.handle_eof(self.now);
                }
            }
            Op::IoError => {
                self.failed |= !self.session.is_closed();
                self.session
                    .handle_io_error(std::io::ErrorKind::ConnectionReset.into());
            }
        }
    }

    /// The peer reads up to `limit` bytes of what the session offers.
    fn read(&mut self, limit: usize) -> usize {
        let mut read = 0;
        while read < limit && self.session.wants_write() {
            let mut slices: [&[u8]; 16] = [&[]; 16];
            let filled = self.session.transmit(&mut slices);
            let before = self.out.len();
            for slice in &slices[..filled] {
                let room = limit - read - (self.out.len() - before);
                self.out.extend_from_slice(&slice[..slice.len().min(room)]);
            }
            let step = self.out.len() - before;
            if step == 0 {
                break;
            }
            read += step;
            self.session.advance_at(step, self.now);
        }
        read
    }

    fn check(&self) {
        let shared = lock(&self.shared);
        let seen = &shared.seen;

        assert_eq!(seen.first(), Some(&Seen::Connected));
        assert_eq!(seen.iter().filter(|s| **s == Seen::Connected).count(), 1);
        let disconnects = seen.iter().filter(|s| **s == Seen::Disconnected).count();
        assert_eq!(disconnects, usize::from(self.session.is_closed()));
        if disconnects == 1 {
            assert_eq!(seen.last(), Some(&Seen::Disconnected));
        }

        // Frames reported: exactly those the session took whole, in order.
        let mut expected = Vec::new();
        for (end, frame) in &self.peer_frames {
            if *end > self.taken {
                break;
            }
            match frame {
                Some(frame) => expected.push(frame.clone()),
                None => panic!("a frame the session must refuse was taken whole"),
            }
        }
        let reported: Vec<Frame> = seen
            .iter()
            .filter_map(|s| match s {
                Seen::Received(frame) => {
                    assert!(!frame.is_ping());
                    Some(frame.clone())
                }
                Seen::Ping(frame) => {
                    assert!(frame.is_ping());
                    Some(frame.clone())
                }
                _ => None,
            })
            .collect();
        assert_eq!(reported, expected, "frames reported vs taken whole");

        // The bytes out: whole frames, each kind in the order it was sent.
        let (out, _) = decode_all(&self.out);
        let kind = |status: u8| -> Vec<Frame> {
            out.iter()
                .filter(|frame| frame.status.get() == status)
                .cloned()
                .collect()
        };
        let replies = kind(REPLY);
        assert_eq!(replies[..], shared.replies[..replies.len()]);
        let queued = kind(QUEUED);
        assert_eq!(queued[..], self.queued[..queued.len()]);
        let pings = kind(PING);
        assert!(pings.iter().all(|ping| *ping == Frame::ping()));
        assert_eq!(replies.len() + queued.len() + pings.len(), out.len());

        // Memory within the documented bound (session::memory): the outbox
        // up to the high water, or one entry taken into an empty outbox,
        // then one callback's replies and a ping; the queue its capacity
        // and one frame over it; the frame being received within its limits.
        let config = self.session.config();
        let reply = MIN_FRAME + MAX_REPLY;
        let one_sender_frame = MIN_FRAME + MAX_QUEUED;
        let bound = config
            .outbox_high_water
            .max(config.send_queue_capacity)
            .max(one_sender_frame)
            + reply
            + PING_LEN
            + config.send_queue_capacity
            + one_sender_frame;
        let held = self.session.queued_bytes() as usize + self.sender.queued_bytes();
        assert!(held <= bound, "{held} bytes held, over the bound {bound}");
        let receiving_bound = LIMITS.max_frame_size as usize
            + LIMITS.max_file_count as usize * LIMITS.max_name_len as usize;
        assert!(self.session.receiving_bytes() <= receiving_bound);
    }

    /// The peer reads everything and the session closes; then every Sender
    /// frame was written whole or comes back, exactly once.
    fn finish(mut self) {
        self.session.close();
        for _ in 0..10_000 {
            if self.session.is_closed() {
                break;
            }
            self.session.poll_queue(Waker::noop());
            if self.read(usize::MAX) == 0 {
                self.now += Duration::from_secs(1);
                self.session.handle_timeout(self.now);
            }
            self.check();
        }
        assert!(self.session.is_closed(), "the session closes");
        self.check();
        let (out, rest) = decode_all(&self.out);
        let mut accounted: Vec<Frame> = out
            .iter()
            .filter(|frame| frame.status.get() == QUEUED)
            .cloned()
            .collect();
        accounted.extend(self.sender.take_unsent());
        assert_eq!(
            accounted, self.queued,
            "Sender frames: written or handed back"
        );
        let shared = lock(&self.shared);
        let replies = out.iter().filter(|f| f.status.get() == REPLY).count();
        if !(self.failed || self.session.queued_bytes() > 0) {
            assert_eq!(replies, shared.replies.len(), "every reply written");
            assert_eq!(rest, 0, "no frame written part-way");
        }
    }
}

/// The whole frames in `wire`, and how many bytes follow the last one.
fn decode_all(wire: &[u8]) -> (Vec<Frame>, usize) {
    let mut assembler = Assembler::new(Limits::DEFAULT);
    let mut frames = Vec::new();
    let mut rest = wire;
    loop {
        let assembled = assembler.decode(rest).expect("the bytes out decode");
        rest = &rest[assembled.consumed..];
        match assembled.frame {
            Some(frame) => frames.push(frame),
            None => {
                let whole: usize = frames.iter().map(|f| f.encoded_len() as usize).sum();
                return (frames, wire.len() - whole);
            }
        }
    }
}

/// Polls a send future once; one that would wait is dropped, which queues
/// nothing (`Sender::send` is cancel-safe).
fn poll_once(
    future: impl std::future::Future<Output = Result<(), SendError>>,
) -> Option<Result<(), SendError>> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(result) => Some(result),
        Poll::Pending => None,
    }
}

fuzz_target!(|input: Input| {
    let mut model = Model::new(input.config());
    model.check();
    for op in input.ops.into_iter().take(256) {
        model.apply(op);
        model.check();
    }
    model.finish();
});
