//! The session without I/O: two sessions wired back to back, a simulated
//! clock, and handlers that record every callback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::store::MemStore;
use common::Seen;

use tej_core::{
    Connection, DecodeError, DisconnectReason, Field, File, FileTarget, Frame, FrameBuilder,
    Handler, SendError, Session, SessionConfig, Status,
};

type Log = Arc<Mutex<Vec<Seen>>>;

mod common;

/// Records callbacks; optionally answers, closes or stores files.
#[derive(Default)]
struct Recorder {
    log: Log,
    greet: Option<Frame>,
    reply: Option<Frame>,
    close_after: Option<usize>,
    store: Option<MemStore>,
    received: usize,
}

impl Recorder {
    fn new() -> (Self, Log) {
        let recorder = Recorder::default();
        let log = recorder.log.clone();
        (recorder, log)
    }
}

impl Handler for Recorder {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        self.log.lock().unwrap().push(Seen::Connected);
        if let Some(greeting) = self.greet.clone() {
            conn.send(greeting).unwrap();
        }
    }

    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        self.log.lock().unwrap().push(Seen::Received(frame));
        self.received += 1;
        if let Some(reply) = self.reply.clone() {
            conn.send(reply).unwrap();
        }
        if self.close_after == Some(self.received) {
            conn.close();
            let refused = conn.send(Frame::message("too late")).unwrap_err();
            assert!(matches!(refused, SendError::Closed(_)));
            assert_eq!(
                refused.into_frame().message.as_deref(),
                Some(&b"too late"[..])
            );
        }
    }

    fn ping_received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.log.lock().unwrap().push(Seen::Ping(frame));
    }

    fn disconnected(&mut self, reason: DisconnectReason) {
        self.log
            .lock()
            .unwrap()
            .push(Seen::Disconnected(reason_name(&reason)));
    }

    fn file_target(&mut self, _name: &str, _size: u64, _index: usize) -> FileTarget {
        match &self.store {
            Some(store) => store.target(),
            None => FileTarget::Memory,
        }
    }
}

fn reason_name(reason: &DisconnectReason) -> String {
    match reason {
        DisconnectReason::PeerClosed => "peer-closed".into(),
        DisconnectReason::Protocol(DecodeError::UnexpectedEof { field, .. }) => {
            format!("eof-in-{field}")
        }
        DisconnectReason::Protocol(error) => format!("protocol: {error}"),
        DisconnectReason::IdleTimeout => "idle-timeout".into(),
        DisconnectReason::StallTimeout => "stall".into(),
        DisconnectReason::LocalClose => "local-close".into(),
        DisconnectReason::Io(error) => format!("io: {error}"),
        DisconnectReason::Storage(error) => format!("storage: {error}"),
        DisconnectReason::Dropped => "dropped".into(),
        other => format!("{other}"),
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A started session of a new [`Recorder`] under `config`, and its log.
fn recorded(config: SessionConfig) -> (Session<Recorder>, Log) {
    let (handler, log) = Recorder::new();
    (started(handler, config), log)
}

/// A session of `handler` under `config`, started at time zero.
fn started<H: Handler>(handler: H, config: SessionConfig) -> Session<H> {
    let mut session = Session::new(handler, config);
    session.start(secs(0));
    session
}

/// Moves every byte `from` wants to write into `to`, `chunk` bytes per write.
fn pump<A: Handler, B: Handler>(
    from: &mut Session<A>,
    to: &mut Session<B>,
    chunk: usize,
    now: Duration,
) -> usize {
    let mut moved = 0;
    while from.wants_write() && to.wants_read() {
        let mut slices: [&[u8]; 16] = [&[]; 16];
        let filled = from.transmit(&mut slices);
        let mut bytes = Vec::new();
        for slice in &slices[..filled] {
            bytes.extend_from_slice(slice);
        }
        bytes.truncate(chunk);
        if bytes.is_empty() {
            break;
        }
        let used = to.handle_input(&bytes, now);
        from.advance(used);
        moved += used;
        if used < bytes.len() {
            break;
        }
    }
    moved
}

fn exchange<A: Handler, B: Handler>(
    a: &mut Session<A>,
    b: &mut Session<B>,
    chunk: usize,
    now: Duration,
) {
    while pump(a, b, chunk, now) + pump(b, a, chunk, now) > 0 {}
}

/// Hands all of `input` to `session` as a driver would: offered again
/// while the session takes some (it stops after each file header that
/// chose a sink that blocks).
fn take_all<H: Handler>(session: &mut Session<H>, mut input: &[u8], now: Duration) {
    while !input.is_empty() {
        let used = session.handle_input(input, now);
        if used == 0 {
            break;
        }
        input = &input[used..];
    }
}

fn seen(log: &Log) -> Vec<Seen> {
    log.lock().unwrap().clone()
}

/// The reason `disconnected` was called with, if it was the last callback.
fn end_reason(log: &Log) -> Option<String> {
    match seen(log).pop() {
        Some(Seen::Disconnected(reason)) => Some(reason),
        _ => None,
    }
}

/// The bytes of a frame of the default status with these files (name,
/// data) and no message.
fn files_wire(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut frame = FrameBuilder::new(Status::DEFAULT);
    for (name, data) in files {
        frame = frame.file(*name, data.clone());
    }
    frame.build().encode_to_vec().unwrap()
}

/// What a [`Recorder`] logs for a connection on which `frames` arrived, in order.
fn received(frames: impl IntoIterator<Item = Frame>) -> Vec<Seen> {
    let mut log = vec![Seen::Connected];
    log.extend(frames.into_iter().map(Seen::Received));
    log
}

/// What a [`Recorder`] logs for a connection on which `frames` arrived and
/// that then ended with `reason` (as [`reason_name`] names it).
fn ended_after(frames: impl IntoIterator<Item = Frame>, reason: &str) -> Vec<Seen> {
    let mut log = received(frames);
    log.push(Seen::Disconnected(reason.into()));
    log
}

fn sample_frame(i: u8) -> Frame {
    FrameBuilder::new(Status::new(10 + i % 100).unwrap())
        .file(format!("file-{i}.bin"), vec![i; 100 + usize::from(i) * 50])
        .file("empty", Vec::new())
        .message(format!("message {i}"))
        .build()
}

#[test]
fn callbacks_come_in_order_and_disconnected_once() {
    let (mut client_handler, client_log) = Recorder::new();
    client_handler.greet = Some(Frame::message("Hello"));
    let (mut server, server_log) = recorded(SessionConfig::default());
    let mut client = started(client_handler, SessionConfig::default());
    for i in 0..5 {
        client.sender().try_send(sample_frame(i)).unwrap();
    }
    client.poll_queue(&noop_waker());
    for chunk in [1, 7, 4096] {
        exchange(&mut client, &mut server, chunk, secs(1));
    }
    server.handle_eof(secs(2));
    assert!(server.is_closed());

    let frames = std::iter::once(Frame::message("Hello")).chain((0..5).map(sample_frame));
    let expected = ended_after(frames, "peer-closed");
    assert_eq!(seen(&server_log), expected);
    assert_eq!(seen(&client_log), received([]));

    // Nothing after the end: more input, timeouts and closes are ignored.
    assert_eq!(
        server.handle_input(&Frame::ping().encode_to_vec().unwrap(), secs(3)),
        0
    );
    server.handle_timeout(secs(100));
    server.close();
    drop(server);
    assert_eq!(seen(&server_log).len(), expected.len());
}

#[test]
fn partial_writes_keep_every_byte_in_order() {
    let (mut server, server_log) = recorded(SessionConfig::default());
    let (mut client, _) = recorded(SessionConfig::default());
    let big = FrameBuilder::new(Status::DEFAULT)
        .file(
            "big.bin",
            (0..300_000u32)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>(),
        )
        .message("after the big file")
        .build();
    // The big frame fills the default queue on its own: the session takes
    // it before the next one is queued.
    client.sender().try_send(big.clone()).unwrap();
    client.poll_queue(&noop_waker());
    client.sender().try_send(sample_frame(9)).unwrap();
    client.poll_queue(&noop_waker());
    // Odd write sizes split headers, payloads and coalesced frames anywhere.
    exchange(&mut client, &mut server, 997, secs(1));
    assert_eq!(seen(&server_log), received([big, sample_frame(9)]));
}

#[test]
fn ping_goes_to_ping_received_and_is_sent_periodically() {
    let (mut server, server_log) = recorded(SessionConfig::default());
    let config = SessionConfig::default().ping_interval(Some(secs(10)));
    let (mut client, _) = recorded(config);
    assert_eq!(client.poll_timeout(), Some(secs(10)));
    client.handle_timeout(secs(9));
    assert!(!client.wants_write(), "no ping before the interval");
    client.handle_timeout(secs(10));
    assert_eq!(client.poll_timeout(), Some(secs(20)));
    exchange(&mut client, &mut server, 4096, secs(10));
    client.handle_timeout(secs(20));
    exchange(&mut client, &mut server, 4096, secs(20));
    assert_eq!(
        seen(&server_log),
        vec![
            Seen::Connected,
            Seen::Ping(Frame::ping()),
            Seen::Ping(Frame::ping())
        ]
    );
}

#[test]
fn idle_timeout_closes_when_nothing_arrives() {
    let (mut client_handler, _) = Recorder::new();
    client_handler.greet = Some(Frame::message("hi"));
    let config = SessionConfig::default().idle_timeout(Some(secs(30)));
    let (mut server, server_log) = recorded(config);
    let mut client = started(client_handler, SessionConfig::default());
    assert_eq!(server.poll_timeout(), Some(secs(30)));
    exchange(&mut client, &mut server, 4096, secs(20));
    assert_eq!(
        server.poll_timeout(),
        Some(secs(50)),
        "input moves the deadline"
    );
    server.handle_timeout(secs(49));
    assert!(!server.is_closed());
    server.handle_timeout(secs(50));
    assert!(server.is_closed());
    assert_eq!(server.poll_timeout(), None);
    assert_eq!(end_reason(&server_log).as_deref(), Some("idle-timeout"));
}

#[test]
fn stall_timeout_counts_bytes_moving_either_way() {
    let config = SessionConfig::default().stall_timeout(Some(secs(10)));
    let (mut client, log) = recorded(config);
    assert_eq!(client.poll_timeout(), Some(secs(10)));
    // An upload the peer keeps taking: every write moves the deadline,
    // though nothing arrives.
    let big = FrameBuilder::new(Status::DEFAULT)
        .file("big.bin", vec![7u8; 100_000])
        .build();
    client.sender().try_send(big).unwrap();
    client.poll_queue(&noop_waker());
    for second in [8, 16, 24] {
        client.handle_timeout(secs(second));
        assert!(client.is_open(), "still sending at {second} s");
        let mut slices: [&[u8]; 4] = [&[]; 4];
        let filled = client.transmit(&mut slices);
        assert!(filled > 0);
        let n = slices[0].len().min(1000);
        client.advance_at(n, secs(second));
        assert_eq!(client.poll_timeout(), Some(secs(second + 10)));
    }
    // An empty write moves nothing.
    client.advance_at(0, secs(30));
    assert_eq!(client.poll_timeout(), Some(secs(34)));
    // The peer stops taking bytes (a silent path): nothing moves.
    client.handle_timeout(secs(33));
    assert!(client.is_open());
    client.handle_timeout(secs(34));
    assert!(!client.is_open());
    // Ended at once: a flush for `close_linger` could write nothing either.
    assert!(client.is_closed(), "a stall ends without the linger");
    assert_eq!(end_reason(&log).as_deref(), Some("stall"));
    // Input moves it too: a fresh session that hears from its peer.
    let (handler, _) = Recorder::new();
    let mut quiet = started(
        handler,
        SessionConfig::default().stall_timeout(Some(secs(10))),
    );
    quiet.handle_input(&Frame::ping().encode_to_vec().unwrap(), secs(9));
    assert_eq!(quiet.poll_timeout(), Some(secs(19)));
    drop(client);
    assert_eq!(end_reason(&log).as_deref(), Some("stall"));
}

#[test]
fn protocol_error_closes_with_its_typed_cause() {
    let (mut server, server_log) = recorded(SessionConfig::default());
    let mut bad = Frame::message("fine").encode_to_vec().unwrap();
    bad.extend_from_slice(&[0x01, 0x01, 0, 0]);
    let used = server.handle_input(&bad, secs(1));
    assert_eq!(used, bad.len() - 4, "nothing of the bad frame is used");
    assert!(server.is_closed());
    let log = seen(&server_log);
    assert_eq!(log[1], Seen::Received(Frame::message("fine")));
    assert_eq!(
        log[2],
        Seen::Disconnected(
            "protocol: status bit is 0 in first byte 0x01 of a frame at offset 22".into()
        )
    );
}

#[test]
fn peer_closing_mid_frame_is_reported_with_the_field() {
    let (mut server, server_log) = recorded(SessionConfig::default());
    let wire = sample_frame(3).encode_to_vec().unwrap();
    server.handle_input(&wire[..40], secs(1));
    server.handle_eof(secs(1));
    assert_eq!(seen(&server_log), ended_after([], "eof-in-file data"));
}

#[test]
fn handler_close_flushes_its_reply_first() {
    let (mut server_handler, server_log) = Recorder::new();
    server_handler.reply = Some(Frame::message("bye"));
    server_handler.close_after = Some(1);
    let mut server = started(server_handler, SessionConfig::default());
    let (mut client, client_log) = recorded(SessionConfig::default());
    let wire: Vec<u8> = [sample_frame(1), sample_frame(2)]
        .iter()
        .flat_map(|frame| frame.encode_to_vec().unwrap())
        .collect();
    let used = server.handle_input(&wire, secs(1));
    assert_eq!(
        used,
        sample_frame(1).encoded_len() as usize,
        "nothing read after the close"
    );
    assert!(server.is_closing() && !server.wants_read());
    exchange(&mut server, &mut client, 4096, secs(1));
    assert!(server.is_closed(), "closed once the reply is written");
    assert_eq!(seen(&client_log), received([Frame::message("bye")]));
    assert_eq!(
        seen(&server_log),
        ended_after([sample_frame(1)], "local-close")
    );
}

#[test]
fn close_gives_up_flushing_after_the_linger() {
    let (mut handler, log) = Recorder::new();
    handler.greet = Some(Frame::message("never read"));
    let config = SessionConfig::default().close_linger(secs(5));
    let mut session = started(handler, config);
    session.close();
    assert!(session.is_closing() && session.wants_write());
    assert_eq!(session.poll_timeout(), Some(secs(5)));
    session.handle_timeout(secs(5));
    assert!(session.is_closed());
    assert_eq!(end_reason(&log).as_deref(), Some("local-close"));
}

#[test]
fn graceful_shutdown_finishes_the_frame_in_progress() {
    let (mut server, server_log) = recorded(SessionConfig::default());
    let wire = sample_frame(4).encode_to_vec().unwrap();
    server.handle_input(&wire[..20], secs(1));
    server.shutdown();
    assert!(!server.is_closed() && server.wants_read());
    server.handle_input(&wire[20..], secs(1));
    assert!(server.is_closed());
    assert_eq!(
        seen(&server_log),
        ended_after([sample_frame(4)], "local-close")
    );

    // Between frames, shutdown closes at once.
    let (mut idle, idle_log) = recorded(SessionConfig::default());
    idle.shutdown();
    assert!(idle.is_closed());
    assert_eq!(end_reason(&idle_log).as_deref(), Some("local-close"));
}

#[test]
fn sender_is_bounded_and_hands_frames_back() {
    let config = SessionConfig::default().send_queue_capacity(1000);
    let (mut session, _) = recorded(config);
    let sender = session.sender();
    let big = Frame::message(vec![7u8; 900]);
    sender.try_send(big.clone()).unwrap();
    match sender.try_send(big.clone()) {
        Err(SendError::Full(frame)) => assert_eq!(frame, big),
        other => panic!("expected Full, got {other:?}"),
    }
    // One frame is always accepted into an empty queue, whatever its size.
    session.poll_queue(&noop_waker());
    assert_eq!(sender.queued_bytes(), 0);
    sender.try_send(Frame::message(vec![1u8; 5000])).unwrap();

    // A thread blocked on a full queue is released when the session takes frames.
    let blocked = std::thread::spawn({
        let sender = sender.clone();
        move || sender.send_blocking(Frame::message("from a thread"))
    });
    std::thread::sleep(Duration::from_millis(50));
    session.poll_queue(&noop_waker());
    blocked.join().unwrap().unwrap();

    sender.try_send(Frame::message("left behind")).unwrap();
    session.handle_io_error(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
    assert!(sender.is_closed());
    assert!(matches!(
        sender.try_send(Frame::ping()),
        Err(SendError::Closed(_))
    ));
    // Nothing was written: the frames the session took and those still
    // queued all come back, in the order they were sent.
    assert_eq!(
        sender.take_unsent(),
        vec![
            big,
            Frame::message(vec![1u8; 5000]),
            Frame::message("from a thread"),
            Frame::message("left behind"),
        ],
        "frames that never reached the peer are handed back, in order"
    );
    assert!(sender.take_unsent().is_empty());
}

#[test]
fn sender_close_flushes_queued_frames_then_closes() {
    let (mut server, server_log) = recorded(SessionConfig::default());
    let (mut client, client_log) = recorded(SessionConfig::default());
    let sender = client.sender();
    sender.try_send(Frame::message("one")).unwrap();
    sender.try_send(Frame::message("two")).unwrap();
    sender.close();
    client.poll_queue(&noop_waker());
    exchange(&mut client, &mut server, 4096, secs(1));
    assert!(client.is_closed());
    assert_eq!(
        seen(&server_log),
        received([Frame::message("one"), Frame::message("two")])
    );
    assert_eq!(end_reason(&client_log).as_deref(), Some("local-close"));
}

#[test]
fn reading_stops_while_too_much_waits_to_be_written() {
    let (mut handler, _) = Recorder::new();
    handler.reply = Some(Frame::message(vec![0u8; 10_000]));
    let config = SessionConfig::default().outbox_high_water(50_000);
    let mut session = started(handler, config);
    let ping = Frame::message("x").encode_to_vec().unwrap();
    let mut frames = 0;
    while session.wants_read() {
        assert_eq!(session.handle_input(&ping, secs(1)), ping.len());
        frames += 1;
        assert!(frames < 100, "backpressure never engaged");
    }
    assert!(session.queued_bytes() >= 50_000);
    let mut slices: [&[u8]; 64] = [&[]; 64];
    let filled = session.transmit(&mut slices);
    let offered: usize = slices[..filled].iter().map(|slice| slice.len()).sum();
    session.advance(offered);
    assert!(session.wants_read(), "reading resumes once the peer drains");
}

#[test]
fn dropping_an_open_session_reports_dropped() {
    let (handler, log) = Recorder::new();
    let session = started(handler, SessionConfig::default());
    drop(session);
    assert_eq!(seen(&log), ended_after([], "dropped"));

    let (never_started, log) = Recorder::new();
    drop(Session::new(never_started, SessionConfig::default()));
    assert!(seen(&log).is_empty(), "no disconnected without connected");
}

#[test]
#[cfg_attr(
    miri,
    ignore = "a 1 MB file through two sessions: minutes interpreted; does_file_io_while_... runs the same source and sink paths"
)]
fn files_stream_from_a_source_and_into_a_sink() {
    let content: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let outbox = MemStore::default();
    outbox.put("source.bin", content.clone());
    let inbox = MemStore::default();

    let (mut server_handler, server_log) = Recorder::new();
    server_handler.store = Some(inbox.clone());
    let mut server = started(server_handler, SessionConfig::default());
    let (mut client, _) = recorded(SessionConfig::default());
    let frame = FrameBuilder::new(Status::DEFAULT)
        .add_file(outbox.file("../escape.bin", "source.bin"))
        .add_file(outbox.file("../escape.bin", "source.bin"))
        .message("two copies")
        .build();
    client.sender().try_send(frame).unwrap();
    client.poll_queue(&noop_waker());
    exchange(&mut client, &mut server, 65_536, secs(1));

    let log = seen(&server_log);
    let Seen::Received(received) = &log[1] else {
        panic!("expected a frame, got {log:?}");
    };
    assert_eq!(received.message.as_deref(), Some(&b"two copies"[..]));
    assert_eq!(
        received.files[0].name, "../escape.bin",
        "the name is reported as sent"
    );
    let paths: Vec<_> = received
        .files
        .iter()
        .map(|file| file.path().unwrap().to_owned())
        .collect();
    assert_ne!(paths[0], paths[1], "each file has its own sink");
    for path in &paths {
        assert_eq!(inbox.read(path).unwrap(), content);
    }
}

#[test]
fn a_file_cut_short_is_removed_not_reported() {
    let store = MemStore::default();
    let (mut handler, log) = Recorder::new();
    handler.store = Some(store.clone());
    let mut session = started(handler, SessionConfig::default());
    let wire = files_wire(&[
        ("done.bin", vec![1u8; 1000]),
        ("cut.bin", vec![2u8; 100_000]),
    ]);
    take_all(&mut session, &wire[..50_000], secs(1));
    assert_eq!(store.count(), 2, "both files being written");
    session.handle_eof(secs(2));
    assert_eq!(seen(&log), ended_after([], "eof-in-file data"));
    assert_eq!(
        store.count(),
        0,
        "no partial file and no file of an unfinished frame is left"
    );
}

/// A sink that logs each call the session makes on it; its commit
/// reports the file as delivered with a marker length.
struct StepSink {
    name: String,
    steps: Arc<Mutex<Vec<String>>>,
}

impl StepSink {
    fn log(&self, step: &str) {
        self.steps
            .lock()
            .unwrap()
            .push(format!("{step} {}", self.name));
    }
}

impl tej_core::storage::FileSink for StepSink {
    fn start(&mut self, name: &str, _size: u64) -> Result<(), tej_core::storage::StorageError> {
        self.name = name.into();
        self.log("start");
        Ok(())
    }

    fn write(&mut self, _data: &[u8]) -> Result<(), tej_core::storage::StorageError> {
        Ok(())
    }

    fn finish(&mut self) -> Result<tej_core::FileBody, tej_core::storage::StorageError> {
        self.log("finish");
        Ok(tej_core::FileBody::Delivered { len: 1 })
    }

    fn commit(&mut self) -> Result<Option<tej_core::FileBody>, tej_core::storage::StorageError> {
        self.log("commit");
        Ok(Some(tej_core::FileBody::Delivered { len: 4242 }))
    }

    fn abandon(&mut self) {
        self.log("abandon");
    }
}

/// Logs the steps of its files' sinks and each frame it receives.
struct Stepper(Arc<Mutex<Vec<String>>>);

impl Handler for Stepper {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        let lens: Vec<String> = frame
            .files
            .iter()
            .map(|file| file.len().to_string())
            .collect();
        self.0
            .lock()
            .unwrap()
            .push(format!("received [{}]", lens.join(", ")));
    }

    fn file_target(&mut self, _name: &str, _size: u64, _index: usize) -> FileTarget {
        FileTarget::Sink(Box::new(StepSink {
            name: String::new(),
            steps: self.0.clone(),
        }))
    }
}

#[test]
fn a_frames_files_are_committed_only_once_it_is_whole_and_before_it_is_reported() {
    let steps = Arc::new(Mutex::new(Vec::new()));
    let mut session = started(Stepper(steps.clone()), SessionConfig::default());
    let frame = |cut: &str| {
        FrameBuilder::new(Status::DEFAULT)
            .file("a", vec![1u8; 1000])
            .file(cut, vec![2u8; 1000])
            .message("m")
            .build()
            .encode_to_vec()
            .unwrap()
    };
    let whole = frame("b");
    // Both files finished, the message not yet there: nothing committed.
    take_all(&mut session, &whole[..whole.len() - 2], secs(1));
    assert_eq!(
        *steps.lock().unwrap(),
        ["start a", "finish a", "start b", "finish b"]
    );
    take_all(&mut session, &whole[whole.len() - 2..], secs(1));
    assert_eq!(
        steps.lock().unwrap()[4..],
        ["commit a", "commit b", "received [4242, 4242]"],
        "committed in order, and the frame reports the committed bodies"
    );
    // A frame cut after its files: abandoned, never committed.
    steps.lock().unwrap().clear();
    let cut = frame("c");
    take_all(&mut session, &cut[..cut.len() - 2], secs(2));
    session.handle_eof(secs(3));
    assert_eq!(
        *steps.lock().unwrap(),
        [
            "start a",
            "finish a",
            "start c",
            "finish c",
            "abandon a",
            "abandon c"
        ]
    );
}

#[test]
fn a_file_that_shrank_before_sending_ends_the_connection() {
    let store = MemStore::default();
    store.put("shrinks.bin", vec![5u8; 10_000]);
    let file = store.file("shrinks.bin", "shrinks.bin");
    store.put("shrinks.bin", vec![5u8; 10]);
    let (mut session, log) = recorded(SessionConfig::default());
    session
        .sender()
        .try_send(FrameBuilder::new(Status::DEFAULT).add_file(file).build())
        .unwrap();
    session.poll_queue(&noop_waker());
    let mut slices: [&[u8]; 8] = [&[]; 8];
    let filled = session.transmit(&mut slices);
    assert_eq!(filled, 0);
    assert!(session.is_closed());
    match seen(&log).last() {
        Some(Seen::Disconnected(reason)) => assert!(reason.starts_with("storage:"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

fn noop_waker() -> std::task::Waker {
    std::task::Waker::noop().clone()
}

#[test]
fn frame_sent_on_connect_is_rejected_when_invalid_and_returned() {
    let session = started(Recorder::default(), SessionConfig::default());
    let long_name = "n".repeat(70_000);
    let frame = FrameBuilder::new(Status::DEFAULT)
        .file(long_name.clone(), vec![1])
        .build();
    match session.sender().try_send(frame) {
        Err(SendError::Invalid(_, frame)) => assert_eq!(frame.files[0].name, long_name),
        other => panic!("{other:?}"),
    }
    let _ = Field::Status;
}

#[test]
#[cfg_attr(
    miri,
    ignore = "20,000 frames across two threads against a 30 s deadline: too slow interpreted; tests/loom.rs checks the blocking path"
)]
fn blocked_senders_are_released_whenever_the_session_takes_frames() {
    const FRAMES: usize = 20_000;
    // A queue of a few frames, so the sending thread blocks again and again.
    let config = SessionConfig::default()
        .send_queue_capacity(1024)
        .outbox_high_water(4096);
    let (mut server, server_log) = recorded(SessionConfig::default());
    let (mut client, _) = recorded(config);
    let sender = client.sender();
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for i in 0..FRAMES {
            sender
                .send_blocking(Frame::message(format!("{i:08}")))
                .unwrap();
        }
        done_tx.send(()).unwrap();
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut finished = false;
    while !finished || client.wants_write() {
        assert!(
            std::time::Instant::now() < deadline,
            "the sending thread stayed blocked"
        );
        client.poll_queue(&noop_waker());
        exchange(&mut client, &mut server, 1 << 16, secs(1));
        finished = finished || done.try_recv().is_ok();
        std::thread::yield_now();
    }
    let log = seen(&server_log);
    assert_eq!(log.len(), 1 + FRAMES);
    for (i, seen) in log[1..].iter().enumerate() {
        assert_eq!(seen, &Seen::Received(Frame::message(format!("{i:08}"))));
    }
}

/// The limits' policy: `max_file_size`/`max_frame_size` bound what is held
/// in memory; files the handler sends elsewhere are bounded only by the
/// stored limits, which are off by default.
#[test]
fn size_limits_bound_memory_and_stored_files_only_when_asked() {
    let limits = tej_core::Limits::DEFAULT
        .max_file_size(1000)
        .max_frame_size(1500);
    let big = FrameBuilder::new(Status::DEFAULT)
        .file("a.bin", vec![1u8; 1200])
        .file("b.bin", vec![2u8; 900])
        .message("m")
        .build();
    let wire = big.encode_to_vec().unwrap();

    // In memory: the first file is over max_file_size.
    let (mut session, log) = recorded(SessionConfig::default().limits(limits));
    session.handle_input(&wire, secs(1));
    assert!(session.is_closed());
    assert_eq!(
        seen(&log)[1],
        Seen::Disconnected(
            "protocol: file size 1200 exceeds the limit of 1000 at offset 17".into()
        )
    );

    // Stored: the same frame passes whole, bytes and all.
    let store = MemStore::default();
    let (mut handler, log) = Recorder::new();
    handler.store = Some(store.clone());
    let mut session = started(handler, SessionConfig::default().limits(limits));
    take_all(&mut session, &wire, secs(1));
    assert!(session.is_open());
    let Seen::Received(frame) = &seen(&log)[1] else {
        panic!("no frame: {:?}", seen(&log));
    };
    let sizes: Vec<u64> = frame.files.iter().map(File::len).collect();
    assert_eq!(sizes, [1200, 900]);
    assert_eq!(
        store.read(frame.files[0].path().unwrap()).unwrap(),
        vec![1u8; 1200]
    );

    // Stored under an explicit stored bound: the frame's total is refused.
    let (mut handler, log) = Recorder::new();
    handler.store = Some(store.clone());
    let stored = limits.max_stored_frame_size(2000);
    let mut session = started(handler, SessionConfig::default().limits(stored));
    take_all(&mut session, &wire, secs(1));
    assert_eq!(
        seen(&log)[1],
        Seen::Disconnected(
            "protocol: stored frame size 2100 exceeds the limit of 2000 at offset 1232".into()
        )
    );
    // The file of the refused frame was removed with it.
    assert_eq!(store.count(), 2, "only the passed frame's files");

    // In memory, two files within max_file_size but over max_frame_size together.
    let pair = files_wire(&[("c.bin", vec![3u8; 800]), ("d.bin", vec![4u8; 800])]);
    let (mut session, log) = recorded(SessionConfig::default().limits(limits));
    session.handle_input(&pair, secs(1));
    assert_eq!(
        seen(&log)[1],
        Seen::Disconnected(
            "protocol: frame size in memory 1600 exceeds the limit of 1500 at offset 832".into()
        )
    );
}

#[test]
fn disconnect_reason_is_an_error_that_crosses_threads() {
    fn is_error<E: std::error::Error + Send + Sync + 'static>(_: &E) {}
    let io = DisconnectReason::Io(Arc::new(std::io::Error::other("reset")));
    is_error(&io);
    let source = std::error::Error::source(&io).expect("the I/O error is its source");
    assert_eq!(source.to_string(), "reset");
    assert!(!io.is_graceful());
    assert!(DisconnectReason::PeerClosed.is_graceful());
    assert!(DisconnectReason::LocalClose.is_graceful());
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(DisconnectReason::IdleTimeout);
    assert_eq!(boxed.to_string(), "idle timeout");
}

#[test]
fn send_tracked_reports_bytes_as_they_are_written_and_the_end() {
    let (mut session, _) = recorded(SessionConfig::default());
    let sender = session.sender();
    // A small frame first, untracked: tracking counts from its own start.
    sender.send_blocking(Frame::message("before")).unwrap();
    let frame = FrameBuilder::new(Status::DEFAULT)
        .file("a.bin", vec![1u8; 10_000])
        .file("b.bin", vec![2u8; 5_000])
        .message("m")
        .build();
    let total = frame.encoded_len();
    let progress = sender.send_tracked_blocking(frame.clone()).unwrap();
    assert_eq!(progress.total(), total);
    assert_eq!(progress.bytes_written(), 0);
    assert_eq!(progress.outcome(), None);
    assert_eq!(progress.file_written(0), Some((0, 10_000)));
    assert_eq!(progress.file_written(2), None);
    session.poll_queue(&noop_waker());

    // Write in pieces of 4,000 bytes; the untracked frame goes first.
    let before = Frame::message("before").encoded_len();
    let mut written = 0u64;
    let mut seen_partial = false;
    while session.wants_write() {
        let mut slices: [&[u8]; 16] = [&[]; 16];
        let filled = session.transmit(&mut slices);
        let available: usize = slices[..filled].iter().map(|s| s.len()).sum();
        let step = available.min(4000);
        session.advance(step);
        written += step as u64;
        let expected = written.saturating_sub(before).min(total);
        assert_eq!(progress.bytes_written(), expected);
        if expected > 0 && expected < total {
            seen_partial = true;
            assert_eq!(progress.outcome(), None);
        }
    }
    assert!(seen_partial);
    assert_eq!(progress.outcome(), Some(Ok(())));
    assert_eq!(progress.file_written(0), Some((10_000, 10_000)));
    assert_eq!(progress.file_written(1), Some((5_000, 5_000)));
    assert_eq!(progress.wait_blocking(), Ok(()));

    // A tracked frame cut by a failed connection reports how far it got,
    // and the frame itself comes back from take_unsent.
    let progress = sender.send_tracked_blocking(frame.clone()).unwrap();
    let waiter = std::thread::spawn({
        let progress = progress.clone();
        move || progress.wait_blocking()
    });
    session.poll_queue(&noop_waker());
    let mut slices: [&[u8]; 16] = [&[]; 16];
    session.transmit(&mut slices);
    session.advance(100);
    session.handle_io_error(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
    let not_written = waiter.join().unwrap().unwrap_err();
    assert_eq!((not_written.written, not_written.total), (100, total));
    assert_eq!(sender.take_unsent(), vec![frame.clone()]);

    // And on a closed connection, send_tracked hands the frame back at once.
    match sender.send_tracked_blocking(frame.clone()) {
        Err(SendError::Closed(back)) => assert_eq!(back, frame),
        other => panic!("expected Closed, got {other:?}"),
    }
}

/// The (peer, proxy) pairs `connected` saw.
type PeerLog = Arc<Mutex<Vec<(Option<std::net::SocketAddr>, Option<std::net::SocketAddr>)>>>;

struct PeerProbe(PeerLog);

impl Handler for PeerProbe {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        self.0
            .lock()
            .unwrap()
            .push((conn.peer_addr(), conn.proxy_addr()));
    }
}

#[test]
fn a_proxied_peer_is_reported_with_its_proxy() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let client: std::net::SocketAddr = "203.0.113.7:51000".parse().unwrap();
    let balancer: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let mut direct =
        Session::new(PeerProbe(seen.clone()), SessionConfig::default()).with_peer(balancer);
    direct.start(secs(0));
    let mut proxied = Session::new(PeerProbe(seen.clone()), SessionConfig::default())
        .with_proxied_peer(client, balancer);
    proxied.start(secs(0));
    assert_eq!(
        *seen.lock().unwrap(),
        [(Some(balancer), None), (Some(client), Some(balancer))]
    );
}

#[test]
fn the_disconnect_reason_is_kept_once_closed() {
    let (mut session, _) = recorded(SessionConfig::default());
    assert!(session.disconnect_reason().is_none());
    session.handle_eof(secs(1));
    assert!(matches!(
        session.disconnect_reason(),
        Some(DisconnectReason::PeerClosed)
    ));
}

#[test]
fn a_closing_session_keeps_flushing_while_bytes_go_out() {
    let (mut handler, log) = Recorder::new();
    handler.greet = Some(Frame::message(vec![9u8; 1 << 20]));
    let config = SessionConfig::default().close_linger(secs(5));
    let mut session = started(handler, config);
    session.close();
    // 64 KiB every 3 s: slow, but never 5 s without a byte.
    let mut now = secs(0);
    for _ in 0..10 {
        now += secs(3);
        session.handle_timeout(now);
        assert!(
            session.is_closing() && !session.is_closed(),
            "cut at {now:?}"
        );
        let mut slices: [&[u8]; 4] = [&[]; 4];
        session.transmit(&mut slices);
        session.advance_at(64 * 1024, now);
        assert_eq!(session.poll_timeout(), Some(now + secs(5)));
    }
    // Then the peer stops reading: given up 5 s after the last byte.
    session.handle_timeout(now + secs(5));
    assert!(session.is_closed());
    assert_eq!(end_reason(&log).as_deref(), Some("local-close"));
}

#[test]
fn does_file_io_while_a_body_goes_to_a_sink_or_a_file_is_sent_from_a_source() {
    let store = MemStore::default();
    let wire = files_wire(&[("x.bin", vec![1u8; 100_000])]);
    // In memory: no file I/O.
    let (mut session, _) = recorded(SessionConfig::default());
    session.handle_input(&wire[..50_000], secs(1));
    assert!(!session.does_file_io());
    // Into a sink: file I/O until the body ends.
    let (mut handler, _) = Recorder::new();
    handler.store = Some(store.clone());
    let mut session = started(handler, SessionConfig::default());
    // The session stops right after the header, before the sink's first
    // step, saying so: a driver moves the next call off its async threads.
    let header = session.handle_input(&wire[..50_000], secs(1));
    assert!(header < 50_000, "took {header} bytes");
    assert!(session.does_file_io());
    take_all(&mut session, &wire[header..50_000], secs(1));
    assert!(session.does_file_io());
    take_all(&mut session, &wire[50_000..], secs(1));
    assert!(!session.does_file_io());
    // Sending a file from a source: file I/O until it is written.
    store.put("out.bin", vec![2u8; 10_000]);
    let (mut session, _) = recorded(SessionConfig::default());
    session
        .sender()
        .try_send(
            FrameBuilder::new(Status::DEFAULT)
                .add_file(store.file("out.bin", "out.bin"))
                .build(),
        )
        .unwrap();
    session.poll_queue(&noop_waker());
    assert!(session.does_file_io());
    while session.wants_write() {
        let mut slices: [&[u8]; 8] = [&[]; 8];
        let filled = session.transmit(&mut slices);
        let len: usize = slices[..filled].iter().map(|s| s.len()).sum();
        session.advance(len);
    }
    assert!(!session.does_file_io());
}

#[test]
fn pings_to_a_peer_that_reads_nothing_stop_at_the_high_water() {
    let config = SessionConfig::default()
        .ping_interval(Some(secs(1)))
        .outbox_high_water(100);
    let (mut session, _) = recorded(config);
    for t in 1..=100 {
        session.handle_timeout(secs(t));
    }
    // Pings are queued until the outbox reaches its high water, not one
    // more: 6 pings of 18 bytes, not 100.
    assert_eq!(session.queued_bytes(), 6 * 18);
    assert!(session.is_open());
}

#[test]
fn frames_out_counts_every_frame_however_it_was_queued() {
    let (mut session, _) = recorded(SessionConfig::default());
    let sender = session.sender();
    for n in 0..3u8 {
        sender.send_blocking(Frame::message(vec![n; 10])).unwrap();
    }
    let mut buffered = sender.buffered();
    for n in 0..4u8 {
        buffered.feed_blocking(Frame::message(vec![n; 20])).unwrap();
    }
    buffered.flush_blocking();
    let with_file = FrameBuilder::new(Status::DEFAULT)
        .file("f", vec![1u8; 100])
        .build();
    sender.send_blocking(with_file).unwrap();
    drop(buffered);
    session.poll_queue(&noop_waker());
    let mut written = 0;
    while session.wants_write() {
        let mut slices: [&[u8]; 16] = [&[]; 16];
        let filled = session.transmit(&mut slices);
        let len: usize = slices[..filled].iter().map(|slice| slice.len()).sum();
        session.advance(len);
        written += len as u64;
    }
    let traffic = session.traffic();
    assert_eq!(traffic.frames_out, 8);
    assert_eq!(traffic.bytes_out, written);
}

/// Files named `s…` to a sink of `store`, the rest to memory; every frame
/// kept, and `receiving_bytes` after each input.
struct Mixed {
    store: MemStore,
    frames: Vec<Frame>,
}

impl Handler for Mixed {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.frames.push(frame);
    }

    fn file_target(&mut self, name: &str, _size: u64, _index: usize) -> FileTarget {
        if name.starts_with('s') {
            self.store.target()
        } else {
            FileTarget::Memory
        }
    }
}

/// The wire of `frames` handed over in pieces of `piece` bytes, shared or
/// not; the frames received (sink files read back into memory) and what
/// `receiving_bytes` said after each piece.
fn received_in_pieces(wire: &[u8], piece: usize, shared: bool) -> (Vec<Frame>, Vec<usize>) {
    let store = MemStore::default();
    let handler = Mixed {
        store: store.clone(),
        frames: Vec::new(),
    };
    let mut session = started(handler, SessionConfig::default());
    let mut held = Vec::new();
    for chunk in wire.chunks(piece) {
        let chunk = bytes::Bytes::copy_from_slice(chunk);
        let mut offset = 0;
        while offset < chunk.len() {
            let used = if shared {
                session.handle_bytes(&chunk.slice(offset..), secs(1))
            } else {
                session.handle_input(&chunk[offset..], secs(1))
            };
            assert!(used > 0, "nothing taken");
            offset += used;
        }
        held.push(session.receiving_bytes());
    }
    let frames = session
        .handler()
        .frames
        .iter()
        .map(|frame| {
            let mut whole = frame.clone();
            for file in &mut whole.files {
                if let Some(path) = file.path() {
                    let data = store.read(path).expect("stored");
                    *file = File::new(file.name.clone(), data);
                }
            }
            whole
        })
        .collect();
    (frames, held)
}

#[test]
fn shared_input_in_any_pieces_gives_the_frames_sent() {
    let frames = [
        FrameBuilder::new(Status::DEFAULT)
            .file("a", vec![1u8; 300])
            .file("b", vec![2u8; 5])
            .message(vec![3u8; 200])
            .build(),
        Frame::message(vec![4u8; 1000]),
        FrameBuilder::new(Status::DEFAULT)
            .file("stored", vec![5u8; 700])
            .file("c", vec![6u8; 64])
            .message("m")
            .build(),
        Frame::new(Status::DEFAULT),
    ];
    let wire: Vec<u8> = frames
        .iter()
        .flat_map(|frame| frame.encode_to_vec().unwrap())
        .collect();
    for piece in [1, 7, 64, 301, 333, 1000, wire.len()] {
        let (by_plain, held_plain) = received_in_pieces(&wire, piece, false);
        let (by_shared, held_shared) = received_in_pieces(&wire, piece, true);
        assert_eq!(by_plain, frames, "plain input in pieces of {piece}");
        assert_eq!(by_shared, frames, "shared input in pieces of {piece}");
        // A file or message kept as a slice counts as held like a copy.
        assert_eq!(held_shared, held_plain, "held bytes, pieces of {piece}");
    }
}

/// Keeps files in memory and offers a fixed room.
struct Roomy(usize);

impl Handler for Roomy {
    fn received(&mut self, _conn: &mut Connection<'_>, _frame: Frame) {}

    fn poll_room(&mut self, _waker: &std::task::Waker) -> usize {
        self.0
    }
}

#[test]
fn a_body_held_as_a_slice_counts_as_bytes_being_received() {
    // The room ends exactly at the file's last byte: the session stops
    // before the file's end, holding its body (a slice of the input, or a
    // copy) as part of the frame being received.
    let wire = bytes::Bytes::from(
        FrameBuilder::new(Status::DEFAULT)
            .file("a", vec![1u8; 1000])
            .message("m")
            .build()
            .encode_to_vec()
            .unwrap(),
    );
    for shared in [false, true] {
        let mut session = started(Roomy(1000), SessionConfig::default());
        session.poll_room(&noop_waker(), secs(0));
        let used = if shared {
            session.handle_bytes(&wire, secs(1))
        } else {
            session.handle_input(&wire, secs(1))
        };
        assert!(used < wire.len(), "the room let everything through");
        assert_eq!(session.receiving_bytes(), 1 + 1000, "shared: {shared}");
    }
}

/// Discards every file, keeps every frame.
struct Discarding(Vec<Frame>);

impl Handler for Discarding {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.0.push(frame);
    }

    fn file_target(&mut self, _name: &str, _size: u64, _index: usize) -> FileTarget {
        FileTarget::Discard
    }
}

#[test]
fn a_discarded_file_reports_its_length_and_limits_hold_at_their_maximum() {
    // A file exactly at `max_file_size` in memory passes; a discarded one
    // reports how many bytes it had, counted as they arrived in pieces.
    let limits = tej_core::Limits::DEFAULT.max_file_size(1000);
    let wire = files_wire(&[("a", vec![1u8; 1000])]);
    let (mut session, log) = recorded(SessionConfig::default().limits(limits));
    take_all(&mut session, &wire, secs(1));
    assert!(session.is_open(), "{:?}", seen(&log));
    assert!(matches!(&seen(&log)[1], Seen::Received(frame) if frame.files[0].len() == 1000));

    let mut session = started(Discarding(Vec::new()), SessionConfig::default());
    for piece in wire.chunks(7) {
        take_all(&mut session, piece, secs(1));
    }
    let frame = &session.handler().0[0];
    assert_eq!(
        frame.files[0].body,
        tej_core::FileBody::Delivered { len: 1000 }
    );
}

#[test]
fn file_targets_and_the_assembler_say_what_they_are_in_debug() {
    assert_eq!(format!("{:?}", FileTarget::Memory), "Memory");
    assert_eq!(format!("{:?}", FileTarget::Discard), "Discard");
    let mut assembler = tej_core::Assembler::new(tej_core::Limits::DEFAULT);
    let wire = files_wire(&[("notes.txt", vec![1u8; 10])]);
    let _ = assembler.decode(&wire[..31]).unwrap();
    let debug = format!("{assembler:?}");
    assert!(debug.contains("PartialFrame"), "{debug}");
    assert!(debug.contains("notes.txt"), "{debug}");
}

/// Replies to every frame with one frame of `0` encoded bytes.
struct Replier(usize);

impl Handler for Replier {
    fn received(&mut self, conn: &mut Connection<'_>, _frame: Frame) {
        // A frame without files is 18 bytes of headers and its message.
        conn.send(Frame::message(vec![0u8; self.0 - 18])).unwrap();
    }
}

#[test]
fn input_stops_once_the_outbox_reaches_the_high_water() {
    // Replies of exactly the high water stop input; one byte less does not.
    let wire = Frame::message("hi").encode_to_vec().unwrap();
    for (reply, reads) in [(100, false), (99, true)] {
        let config = SessionConfig::default().outbox_high_water(100);
        let mut session = started(Replier(reply), config);
        assert!(!session.is_closing());
        assert_eq!(session.handle_input(&wire, secs(1)), wire.len());
        assert_eq!(session.queued_bytes(), reply as u64);
        assert_eq!(session.wants_read(), reads, "a reply of {reply} bytes");
        assert!(!session.is_closing());
        assert!(format!("{session:?}").starts_with("Session {"));
    }
}

#[test]
fn no_ping_joins_an_outbox_at_the_high_water() {
    // A peer that reads nothing gets no more pings once what waits for it
    // reaches the high water; one byte under it, the ping is queued.
    let wire = Frame::message("hi").encode_to_vec().unwrap();
    for (reply, pinged) in [(100u64, false), (99, true)] {
        let config = SessionConfig::default()
            .outbox_high_water(100)
            .ping_interval(Some(Duration::from_secs(5)))
            .idle_timeout(None);
        let mut session = started(Replier(reply as usize), config);
        session.handle_input(&wire, secs(1));
        let due = session.poll_timeout().expect("a ping is due");
        session.handle_timeout(due);
        let ping = Frame::ping().encode_to_vec().unwrap().len() as u64;
        let expected = if pinged { reply + ping } else { reply };
        assert_eq!(session.queued_bytes(), expected, "a reply of {reply} bytes");
    }
}

/// Records `frame_started` calls.
struct Starts(Vec<(u8, u64)>);

impl Handler for Starts {
    fn received(&mut self, _conn: &mut Connection<'_>, _frame: Frame) {}

    fn frame_started(&mut self, status: Status, file_count: u64) {
        self.0.push((status.get(), file_count));
    }
}

#[test]
fn frame_started_is_for_frames_with_files_only() {
    let mut wire = Frame::message("no files").encode_to_vec().unwrap();
    wire.extend(Frame::new(Status::new(7).unwrap()).encode_to_vec().unwrap());
    wire.extend(
        FrameBuilder::new(Status::new(9).unwrap())
            .file("a", vec![1u8; 10])
            .file("b", vec![2u8; 10])
            .build()
            .encode_to_vec()
            .unwrap(),
    );
    // In one piece and byte by byte (frames without files then take the
    // event path, not the one-step one).
    for piece in [wire.len(), 1] {
        let mut session = started(Starts(Vec::new()), SessionConfig::default());
        for chunk in wire.chunks(piece) {
            take_all(&mut session, chunk, secs(1));
        }
        assert_eq!(session.handler().0, [(9, 2)], "pieces of {piece}");
    }
}

/// Counts `input_ended` calls and keeps the connection open.
struct Ends(usize);

impl Handler for Ends {
    fn received(&mut self, _conn: &mut Connection<'_>, _frame: Frame) {}

    fn input_ended(&mut self, _conn: &mut Connection<'_>) {
        self.0 += 1;
    }
}

#[test]
fn traffic_counts_frames_in_and_input_ends_once() {
    let wire: Vec<u8> = (0..3)
        .flat_map(|n: u8| Frame::message(vec![n; 5]).encode_to_vec().unwrap())
        .collect();
    let mut session = started(Ends(0), SessionConfig::default());
    take_all(&mut session, &wire, secs(1));
    assert_eq!(session.traffic().frames_in, 3);
    assert_eq!(session.traffic().bytes_in, wire.len() as u64);
    session.shutdown();
    session.shutdown();
    assert_eq!(session.handler().0, 1, "input_ended once");
}

#[test]
fn transmit_io_slices_offers_what_transmit_does() {
    let (mut session, _) = recorded(SessionConfig::default());
    let frames = [Frame::message("one"), Frame::message(vec![7u8; 100_000])];
    let mut expected = Vec::new();
    for frame in frames {
        expected.extend(frame.encode_to_vec().unwrap());
        session.sender().try_send(frame).unwrap();
    }
    session.poll_queue(&noop_waker());
    let mut out = Vec::new();
    while session.wants_write() {
        let mut slices = [std::io::IoSlice::new(&[]); 8];
        let filled = session.transmit_io_slices(&mut slices);
        assert!(filled > 0);
        let before = out.len();
        for slice in &slices[..filled] {
            out.extend_from_slice(slice);
        }
        session.advance(out.len() - before);
    }
    assert_eq!(out, expected);
}

#[test]
fn a_close_flushes_a_queue_larger_than_the_outbox() {
    // The outbox takes the queue a little at a time (high water 100): the
    // close waits for the queue to empty, not only the outbox.
    let (mut server, server_log) = recorded(SessionConfig::default());
    let config = SessionConfig::default().outbox_high_water(100);
    let (mut client, _) = recorded(config);
    let sender = client.sender();
    let frames: Vec<Frame> = (0..10u8).map(|n| Frame::message(vec![n; 50])).collect();
    for frame in &frames {
        sender.try_send(frame.clone()).unwrap();
    }
    sender.close();
    client.poll_queue(&noop_waker());
    exchange(&mut client, &mut server, 4096, secs(1));
    assert!(client.is_closed());
    let received: Vec<Seen> = seen(&server_log).into_iter().skip(1).collect();
    let sent: Vec<Seen> = frames.into_iter().map(Seen::Received).collect();
    assert_eq!(received, sent);
}

/// Logs frames lent to it, owned ones and pings apart, in one sequence;
/// hands back those of status 7.
#[derive(Default)]
struct ViewLog(Vec<String>);

impl Handler for ViewLog {
    fn received_view<'a>(
        &mut self,
        _conn: &mut Connection<'_>,
        frame: tej_core::FrameView<'a>,
    ) -> Option<tej_core::FrameView<'a>> {
        let message = frame
            .message()
            .map(|m| String::from_utf8_lossy(m).into_owned());
        self.0
            .push(format!("lent {} {message:?}", frame.status().get()));
        // The owned frame it stands for has the same status, version and message.
        let owned = frame.to_frame();
        assert_eq!(
            (owned.status, owned.version),
            (frame.status(), frame.version())
        );
        assert_eq!(owned.message.as_deref(), frame.message());
        assert!(owned.files.is_empty());
        // Status 7 is handed back: it comes to `received` as a frame.
        if frame.status().get() == 7 {
            self.0.push("handed back".into());
            return Some(frame);
        }
        None
    }
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        let message = frame
            .message
            .map(|m| String::from_utf8_lossy(&m).into_owned());
        self.0
            .push(format!("owned {} files {message:?}", frame.files.len()));
    }
    fn ping_received(&mut self, _conn: &mut Connection<'_>, _frame: Frame) {
        self.0.push("ping".into());
    }
}

#[test]
fn frames_without_files_whole_in_a_read_are_lent_and_the_rest_owned_in_order() {
    let mut session = started(ViewLog::default(), SessionConfig::default());
    let split = Frame::message("split").encode_to_vec().unwrap();
    let mut wire = Vec::new();
    wire.extend(Frame::message("one").encode_to_vec().unwrap());
    wire.extend(Frame::new(Status::new(7).unwrap()).encode_to_vec().unwrap());
    wire.extend(Frame::ping().encode_to_vec().unwrap());
    wire.extend(files_wire(&[("f", vec![1, 2, 3])]));
    wire.extend(Frame::message("two").encode_to_vec().unwrap());
    wire.extend(&split[..10]);
    take_all(&mut session, &wire, secs(1));
    take_all(&mut session, &split[10..], secs(1));
    assert_eq!(
        session.handler().0,
        [
            "lent 0 Some(\"one\")",
            "lent 7 None",
            "handed back",
            "owned 0 files None",
            "ping",
            "owned 1 files None",
            "lent 0 Some(\"two\")",
            "owned 0 files Some(\"split\")",
        ]
    );
}
