//! A reference model of one `Session`, shared by the property test
//! `tests/session_model.rs` (operations drawn by proptest) and the fuzz
//! target `fuzz/fuzz_targets/session_ops.rs` (operations built with
//! `arbitrary`, which includes this file by its path): one model, so that
//! the two check the same things.
//!
//! It runs a session under a run of operations (the peer writing frames
//! with any names and contents, their bytes handed over in any pieces, the
//! peer reading or not, time passing, frames sent from the handler, from a
//! `Sender` and from a `BufferedSender`, files received into memory,
//! discarded or into a `FileSink`, files sent from a `FileSource`, closes,
//! shutdowns, end of stream, I/O errors) and checks after every step:
//!
//! - callbacks in order: `connected` first and once, `disconnected` last
//!   and once, exactly when the session says it is closed;
//! - the frames reported are exactly the peer's frames the session took
//!   whole, in order, each file's body as its target says;
//! - each sink: `start` once with the file's name and size, the file's
//!   bytes in order, `finish` once after the last, `commit` before its
//!   frame is reported, `abandon` once (and before `disconnected`) for a
//!   frame never reported; a sink that fails ends the session with
//!   `DisconnectReason::Storage`;
//! - the bytes out decode to exactly the frames sent, kind by kind in the
//!   order they were sent (handler replies, Sender frames, BufferedSender
//!   frames, pings), a file from a source as exactly its announced bytes;
//!   a source that fails or is cut short is never sent whole and ends the
//!   session with `DisconnectReason::Storage`; at the end each Sender and
//!   BufferedSender frame was written whole or handed back, exactly once;
//! - memory within `tej_core::session::memory`'s bound at every step:
//!   bytes waiting to be written plus the send queue within
//!   `max(outbox_high_water, send_queue_capacity, F) + R + send_queue_capacity + F`
//!   (`R` one callback's replies and a ping, `F` the costliest frame
//!   offered to a sender), the frame being received within
//!   `max_frame_size + max_file_count × max_name_len`.
//!
//! The operation types derive `arbitrary::Arbitrary` for the fuzz target
//! only (it builds this file as a binary, not a test); the property test
//! draws them with its own strategies.

// Each includer uses a part: the property test none of the sinks, sources
// and `BufferedSender` operations it does not draw.
#![allow(dead_code)]

use std::future::Future;
use std::io::{self, Read};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

#[cfg(not(test))]
use arbitrary::Arbitrary;
use tej_core::storage::{FileSink, FileSource, StorageError};
use tej_core::{
    Assembler, BufferedSender, Connection, DisconnectReason, File, FileBody, FileTarget, Frame,
    FrameBuilder, FrameView, Handler, Limits, SendError, Sender, Session, SessionConfig, Status,
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
/// Frames sent through the `BufferedSender`.
const BUFFERED: u8 = 22;
/// The ping status.
const PING: u8 = 2;
pub const MAX_REPLY: usize = 300;
pub const MAX_QUEUED: usize = 5000;
const MIN_FRAME: usize = 18;
const PING_LEN: usize = 18;
/// A file's name length and size fields.
const FILE_HEADER: usize = 10;
/// What a file from a source costs against the send queue's bound
/// (tej-core's `outgoing.rs`): an open source, not its bytes.
const SOURCE_FILE_COST: usize = 64 * 1024;
/// Whether `BufferedDrop` may cancel a pending `BufferedSender` feed or
/// flush. On: a cancelled one must lose none of the frames fed before
/// (this target found that it did, `BufferedSender::hand_over`, fixed).
const CANCEL_PENDING_BUFFERED: bool = true;
/// The longest file data and message a valid peer frame carries: three
/// files of 200 bytes, names of 8 and a message of 300 stay within 1,024.
pub const MAX_DATA: usize = 200;
pub const MAX_MESSAGE: usize = 300;

pub const LIMITS: Limits = Limits::DEFAULT
    .max_file_count(3)
    .max_name_len(8)
    .max_frame_size(1024);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Connected,
    Received(Frame),
    Ping(Frame),
    Disconnected,
    /// A call on the sink with this number (sinks are numbered as made).
    Sink(usize, Step),
}

/// A call on a sink, as the sink saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Start(String, u64),
    Write(Vec<u8>),
    Finish,
    Commit,
    Abandon,
    /// The call just logged returned an error.
    Failed,
}

#[derive(Default)]
struct Shared {
    seen: Vec<Seen>,
    /// Replies the connection accepted, in order.
    replies: Vec<Frame>,
    /// Sinks made so far.
    sinks: usize,
    /// Sink calls that returned an error.
    sink_failures: usize,
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

    /// Frames lent are taken here, as the owned frame they stand for, so the
    /// model checks the lent path as it checks `received`; those that ask
    /// for a reply or a close are handed back to `received`.
    fn received_view<'a>(
        &mut self,
        _conn: &mut Connection<'_>,
        frame: FrameView<'a>,
    ) -> Option<FrameView<'a>> {
        if matches!(frame.status().get(), ASK | BYE) {
            return Some(frame);
        }
        lock(&self.0).seen.push(Seen::Received(frame.to_frame()));
        None
    }

    fn ping_received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        lock(&self.0).seen.push(Seen::Ping(frame));
    }

    fn disconnected(&mut self, _reason: DisconnectReason) {
        lock(&self.0).seen.push(Seen::Disconnected);
    }

    /// Where a file goes is written in its name's first character (`Store::tag`).
    fn file_target(&mut self, name: &str, _size: u64, _index: usize) -> FileTarget {
        match Store::from_name(name) {
            Store::Memory => FileTarget::Memory,
            Store::Discard => FileTarget::Discard,
            Store::Sink { blocks, fail } => {
                let mut shared = lock(&self.0);
                let id = shared.sinks;
                shared.sinks += 1;
                FileTarget::Sink(Box::new(ModelSink {
                    id,
                    blocks,
                    fail,
                    data: Vec::new(),
                    shared: self.0.clone(),
                }))
            }
        }
    }
}

/// The sink call at which a sink fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), derive(Arbitrary))]
pub enum SinkFail {
    Start,
    /// The first write with bytes in it.
    Write,
    Finish,
    Commit,
}

const SINK_FAILS: [Option<SinkFail>; 5] = [
    None,
    Some(SinkFail::Start),
    Some(SinkFail::Write),
    Some(SinkFail::Finish),
    Some(SinkFail::Commit),
];

/// Where the handler sends a received file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), derive(Arbitrary))]
pub enum Store {
    Memory,
    Discard,
    /// A `ModelSink`: its `finish` reports the length; its `commit` hands
    /// the bytes back if it `blocks`, else keeps what `finish` said.
    Sink {
        blocks: bool,
        fail: Option<SinkFail>,
    },
}

impl Store {
    /// The character a file's name starts with to tell the handler where it goes.
    fn tag(self) -> char {
        match self {
            Store::Memory => 'm',
            Store::Discard => 'd',
            Store::Sink { blocks, fail } => {
                let fail = SINK_FAILS.iter().position(|f| *f == fail).unwrap() as u8;
                char::from(b'A' + 2 * fail + u8::from(blocks))
            }
        }
    }

    fn from_name(name: &str) -> Store {
        match name.bytes().next() {
            Some(b'd') => Store::Discard,
            Some(tag @ b'A'..=b'J') => Store::Sink {
                blocks: (tag - b'A') % 2 == 1,
                fail: SINK_FAILS[usize::from((tag - b'A') / 2)],
            },
            _ => Store::Memory,
        }
    }

    /// The name of a file stored here, cut to the name length limit: `name`
    /// behind the store's tag, or as it is for memory if it does not start
    /// like another store's tag (so that names of any length, even empty,
    /// are received).
    fn name(self, name: String) -> String {
        let max = usize::from(LIMITS.max_name_len);
        if self == Store::Memory && Store::from_name(&name) == Store::Memory {
            cut(name, max)
        } else {
            format!("{}{}", self.tag(), cut(name, max - 1))
        }
    }

    /// Whether a file of `len` bytes stored here makes its frame fail.
    fn fails(self, len: usize) -> bool {
        match self {
            Store::Sink {
                fail: Some(SinkFail::Write),
                ..
            } => len > 0,
            Store::Sink { fail, .. } => fail.is_some(),
            Store::Memory | Store::Discard => false,
        }
    }

    /// The body the frame reports for `data` stored here.
    fn body(self, data: &[u8]) -> FileBody {
        match self {
            Store::Memory | Store::Sink { blocks: true, .. } => {
                FileBody::Memory(data.to_vec().into())
            }
            Store::Discard | Store::Sink { blocks: false, .. } => FileBody::Delivered {
                len: data.len() as u64,
            },
        }
    }
}

/// A sink that logs every call into the shared log and fails where told.
struct ModelSink {
    id: usize,
    blocks: bool,
    fail: Option<SinkFail>,
    data: Vec<u8>,
    shared: Arc<Mutex<Shared>>,
}

impl ModelSink {
    fn log(&self, step: Step) {
        lock(&self.shared).seen.push(Seen::Sink(self.id, step));
    }

    /// An error if this sink is to fail at `step` (logged and counted).
    fn fail_at(&self, step: SinkFail) -> Result<(), StorageError> {
        if self.fail != Some(step) {
            return Ok(());
        }
        let mut shared = lock(&self.shared);
        shared.seen.push(Seen::Sink(self.id, Step::Failed));
        shared.sink_failures += 1;
        Err(io::Error::other(format!("model sink fails at {step:?}")))
    }
}

impl FileSink for ModelSink {
    fn start(&mut self, name: &str, size: u64) -> Result<(), StorageError> {
        self.log(Step::Start(name.into(), size));
        self.fail_at(SinkFail::Start)
    }

    fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        self.log(Step::Write(data.to_vec()));
        if !data.is_empty() {
            self.fail_at(SinkFail::Write)?;
        }
        self.data.extend_from_slice(data);
        Ok(())
    }

    fn finish(&mut self) -> Result<FileBody, StorageError> {
        self.log(Step::Finish);
        self.fail_at(SinkFail::Finish)?;
        Ok(FileBody::Delivered {
            len: self.data.len() as u64,
        })
    }

    fn commit(&mut self) -> Result<Option<FileBody>, StorageError> {
        self.log(Step::Commit);
        self.fail_at(SinkFail::Commit)?;
        Ok(self
            .blocks
            .then(|| FileBody::Memory(std::mem::take(&mut self.data).into())))
    }

    fn abandon(&mut self) {
        self.log(Step::Abandon);
    }

    fn blocks(&self) -> bool {
        self.blocks
    }
}

#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(test), derive(Arbitrary))]
pub enum Kind {
    Plain,
    Ask,
    Bye,
    Ping,
}

/// A file the peer sends, and where the handler is to put it.
#[derive(Debug, Clone)]
#[cfg_attr(not(test), derive(Arbitrary))]
pub struct PeerFile {
    pub name: String,
    pub data: Vec<u8>,
    pub store: Store,
}

/// A frame the peer writes.
#[derive(Debug, Clone)]
#[cfg_attr(not(test), derive(Arbitrary))]
pub enum PeerFrame {
    /// Within the limits once cut to them: files and a message.
    Valid {
        kind: Kind,
        files: Vec<PeerFile>,
        message: Option<Vec<u8>>,
    },
    /// The status byte's top bit clear: a protocol error.
    BadStatus,
    /// A message over `max_frame_size`: a protocol error when announced.
    TooLarge,
}

/// What the session must do with a frame the peer wrote.
#[derive(Debug)]
enum Outcome {
    /// Report this frame.
    Accept(Frame),
    /// Refuse it as a protocol error.
    Refuse,
    /// A sink of it fails: never report it, end with a storage error.
    StorageFails,
}

/// A file of a peer frame that goes to a sink, as the sink must see it.
struct ExpectedSink {
    /// The peer frame it belongs to (its index among the peer's frames).
    frame: usize,
    name: String,
    data: Vec<u8>,
    fail: Option<SinkFail>,
}

impl PeerFrame {
    /// The frame's bytes, what the session must do with it, and its files
    /// going to sinks, in order; `index` is its place among the peer's frames.
    fn build(self, index: usize) -> (Vec<u8>, Outcome, Vec<ExpectedSink>) {
        match self {
            PeerFrame::Valid {
                kind,
                files,
                message,
            } => {
                let status = Status::new(match kind {
                    Kind::Plain => PLAIN,
                    Kind::Ask => ASK,
                    Kind::Bye => BYE,
                    Kind::Ping => PING,
                })
                .unwrap();
                let mut sent = FrameBuilder::new(status);
                let mut reported = FrameBuilder::new(status);
                let mut sinks = Vec::new();
                let mut fails = false;
                for file in files.into_iter().take(LIMITS.max_file_count as usize) {
                    let mut data = file.data;
                    data.truncate(MAX_DATA);
                    let name = file.store.name(file.name);
                    reported = reported.add_file(File {
                        name: name.clone(),
                        body: file.store.body(&data),
                    });
                    fails |= file.store.fails(data.len());
                    if let Store::Sink { fail, .. } = file.store {
                        sinks.push(ExpectedSink {
                            frame: index,
                            name: name.clone(),
                            data: data.clone(),
                            fail,
                        });
                    }
                    sent = sent.file(name, data);
                }
                if let Some(mut message) = message {
                    message.truncate(MAX_MESSAGE);
                    sent = sent.message(message.clone());
                    reported = reported.message(message);
                }
                let wire = sent.build().encode_to_vec().unwrap();
                let outcome = if fails {
                    Outcome::StorageFails
                } else {
                    Outcome::Accept(reported.build())
                };
                (wire, outcome, sinks)
            }
            PeerFrame::BadStatus => {
                let mut wire = Frame::message("bad").encode_to_vec().unwrap();
                wire[0] &= 0x7F;
                (wire, Outcome::Refuse, Vec::new())
            }
            PeerFrame::TooLarge => {
                let frame = Frame::message(vec![b'x'; 1025]);
                (frame.encode_to_vec().unwrap(), Outcome::Refuse, Vec::new())
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

/// How a file source misbehaves.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(test), derive(Arbitrary))]
pub enum SourceFault {
    None,
    /// It holds this many bytes more than announced: only the announced go out.
    Longer(u8),
    /// It holds this many bytes fewer than announced: a cut-short file.
    Short(u8),
    FailOpen,
    /// Reading fails once this many bytes were read.
    FailRead(u8),
    /// One read is interrupted (`ErrorKind::Interrupted`) at this offset: retried.
    Interrupted(u8),
}

/// A file a sender sends: in memory, or from a `ModelSource`.
#[derive(Debug, Clone)]
#[cfg_attr(not(test), derive(Arbitrary))]
pub struct OutFile {
    pub name: String,
    pub data: Vec<u8>,
    /// From a source with this fault, giving at most `step` bytes a read.
    pub source: Option<(SourceFault, u8)>,
}

/// A file source over bytes in memory that misbehaves as told.
#[derive(Debug)]
struct ModelSource {
    content: Arc<[u8]>,
    len: u64,
    fault: SourceFault,
    step: usize,
    /// Reads that failed or found the file cut short, shared by the model's sources.
    failures: Arc<AtomicUsize>,
}

impl ModelSource {
    /// A source announcing `data`, misbehaving as `fault` says.
    fn new(data: &[u8], fault: SourceFault, step: u8, failures: Arc<AtomicUsize>) -> ModelSource {
        let mut content = data.to_vec();
        match fault {
            SourceFault::Longer(extra) => content.resize(data.len() + usize::from(extra), b'+'),
            SourceFault::Short(missing) => {
                content.truncate(data.len().saturating_sub(usize::from(missing)))
            }
            _ => {}
        }
        ModelSource {
            content: content.into(),
            len: data.len() as u64,
            fault,
            step: usize::from(step).max(1),
            failures,
        }
    }

    /// Whether sending it whole must fail (it is cut short, or a read fails).
    fn fails(&self) -> bool {
        match self.fault {
            SourceFault::Short(_) => (self.content.len() as u64) < self.len,
            SourceFault::FailRead(at) => u64::from(at) < self.len,
            _ => false,
        }
    }
}

impl FileSource for ModelSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn open(&self) -> Result<Box<dyn Read + Send>, StorageError> {
        if let SourceFault::FailOpen = self.fault {
            return Err(io::Error::other("model source fails to open"));
        }
        Ok(Box::new(ModelReader {
            content: self.content.clone(),
            len: self.len,
            pos: 0,
            fault: self.fault,
            step: self.step,
            interrupted: false,
            failures: self.failures.clone(),
        }))
    }
}

/// One reading of a `ModelSource`.
struct ModelReader {
    content: Arc<[u8]>,
    len: u64,
    pos: usize,
    fault: SourceFault,
    step: usize,
    interrupted: bool,
    failures: Arc<AtomicUsize>,
}

impl Read for ModelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.fault {
            SourceFault::FailRead(at) if self.pos >= usize::from(at) => {
                self.failures.fetch_add(1, Ordering::SeqCst);
                return Err(io::Error::other("model source: read fails"));
            }
            SourceFault::Interrupted(at) if self.pos >= usize::from(at) && !self.interrupted => {
                self.interrupted = true;
                return Err(io::ErrorKind::Interrupted.into());
            }
            _ => {}
        }
        let mut n = buf.len().min(self.step).min(self.content.len() - self.pos);
        // A read stops at the offset of a fault, so that the next one meets it.
        if let SourceFault::FailRead(at) | SourceFault::Interrupted(at) = self.fault {
            if self.pos < usize::from(at) {
                n = n.min(usize::from(at) - self.pos);
            }
        }
        if n == 0 && !buf.is_empty() && (self.pos as u64) < self.len {
            // The end of a file cut short: the session must notice.
            self.failures.fetch_add(1, Ordering::SeqCst);
        }
        buf[..n].copy_from_slice(&self.content[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A frame handed to a sender, as given and as the peer must decode it.
#[derive(Debug)]
struct Sent {
    given: Frame,
    /// Sources replaced by the bytes they announce.
    wire: Frame,
    /// A source of it fails to open: the send hands it back.
    refused: bool,
    /// A source of it fails or is cut short: it can never be written whole.
    doomed: bool,
}

#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(test), derive(Arbitrary))]
pub enum SendHow {
    Try,
    Send,
    Feed,
}

/// One step of the run.
#[derive(Debug, Clone)]
#[cfg_attr(not(test), derive(Arbitrary))]
pub enum Op {
    PeerWrites(PeerFrame),
    /// Up to this many of the peer's bytes reach the session in one piece
    /// (as shared `Bytes` if the flag is set: `handle_bytes`).
    Deliver(u16, bool),
    /// The peer reads up to this many bytes.
    PeerReads(u16),
    /// Time passes, in milliseconds; due timers run.
    Tick(u16),
    /// A Sender queues a frame with a message of this length and these
    /// files (the files dropped if the frame would pass `MAX_QUEUED`).
    Send(u16, SendHow, Vec<OutFile>),
    Flush,
    PollQueue,
    SenderClose,
    /// The BufferedSender (made if there is none) feeds such a frame,
    /// polled once; one that waits stays pending for `BufferedPoll`.
    BufferedFeed(u16, Vec<OutFile>),
    /// The BufferedSender flushes, polled once; it may stay pending too.
    BufferedFlush,
    /// The pending feed or flush is polled again.
    BufferedPoll,
    /// The BufferedSender is dropped (a pending feed or flush is polled
    /// instead, unless `CANCEL_PENDING_BUFFERED`).
    BufferedDrop,
    /// `Sender::take_unsent`: frames come back once the connection ended.
    TakeUnsent,
    Close,
    Shutdown,
    Eof,
    IoError,
}

/// The result of a BufferedSender's feed (`Some`) or flush (`None`), with the handle.
type BufferedOutput = (BufferedSender, Option<Result<(), SendError>>);

/// The model's BufferedSender: ready, or inside a feed or flush that waits
/// for room (the frame being fed with it).
enum Buffered {
    Idle(BufferedSender),
    Waiting(Pin<Box<dyn Future<Output = BufferedOutput>>>, Option<Sent>),
}

pub struct Model {
    session: Session<ModelHandler>,
    shared: Arc<Mutex<Shared>>,
    sender: Sender,
    now: Duration,
    /// The peer's bytes not yet taken by the session.
    input: Vec<u8>,
    /// Bytes the session took, in all.
    taken: usize,
    /// Each peer frame: where its bytes end in the stream, and what the
    /// session must do with it.
    peer_frames: Vec<(usize, Outcome)>,
    /// The peer's files going to sinks, in the order they are sent.
    peer_sinks: Vec<ExpectedSink>,
    written: usize,
    peer_eof: bool,
    /// The bytes the session wrote and the peer read.
    out: Vec<u8>,
    /// Sender frames the queue accepted, in order.
    queued: Vec<Sent>,
    buffered: Option<Buffered>,
    /// BufferedSender frames accepted (fed without an error), in order.
    buffered_sent: Vec<Sent>,
    /// Frames `take_unsent` handed back so far.
    handed_back: Vec<Frame>,
    /// The largest cost of a frame offered to a sender: `F` of the bound.
    largest_send: usize,
    /// Bytes dropped BufferedSenders handed over beyond the queue's bound
    /// since the queue was last within it (each may pass it by one batch).
    dropped_excess: usize,
    /// Reads of the model's sources that failed.
    source_failures: Arc<AtomicUsize>,
    /// A sink or source failed while the session was open: it must end
    /// with `DisconnectReason::Storage`.
    expect_storage: bool,
    failed: bool,
}

impl Model {
    pub fn new(config: SessionConfig) -> Model {
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
            peer_sinks: Vec::new(),
            written: 0,
            peer_eof: false,
            out: Vec::new(),
            queued: Vec::new(),
            buffered: None,
            buffered_sent: Vec::new(),
            handed_back: Vec::new(),
            largest_send: MIN_FRAME + MAX_QUEUED,
            dropped_excess: 0,
            source_failures: Arc::new(AtomicUsize::new(0)),
            expect_storage: false,
            failed: false,
        }
    }

    pub fn apply(&mut self, op: Op) {
        match op {
            Op::PeerWrites(frame) => self.peer_writes(frame),
            Op::Deliver(len, shared) => self.deliver(len.into(), shared),
            Op::PeerReads(limit) => {
                self.read(limit.into());
            }
            Op::Tick(ms) => self.tick(ms),
            Op::Send(len, how, files) => self.send(len, how, files),
            Op::Flush => self.sender.flush(),
            Op::PollQueue => self.session.poll_queue(Waker::noop()),
            Op::SenderClose => self.sender.close(),
            Op::BufferedFeed(len, files) => self.buffered_feed(len, files),
            Op::BufferedFlush => self.buffered_flush(),
            Op::BufferedPoll => self.buffered_poll(),
            Op::BufferedDrop => self.buffered_drop(),
            Op::TakeUnsent => {
                let back = self.sender.take_unsent();
                assert!(back.is_empty() || self.sender.is_closed());
                self.handed_back.extend(back);
            }
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
                    .handle_io_error(io::ErrorKind::ConnectionReset.into());
            }
        }
        // Once the queue is back within its bound, no dropped batch is held
        // beyond it; until then a new handle's first frame waits, so at most
        // one batch (64 KiB) is.
        if self.sender.queued_bytes() <= self.session.config().send_queue_capacity {
            self.dropped_excess = 0;
        }
        assert!(
            self.dropped_excess <= 64 * 1024,
            "dropped BufferedSenders hold {} bytes past the queue's bound",
            self.dropped_excess
        );
    }

    /// The peer writes a frame: its bytes wait to be delivered.
    fn peer_writes(&mut self, frame: PeerFrame) {
        if self.peer_eof {
            return;
        }
        let (wire, outcome, sinks) = frame.build(self.peer_frames.len());
        self.peer_sinks.extend(sinks);
        self.input.extend_from_slice(&wire);
        self.written += wire.len();
        self.peer_frames.push((self.written, outcome));
    }

    /// Up to `len` of the peer's bytes reach the session; a sink failing
    /// meanwhile must start the session's close.
    fn deliver(&mut self, len: usize, shared: bool) {
        let len = len.min(self.input.len());
        if len == 0 {
            return;
        }
        let wanted = self.session.wants_read();
        let failures = lock(&self.shared).sink_failures;
        let used = if shared {
            let input = bytes::Bytes::copy_from_slice(&self.input[..len]);
            self.session.handle_bytes(&input, self.now)
        } else {
            self.session.handle_input(&self.input[..len], self.now)
        };
        assert!(used <= len);
        assert!(wanted || used == 0, "took input while not wanting it");
        self.input.drain(..used);
        self.taken += used;
        if lock(&self.shared).sink_failures > failures {
            assert!(
                !self.session.is_open(),
                "a sink failed, the session goes on"
            );
            self.expect_storage = true;
        }
    }

    /// Time passes; the due timer runs.
    fn tick(&mut self, ms: u16) {
        self.now += Duration::from_millis(ms.into());
        if self
            .session
            .poll_timeout()
            .is_some_and(|deadline| deadline <= self.now)
        {
            self.session.handle_timeout(self.now);
        }
    }

    /// A frame of `status` for a sender, numbered `n`: a message of `len`
    /// bytes and `files` (dropped if the frame would pass `MAX_QUEUED`).
    fn out_frame(&mut self, status: u8, n: usize, len: u16, files: Vec<OutFile>) -> Sent {
        let status = Status::new(status).unwrap();
        let mut message = (n as u32).to_be_bytes().to_vec();
        message.resize(usize::from(len).clamp(4, MAX_QUEUED), b'q');
        let (mut given, mut wire) = (FrameBuilder::new(status), FrameBuilder::new(status));
        let (mut refused, mut doomed) = (false, false);
        for file in files.into_iter().take(4) {
            wire = wire.file(file.name.clone(), file.data.clone());
            given = match file.source {
                None => given.file(file.name, file.data),
                Some((fault, step)) => {
                    let source =
                        ModelSource::new(&file.data, fault, step, self.source_failures.clone());
                    refused |= matches!(fault, SourceFault::FailOpen);
                    doomed |= source.fails();
                    given.add_file(File::from_source(file.name, source))
                }
            };
        }
        let mut sent = Sent {
            given: given.message(message.clone()).build(),
            wire: wire.message(message.clone()).build(),
            refused,
            doomed,
        };
        if sent.given.encoded_len() as usize > MIN_FRAME + MAX_QUEUED {
            let plain = FrameBuilder::new(status).message(message).build();
            sent = Sent {
                given: plain.clone(),
                wire: plain,
                refused: false,
                doomed: false,
            };
        }
        self.largest_send = self.largest_send.max(send_cost(&sent.given));
        sent
    }

    /// The Sender sends a frame by `try_send`, `send` or `feed`, polled once.
    fn send(&mut self, len: u16, how: SendHow, files: Vec<OutFile>) {
        let sent = self.out_frame(QUEUED, self.queued.len(), len, files);
        let frame = sent.given.clone();
        let result = match how {
            SendHow::Try => Some(self.sender.try_send(frame)),
            SendHow::Send => poll_once(self.sender.send(frame)),
            SendHow::Feed => poll_once(self.sender.feed(frame)),
        };
        match result {
            Some(Ok(())) => {
                assert!(!sent.refused, "a frame whose file fails to open was queued");
                self.queued.push(sent);
            }
            Some(Err(error)) => handed_back_on_error(error, &sent),
            // It waited for room and was dropped: nothing queued.
            None => {}
        }
    }

    /// The BufferedSender (made if need be) feeds a frame; a feed that
    /// waits stays pending.
    fn buffered_feed(&mut self, len: u16, files: Vec<OutFile>) {
        let mut handle = match self.buffered.take() {
            None => self.sender.buffered(),
            Some(Buffered::Idle(handle)) => handle,
            Some(waiting) => {
                self.buffered = Some(waiting);
                return;
            }
        };
        let sent = self.out_frame(BUFFERED, self.buffered_sent.len(), len, files);
        let frame = sent.given.clone();
        // Frames without files of an odd length go borrowed, the rest owned.
        let borrowed = frame.files.is_empty() && len % 2 == 1;
        let future = Box::pin(async move {
            let result = if borrowed {
                let message = frame.message.as_deref();
                let frame = tej_core::FrameRef::new(frame.status, &[], message);
                handle.feed_ref(frame).await
            } else {
                handle.feed(frame).await
            };
            (handle, Some(result))
        });
        self.wait_on(future, Some(sent));
    }

    /// The BufferedSender, if idle, flushes; a flush that waits stays pending.
    fn buffered_flush(&mut self) {
        match self.buffered.take() {
            Some(Buffered::Idle(mut handle)) => {
                let future = Box::pin(async move {
                    handle.flush().await;
                    (handle, None)
                });
                self.wait_on(future, None);
            }
            other => self.buffered = other,
        }
    }

    /// The pending feed or flush, if any, is polled again.
    fn buffered_poll(&mut self) {
        match self.buffered.take() {
            Some(Buffered::Waiting(future, sent)) => self.wait_on(future, sent),
            other => self.buffered = other,
        }
    }

    /// The BufferedSender is dropped: its batch is handed over, past the
    /// bound if need be. A pending feed or flush is cancelled with it only
    /// if `CANCEL_PENDING_BUFFERED`, else polled again.
    fn buffered_drop(&mut self) {
        match &self.buffered {
            Some(Buffered::Idle(handle)) => self.dropped_excess += handle.buffered_bytes(),
            Some(Buffered::Waiting(..)) if !CANCEL_PENDING_BUFFERED => {
                return self.buffered_poll();
            }
            _ => {}
        }
        self.buffered = None;
    }

    /// Polls a feed or flush once: done, the handle is idle again;
    /// otherwise it stays pending.
    fn wait_on(
        &mut self,
        mut future: Pin<Box<dyn Future<Output = BufferedOutput>>>,
        sent: Option<Sent>,
    ) {
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready((handle, result)) => {
                self.buffered = Some(Buffered::Idle(handle));
                self.fed(sent, result);
            }
            Poll::Pending => self.buffered = Some(Buffered::Waiting(future, sent)),
        }
    }

    /// A feed ended: the frame accepted, or handed back in the error.
    fn fed(&mut self, sent: Option<Sent>, result: Option<Result<(), SendError>>) {
        match (sent, result) {
            (Some(sent), Some(Ok(()))) => {
                assert!(!sent.refused, "a frame whose file fails to open was fed");
                self.buffered_sent.push(sent);
            }
            (Some(sent), Some(Err(error))) => handed_back_on_error(error, &sent),
            (None, None) => {}
            (sent, result) => panic!("a feed's result {result:?} for {sent:?}"),
        }
    }

    /// The peer reads up to `limit` bytes of what the session offers; a
    /// source failing meanwhile must end the session.
    fn read(&mut self, limit: usize) -> usize {
        let mut read = 0;
        while read < limit && self.session.wants_write() {
            let open = self.session.is_open();
            let failures = self.source_failures.load(Ordering::SeqCst);
            let mut slices: [&[u8]; 16] = [&[]; 16];
            let filled = self.session.transmit(&mut slices);
            let before = self.out.len();
            for slice in &slices[..filled] {
                let room = limit - read - (self.out.len() - before);
                self.out.extend_from_slice(&slice[..slice.len().min(room)]);
            }
            if self.source_failures.load(Ordering::SeqCst) > failures {
                assert!(
                    self.session.is_closed(),
                    "a source failed, the session goes on"
                );
                self.expect_storage |= open;
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

    pub fn check(&self) {
        let shared = lock(&self.shared);
        self.check_callbacks(&shared.seen);
        self.check_frames_in(&shared.seen);
        self.check_sinks(&shared);
        self.check_bytes_out(&shared.replies);
        self.check_reason(&shared);
        self.check_memory();
    }

    /// `connected` first and once; `disconnected` last and once, exactly when closed.
    fn check_callbacks(&self, seen: &[Seen]) {
        assert_eq!(seen.first(), Some(&Seen::Connected));
        assert_eq!(seen.iter().filter(|s| **s == Seen::Connected).count(), 1);
        let disconnects = seen.iter().filter(|s| **s == Seen::Disconnected).count();
        assert_eq!(disconnects, usize::from(self.session.is_closed()));
        if disconnects == 1 {
            assert_eq!(seen.last(), Some(&Seen::Disconnected));
        }
    }

    /// Frames reported: exactly those the session took whole, in order.
    fn check_frames_in(&self, seen: &[Seen]) {
        let mut expected = Vec::new();
        for (end, outcome) in &self.peer_frames {
            if *end > self.taken {
                break;
            }
            match outcome {
                Outcome::Accept(frame) => expected.push(frame.clone()),
                Outcome::Refuse => panic!("a frame the session must refuse was taken whole"),
                // Taken whole only when a commit failed: never reported.
                Outcome::StorageFails => break,
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
    }

    /// Each sink's calls follow its contract; a frame's sinks are committed
    /// before it is reported, and abandoned (before `disconnected`) if it never is.
    fn check_sinks(&self, shared: &Shared) {
        let mut states: Vec<SinkState> = (0..shared.sinks).map(|_| SinkState::default()).collect();
        let mut reported = 0;
        for seen in &shared.seen {
            match seen {
                Seen::Sink(id, step) => states[*id].step(step, &self.peer_sinks[*id]),
                Seen::Received(_) | Seen::Ping(_) => {
                    for (id, expected) in self.peer_sinks.iter().enumerate() {
                        if expected.frame == reported {
                            assert!(
                                id < shared.sinks,
                                "a frame reported before its sinks were made"
                            );
                            assert!(states[id].committed, "a frame reported before its commit");
                        }
                    }
                    reported += 1;
                }
                Seen::Connected | Seen::Disconnected => {}
            }
        }
        for (id, state) in states.iter().enumerate() {
            let frame_reported = self.peer_sinks[id].frame < reported;
            if frame_reported {
                assert!(!state.abandoned, "a file of a reported frame abandoned");
            } else if self.session.is_closed() {
                assert!(state.abandoned, "a file of a frame never reported kept");
            }
        }
    }

    /// The bytes out: whole frames, each kind in the order it was sent.
    fn check_bytes_out(&self, replies_sent: &[Frame]) {
        let (out, _) = decode_all(&self.out);
        let replies = of_status(&out, REPLY);
        assert_eq!(replies[..], replies_sent[..replies.len()]);
        for (status, sent) in [(QUEUED, &self.queued), (BUFFERED, &self.buffered_sent)] {
            let written = of_status(&out, status);
            assert!(
                written.len() <= sent.len(),
                "more {status} frames out than sent"
            );
            for (frame, sent) in written.iter().zip(sent.iter()) {
                assert_eq!(
                    *frame, sent.wire,
                    "status {status} frames out of order or changed"
                );
                assert!(!sent.doomed, "a file from a failing source was sent whole");
            }
        }
        let pings = of_status(&out, PING);
        assert!(pings.iter().all(|ping| *ping == Frame::ping()));
        let kinds = [REPLY, QUEUED, BUFFERED, PING];
        assert!(out.iter().all(|frame| kinds.contains(&frame.status.get())));
    }

    /// A storage error ends the session exactly when a sink or source failed.
    fn check_reason(&self, shared: &Shared) {
        let Some(reason) = self.session.disconnect_reason() else {
            return;
        };
        let storage = matches!(reason, DisconnectReason::Storage(_));
        if self.expect_storage {
            assert!(
                storage,
                "a sink or source failed; the session ended with {reason:?}"
            );
        }
        if storage {
            let failures = shared.sink_failures + self.source_failures.load(Ordering::SeqCst);
            assert!(
                failures > 0,
                "a storage error without a failing sink or source"
            );
        }
    }

    /// Memory within the documented bound (session::memory): the outbox
    /// up to the high water, or one entry taken into an empty outbox,
    /// then one callback's replies and a ping; the queue its capacity
    /// and one frame over it (a file from a source costing
    /// `SOURCE_FILE_COST`), plus what dropped BufferedSenders handed over
    /// past it; the frame being received within its limits.
    fn check_memory(&self) {
        let config = self.session.config();
        let reply = MIN_FRAME + MAX_REPLY;
        let one_sender_frame = self.largest_send;
        let bound = config
            .outbox_high_water
            .max(config.send_queue_capacity)
            .max(one_sender_frame)
            + reply
            + PING_LEN
            + config.send_queue_capacity
            + one_sender_frame
            + self.dropped_excess;
        let held = self.session.queued_bytes() as usize + self.sender.queued_bytes();
        assert!(held <= bound, "{held} bytes held, over the bound {bound}");
        let receiving_bound = LIMITS.max_frame_size as usize
            + LIMITS.max_file_count as usize * LIMITS.max_name_len as usize;
        assert!(self.session.receiving_bytes() <= receiving_bound);
    }

    /// The BufferedSender is done with: a pending feed or flush polled to
    /// its end (the connection is closed, so it ends), then the handle dropped.
    fn settle_buffered(&mut self) {
        self.buffered_poll();
        assert!(
            !matches!(self.buffered, Some(Buffered::Waiting(..))),
            "a feed or flush still waits on a closed connection"
        );
        self.buffered_drop();
    }

    /// The peer reads everything and the session closes; then every Sender
    /// and BufferedSender frame was written whole or comes back, exactly once.
    pub fn finish(mut self) {
        if let Some(Buffered::Idle(_)) = self.buffered {
            self.buffered_drop();
        }
        self.session.close();
        for _ in 0..10_000 {
            if self.session.is_closed() {
                break;
            }
            self.session.poll_queue(Waker::noop());
            self.buffered_poll();
            if self.read(usize::MAX) == 0 {
                self.now += Duration::from_secs(1);
                self.session.handle_timeout(self.now);
            }
            self.check();
        }
        assert!(self.session.is_closed(), "the session closes");
        self.settle_buffered();
        self.check();
        let (out, rest) = decode_all(&self.out);
        let mut back = std::mem::take(&mut self.handed_back);
        back.extend(self.sender.take_unsent());
        account("Sender", &out, &back, QUEUED, &self.queued);
        account("BufferedSender", &out, &back, BUFFERED, &self.buffered_sent);
        assert!(back
            .iter()
            .all(|f| [QUEUED, BUFFERED].contains(&f.status.get())));
        let shared = lock(&self.shared);
        let replies = of_status(&out, REPLY).len();
        let storage = matches!(
            self.session.disconnect_reason(),
            Some(DisconnectReason::Storage(_))
        );
        if !(self.failed || storage || self.session.queued_bytes() > 0) {
            assert_eq!(replies, shared.replies.len(), "every reply written");
            assert_eq!(rest, 0, "no frame written part-way");
        }
    }
}

/// A sink's progress through its calls, checked step by step.
#[derive(Default)]
struct SinkState {
    started: bool,
    written: Vec<u8>,
    finished: bool,
    committed: bool,
    abandoned: bool,
    failed: bool,
    last: Option<SinkFail>,
}

impl SinkState {
    /// Takes the next call logged by the sink expected to be `expected`.
    fn step(&mut self, step: &Step, expected: &ExpectedSink) {
        assert!(!self.abandoned, "a sink called after abandon: {step:?}");
        if self.failed {
            assert_eq!(*step, Step::Abandon, "a failed sink called again");
        }
        match step {
            Step::Start(name, size) => {
                assert!(!self.started, "start twice");
                assert_eq!((name, *size), (&expected.name, expected.data.len() as u64));
                self.started = true;
                self.last = Some(SinkFail::Start);
            }
            Step::Write(data) => {
                assert!(
                    self.started && !self.finished,
                    "a write outside start..finish"
                );
                self.written.extend_from_slice(data);
                assert!(
                    expected.data.starts_with(&self.written),
                    "a sink got bytes not the file's, or out of order"
                );
                self.last = Some(SinkFail::Write);
            }
            Step::Finish => {
                assert!(
                    self.started && !self.finished,
                    "finish before start, or twice"
                );
                assert_eq!(
                    self.written, expected.data,
                    "finish before the file's last byte"
                );
                self.finished = true;
                self.last = Some(SinkFail::Finish);
            }
            Step::Commit => {
                assert!(
                    self.finished && !self.committed,
                    "commit before finish, or twice"
                );
                self.committed = true;
                self.last = Some(SinkFail::Commit);
            }
            Step::Abandon => self.abandoned = true,
            Step::Failed => {
                assert_eq!(self.last, expected.fail, "a sink failed where not told to");
                self.failed = true;
            }
        }
    }
}

/// Each frame a sender accepted was written whole or handed back, in
/// order, exactly once.
fn account(who: &str, out: &[Frame], back: &[Frame], status: u8, sent: &[Sent]) {
    let written = of_status(out, status);
    let back = of_status(back, status);
    assert_eq!(
        written.len() + back.len(),
        sent.len(),
        "{who} frames: {} written, {} handed back, {} accepted",
        written.len(),
        back.len(),
        sent.len()
    );
    for (frame, sent) in written.iter().zip(sent) {
        assert_eq!(*frame, sent.wire, "{who} frames written");
    }
    for (frame, sent) in back.iter().zip(&sent[written.len()..]) {
        assert_eq!(*frame, sent.given, "{who} frames handed back");
    }
}

/// A send that failed hands back the frame it was given, and fails only as
/// it may: full or closed, or a file that does not open.
fn handed_back_on_error(error: SendError, sent: &Sent) {
    match error {
        SendError::Full(back) | SendError::Closed(back) => assert_eq!(back, sent.given),
        SendError::File(_, back) => {
            assert!(sent.refused, "a file that opens refused");
            assert_eq!(back, sent.given);
        }
        other => panic!("{other}"),
    }
}

/// What a frame costs against the send queue's bound: its bytes in
/// memory, `SOURCE_FILE_COST` for each file from a source.
fn send_cost(frame: &Frame) -> usize {
    let files: usize = frame
        .files
        .iter()
        .map(|file| {
            FILE_HEADER
                + file.name.len()
                + match &file.body {
                    FileBody::Memory(data) => data.len(),
                    _ => SOURCE_FILE_COST,
                }
        })
        .sum();
    MIN_FRAME + files + frame.message.as_ref().map_or(0, |m| m.len())
}

/// The frames of `frames` with this status, in order.
fn of_status(frames: &[Frame], status: u8) -> Vec<Frame> {
    frames
        .iter()
        .filter(|frame| frame.status.get() == status)
        .cloned()
        .collect()
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
fn poll_once(future: impl Future<Output = Result<(), SendError>>) -> Option<Result<(), SendError>> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(result) => Some(result),
        Poll::Pending => None,
    }
}
