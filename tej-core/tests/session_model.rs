//! A state-machine model of one [`Session`]: proptest draws a configuration
//! and a run of operations (the peer writing frames, their bytes handed
//! over in random pieces, the peer reading or not, time passing, frames
//! sent from the handler and from a [`Sender`], closes, shutdowns, end of
//! stream, I/O errors) and after every step checks the session against a
//! small reference model:
//!
//! - callbacks in order: `connected` first and once, `disconnected` last
//!   and once, and exactly when the session says it is closed;
//! - the frames reported are exactly the peer's frames whose bytes the
//!   session took whole, in order: nothing reported that was not received
//!   whole, nothing received whole left unreported;
//! - the bytes out decode to frames, and those are, kind by kind, the
//!   frames sent in the order they were sent (handler replies, Sender
//!   frames, pings); once the session has ended, each Sender frame was
//!   written whole or comes back from `take_unsent`, exactly once;
//! - memory within the documented bound (`session::memory`) at every step:
//!   bytes waiting to be written plus the send queue within
//!   `max(outbox_high_water, send_queue_capacity, F) + R + send_queue_capacity + F`
//!   (`R` one callback's replies and a ping, `F` one Sender frame), the
//!   frame being received within `max_frame_size + max_file_count × max_name_len`.

mod common;

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::Seen;
use proptest::prelude::*;
use tej_core::{
    Connection, DisconnectReason, Frame, FrameBuilder, Handler, Limits, SendError, Sender, Session,
    SessionConfig, Status,
};

/// Statuses that say what the frame is, on the wire and to the handler.
const PLAIN: u8 = 10;
/// A peer frame the handler answers with a reply of the length its message names.
const ASK: u8 = 11;
/// A peer frame on which the handler closes the connection.
const BYE: u8 = 12;
/// The handler's replies.
const REPLY: u8 = 20;
/// Frames sent through the `Sender`.
const QUEUED: u8 = 21;
/// The longest reply the handler sends, and the longest Sender message.
const MAX_REPLY: usize = 300;
const MAX_QUEUED: usize = 5000;
const PING_LEN: usize = 18;

const LIMITS: Limits = Limits::DEFAULT
    .max_file_count(3)
    .max_name_len(8)
    .max_frame_size(1024);

/// What the handler shares with the test.
#[derive(Default)]
struct Shared {
    seen: Vec<Seen>,
    /// Replies the connection accepted, in order.
    replies: Vec<Frame>,
}

struct ModelHandler(Arc<Mutex<Shared>>);

/// The shared record, even after a failed check poisoned its lock (the
/// session's drop still calls `disconnected`).
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

    fn disconnected(&mut self, reason: DisconnectReason) {
        lock(&self.0)
            .seen
            .push(Seen::Disconnected(format!("{reason:?}")));
    }
}

/// A frame the peer writes.
#[derive(Debug, Clone)]
enum PeerFrame {
    /// Within the limits: status, files (name length, data length), message.
    Valid(u8, Vec<(usize, usize)>, Option<usize>),
    /// The status byte's top bit clear: a protocol error.
    BadStatus,
    /// A message over `max_frame_size`: a protocol error when announced.
    TooLarge,
}

impl PeerFrame {
    /// The frame, and whether the session must accept it.
    fn build(&self, n: usize) -> (Vec<u8>, Option<Frame>) {
        match self {
            PeerFrame::Valid(status, files, message) => {
                let mut builder = FrameBuilder::new(Status::new(*status).unwrap());
                for (index, &(name_len, data_len)) in files.iter().enumerate() {
                    let name: String = format!("{index}{n}")
                        .chars()
                        .cycle()
                        .take(name_len)
                        .collect();
                    builder = builder.file(name, vec![n as u8; data_len]);
                }
                if let Some(len) = message {
                    builder = builder.message(vec![b'm'; *len]);
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

/// One step of the run.
#[derive(Debug, Clone)]
enum Op {
    /// The peer writes a frame (it reaches the session with `Deliver`).
    PeerWrites(PeerFrame),
    /// Up to this many of the peer's bytes reach the session in one piece.
    Deliver(usize),
    /// The peer reads up to this many bytes.
    PeerReads(usize),
    /// Time passes, in milliseconds; due timers run.
    Tick(u64),
    /// A Sender queues a frame with a message of this length: `try_send`,
    /// or a `send` / `feed` future polled once and dropped if it waits.
    Send(usize, SendHow),
    /// `Sender::flush`.
    Flush,
    /// The connection's driver takes from the send queue.
    PollQueue,
    /// `Sender::close`.
    SenderClose,
    /// `Session::close`.
    Close,
    /// `Session::shutdown`.
    Shutdown,
    /// The peer closed its side: nothing more arrives.
    Eof,
    /// The socket failed.
    IoError,
}

#[derive(Debug, Clone, Copy)]
enum SendHow {
    Try,
    Send,
    Feed,
}

fn peer_frame() -> impl Strategy<Value = PeerFrame> {
    let files = proptest::collection::vec((0usize..=8, 0usize..200), 0..=3);
    let message = proptest::option::of(0usize..300);
    prop_oneof![
        8 => (prop_oneof![Just(PLAIN), Just(ASK), Just(2u8)], files, message)
            .prop_map(|(status, files, message)| PeerFrame::Valid(status, files, message)),
        1 => Just(PeerFrame::Valid(BYE, Vec::new(), None)),
        1 => Just(PeerFrame::BadStatus),
        1 => Just(PeerFrame::TooLarge),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => peer_frame().prop_map(Op::PeerWrites),
        8 => prop_oneof![1usize..20, 1usize..2000].prop_map(Op::Deliver),
        6 => prop_oneof![1usize..20, 1usize..4000].prop_map(Op::PeerReads),
        3 => prop_oneof![0u64..500, 500u64..4000].prop_map(Op::Tick),
        5 => (
            prop_oneof![0usize..64, 0usize..MAX_QUEUED],
            prop_oneof![Just(SendHow::Try), Just(SendHow::Send), Just(SendHow::Feed)]
        )
            .prop_map(|(len, how)| Op::Send(len, how)),
        1 => Just(Op::Flush),
        4 => Just(Op::PollQueue),
        1 => Just(Op::SenderClose),
        1 => Just(Op::Close),
        1 => Just(Op::Shutdown),
        1 => Just(Op::Eof),
        1 => Just(Op::IoError),
    ]
}

fn config() -> impl Strategy<Value = SessionConfig> {
    (
        prop_oneof![Just(64usize), Just(700), Just(8192)],
        prop_oneof![Just(19usize), Just(500), Just(16384)],
        proptest::option::of(prop_oneof![Just(300u64), Just(1000)]),
        proptest::option::of(Just(5000u64)),
    )
        .prop_map(|(high_water, capacity, ping, idle)| {
            SessionConfig::default()
                .limits(LIMITS)
                .outbox_high_water(high_water)
                .send_queue_capacity(capacity)
                .ping_interval(ping.map(Duration::from_millis))
                .idle_timeout(idle.map(Duration::from_millis))
                .close_linger(Duration::from_secs(3))
        })
}

/// The session under test, its peer, and what the reference model expects.
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

    fn apply(&mut self, op: &Op) {
        match op {
            Op::PeerWrites(frame) => {
                if !self.peer_eof {
                    let (wire, frame) = frame.build(self.peer_frames.len());
                    self.input.extend_from_slice(&wire);
                    self.written += wire.len();
                    self.peer_frames.push((self.written, frame));
                }
            }
            Op::Deliver(len) => {
                let len = (*len).min(self.input.len());
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
                self.read(*limit);
            }
            Op::Tick(ms) => {
                self.now += Duration::from_millis(*ms);
                if self
                    .session
                    .poll_timeout()
                    .is_some_and(|deadline| deadline <= self.now)
                {
                    self.session.handle_timeout(self.now);
                }
            }
            Op::Send(len, how) => {
                let n = self.queued.len() as u32;
                let mut message = n.to_be_bytes().to_vec();
                message.resize((*len).max(4), b'q');
                let frame = FrameBuilder::new(Status::new(QUEUED).unwrap())
                    .message(message)
                    .build();
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
                    // It waited for room, and was dropped: nothing queued.
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

    /// Every invariant of the reference model, after any step.
    fn check(&self) {
        let shared = lock(&self.shared);
        let seen = &shared.seen;

        // Callbacks: connected first and once, disconnected last and once,
        // exactly when closed.
        assert_eq!(seen.first(), Some(&Seen::Connected));
        assert_eq!(seen.iter().filter(|s| **s == Seen::Connected).count(), 1);
        let disconnects = seen
            .iter()
            .filter(|s| matches!(s, Seen::Disconnected(_)))
            .count();
        assert_eq!(disconnects, usize::from(self.session.is_closed()));
        if disconnects == 1 {
            assert!(matches!(seen.last(), Some(Seen::Disconnected(_))));
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
        let (out, _) = common::whole_frames(&self.out);
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
        let pings = kind(2);
        assert!(pings.iter().all(|ping| *ping == Frame::ping()));
        assert_eq!(replies.len() + queued.len() + pings.len(), out.len());

        // Memory within the documented bound.
        let config = self.session.config();
        let reply = MIN_FRAME + MAX_REPLY;
        let one_sender_frame = MIN_FRAME + MAX_QUEUED;
        // The outbox: up to the high water, or one entry taken from the
        // queue into an empty outbox (a run up to the queue's capacity, or
        // one frame), then one callback's replies and a ping; the queue:
        // its capacity and one frame over it.
        let bound = config
            .outbox_high_water
            .max(config.send_queue_capacity)
            .max(one_sender_frame)
            + reply
            + PING_LEN
            + config.send_queue_capacity
            + one_sender_frame;
        let held = self.session.queued_bytes() as usize + self.sender.queued_bytes();
        assert!(
            held <= bound,
            "{held} bytes waiting to be written or queued ({} + {}), over the bound {bound}",
            self.session.queued_bytes(),
            self.sender.queued_bytes()
        );
        let receiving_bound = LIMITS.max_frame_size as usize
            + LIMITS.max_file_count as usize * LIMITS.max_name_len as usize;
        assert!(self.session.receiving_bytes() <= receiving_bound);
    }

    /// Ends the run: the peer reads everything, the session closes; then
    /// every Sender frame was written whole or comes back, exactly once.
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
        let (out, rest) = common::whole_frames(&self.out);
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
        // A session that ended with bytes still to write (an I/O error, or a
        // peer that read nothing for the whole linger) cut them.
        let cut = self.failed || self.session.queued_bytes() > 0;
        if !cut {
            // Nothing cut the connection: every reply and every byte went out.
            assert_eq!(replies, shared.replies.len(), "every reply written");
            assert_eq!(rest, 0, "no frame written part-way");
        }
    }
}

const MIN_FRAME: usize = 18;

/// Polls a send future once; a future that would wait is dropped, which
/// queues nothing (`Sender::send` is cancel-safe).
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

proptest! {
    #![proptest_config(common::proptest_config(512))]

    #[test]
    fn the_session_follows_its_reference_model(
        config in config(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut model = Model::new(config);
        model.check();
        for op in &ops {
            model.apply(op);
            model.check();
        }
        model.finish();
    }
}
