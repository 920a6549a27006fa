//! One conformance suite for every adapter: each scenario is written once
//! against the blocking facade in `tej_examples::runtime` and instantiated
//! per runtime, and per cross-runtime pair, by `conformance!` below.

#[path = "support/recorder.rs"]
mod recorder;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use recorder::{hex_sha256, Record, Recorder, Seen};
use tej_core::{Assembler, File, Frame, FrameBuilder, Limits, SendError, SessionConfig, Status};
use tej_examples::runtime::{self, RunningServer, Runtime};

const WAIT: Duration = Duration::from_secs(30);

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn serve(runtime: Runtime, config: SessionConfig, handler: Recorder) -> RunningServer {
    runtime::start_server(runtime, loopback(), config, move || handler.clone())
        .expect("server starts")
}

fn numbered(prefix: &str, i: usize) -> Frame {
    FrameBuilder::new(Status::new((i % 100) as u8 + 10).unwrap())
        .file(format!("{prefix}-{i}.bin"), vec![i as u8; i * 37 % 5000])
        .message(format!("{prefix}-{i}"))
        .build()
}

fn texts(record: &Record) -> Vec<String> {
    record
        .received()
        .iter()
        .map(|frame| frame.message_text())
        .collect()
}

fn ended(seen: &[Seen]) -> bool {
    matches!(seen.last(), Some(Seen::Disconnected(_)))
}

/// `connected`, then every frame in order (pings to `ping_received`), then
/// `disconnected` once, on both sides.
fn callback_order(server_runtime: Runtime, client_runtime: Runtime) {
    let server_record = Record::default();
    let server = serve(
        server_runtime,
        SessionConfig::default(),
        Recorder::new(&server_record),
    );
    let client_record = Record::default();
    let client = runtime::connect(
        client_runtime,
        server.addr(),
        Recorder::new(&client_record),
        SessionConfig::default(),
    )
    .unwrap();
    let sender = client.sender();
    for i in 0..50 {
        sender.send_blocking(numbered("c", i)).unwrap();
        if i % 10 == 0 {
            sender.send_blocking(Frame::ping()).unwrap();
        }
    }
    server_record.wait_until("50 frames", WAIT, |seen| seen.len() >= 1 + 50 + 5);
    client.close().unwrap();
    let seen = server_record.wait_until("disconnect", WAIT, ended);

    assert_eq!(seen[0], Seen::Connected);
    let mut expected_frames = 0;
    for (i, event) in seen[1..seen.len() - 1].iter().enumerate() {
        match event {
            Seen::Received(frame) => {
                assert_eq!(
                    frame.message_text(),
                    format!("c-{expected_frames}"),
                    "at {i}"
                );
                expected_frames += 1;
            }
            Seen::Ping(frame) => assert_eq!(frame.status, 2),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(expected_frames, 50);
    assert_eq!(
        seen.last(),
        Some(&Seen::Disconnected("peer closed the connection".into()))
    );
    assert_eq!(
        client_record.snapshot(),
        vec![Seen::Connected, Seen::Disconnected("closed locally".into())]
    );
    server.stop();
    assert_eq!(
        server_record.disconnects().len(),
        1,
        "disconnected exactly once"
    );
}

/// A ping goes to `ping_received`, never `received`; periodic pings too.
fn ping(server_runtime: Runtime, client_runtime: Runtime) {
    let server_record = Record::default();
    let server = serve(
        server_runtime,
        SessionConfig::default(),
        Recorder::new(&server_record),
    );
    let config = SessionConfig::default().ping_interval(Some(Duration::from_millis(50)));
    let client =
        runtime::connect(client_runtime, server.addr(), Recorder::default(), config).unwrap();
    server_record.wait_until("three periodic pings", WAIT, |seen| {
        seen.iter()
            .filter(|seen| matches!(seen, Seen::Ping(_)))
            .count()
            >= 3
    });
    client.close().unwrap();
    server_record.wait_until("disconnect", WAIT, ended);
    assert!(
        server_record.received().is_empty(),
        "pings never reach received"
    );
    server.stop();
}

/// Both sides stream at once: nothing lost, order kept per direction.
fn full_duplex(server_runtime: Runtime, client_runtime: Runtime) {
    const COUNT: usize = 500;
    let server_record = Record::default();
    let mut server_handler = Recorder::new(&server_record);
    server_handler.push_on_connect = COUNT;
    let server = serve(server_runtime, SessionConfig::default(), server_handler);
    let client_record = Record::default();
    let client = runtime::connect(
        client_runtime,
        server.addr(),
        Recorder::new(&client_record),
        SessionConfig::default(),
    )
    .unwrap();
    let sender = client.sender();
    for i in 0..COUNT {
        sender.send_blocking(numbered("c", i)).unwrap();
    }
    server_record.wait_until("the client's stream", WAIT, |seen| seen.len() > COUNT);
    client_record.wait_until("the server's stream", WAIT, |seen| seen.len() > COUNT);
    assert_eq!(
        texts(&server_record),
        (0..COUNT).map(|i| format!("c-{i}")).collect::<Vec<_>>()
    );
    assert_eq!(
        texts(&client_record),
        (0..COUNT).map(|i| format!("push-{i}")).collect::<Vec<_>>()
    );
    let sent_files: Vec<_> = (0..COUNT).map(|i| numbered("c", i)).collect();
    for (received, sent) in server_record.received().iter().zip(&sent_files) {
        assert_eq!(
            received.files[0].sha256,
            hex_sha256(sent.files[0].data().unwrap())
        );
    }
    client.close().unwrap();
    server.stop();
}

/// The server pushes through a `Sender` from a thread of the test's own.
fn server_push_from_another_thread(server_runtime: Runtime, client_runtime: Runtime) {
    let server_record = Record::default();
    let server = serve(
        server_runtime,
        SessionConfig::default(),
        Recorder::new(&server_record),
    );
    let client_record = Record::default();
    let client = runtime::connect(
        client_runtime,
        server.addr(),
        Recorder::new(&client_record),
        SessionConfig::default(),
    )
    .unwrap();
    server_record.wait_until("connected", WAIT, |seen| !seen.is_empty());
    let sender = server_record.senders().remove(0);
    let pusher = std::thread::spawn(move || {
        for i in 0..100 {
            sender.send_blocking(numbered("s", i)).unwrap();
        }
    });
    pusher.join().unwrap();
    client_record.wait_until("100 pushed frames", WAIT, |seen| seen.len() > 100);
    assert_eq!(
        texts(&client_record),
        (0..100).map(|i| format!("s-{i}")).collect::<Vec<_>>()
    );
    client.close().unwrap();
    server.stop();
}

/// A peer that does not read: the Sender's queue stops at its bound, and
/// everything arrives once the peer reads.
fn backpressure_with_a_slow_reader(server_runtime: Runtime, _client_runtime: Runtime) {
    const CAPACITY: usize = 256 * 1024;
    let server_record = Record::default();
    let config = SessionConfig::default()
        .send_queue_capacity(CAPACITY)
        .outbox_high_water(256 * 1024);
    let server = serve(server_runtime, config, Recorder::new(&server_record));
    let mut peer = TcpStream::connect(server.addr()).unwrap();
    server_record.wait_until("connected", WAIT, |seen| !seen.is_empty());
    let sender = server_record.senders().remove(0);

    let frame = Frame::message(vec![0xab; 64 * 1024]);
    let mut accepted = 0usize;
    let deadline = Instant::now() + WAIT;
    loop {
        match sender.try_send(frame.clone()) {
            Ok(()) => accepted += 1,
            Err(SendError::Full(back)) => {
                assert_eq!(back, frame, "the refused frame comes back");
                // Full may be momentary while the socket still drains; full
                // twice in a row after a pause means the peer's buffers are full.
                std::thread::sleep(Duration::from_millis(100));
                if matches!(sender.try_send(frame.clone()), Err(SendError::Full(_))) {
                    break;
                }
                accepted += 1;
            }
            Err(other) => panic!("{other}"),
        }
        assert!(Instant::now() < deadline, "the queue never filled");
        assert!(accepted < 100_000, "the queue is not bounded");
    }
    assert!(sender.queued_bytes() <= CAPACITY + 64 * 1024 + 64);

    // The peer now reads everything: every accepted frame arrives whole.
    let mut assembler = Assembler::new(Limits::default());
    let mut buffer = vec![0u8; 256 * 1024];
    let mut frames = 0usize;
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while frames < accepted {
        let read = peer.read(&mut buffer).expect("the rest arrives");
        assert!(read > 0, "closed early after {frames} of {accepted} frames");
        let mut rest = &buffer[..read];
        loop {
            let assembled = assembler.decode(rest).unwrap();
            rest = &rest[assembled.consumed..];
            match assembled.frame {
                Some(received) => {
                    assert_eq!(received, frame);
                    frames += 1;
                }
                None => break,
            }
        }
    }
    drop(peer);
    server.stop();
}

/// No input for the idle timeout closes the connection and says so.
fn idle_timeout(server_runtime: Runtime, client_runtime: Runtime) {
    let server_record = Record::default();
    let config = SessionConfig::default().idle_timeout(Some(Duration::from_millis(300)));
    let server = serve(server_runtime, config, Recorder::new(&server_record));
    let client_record = Record::default();
    let started = Instant::now();
    let client = runtime::connect(
        client_runtime,
        server.addr(),
        Recorder::new(&client_record),
        SessionConfig::default(),
    )
    .unwrap();
    let seen = server_record.wait_until("idle timeout", WAIT, ended);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        seen.last(),
        Some(&Seen::Disconnected("idle timeout".into()))
    );
    client.join().unwrap();
    assert_eq!(client_record.disconnects(), ["peer closed the connection"]);
    server.stop();
}

/// Shutdown lets a frame being received finish, then closes every connection.
fn graceful_shutdown(server_runtime: Runtime, client_runtime: Runtime) {
    let server_record = Record::default();
    let mut handler = Recorder::new(&server_record);
    handler.reply = Some(Frame::message("ack"));
    let server = serve(server_runtime, SessionConfig::default(), handler);
    let client_record = Record::default();
    let client = runtime::connect(
        client_runtime,
        server.addr(),
        Recorder::new(&client_record),
        SessionConfig::default(),
    )
    .unwrap();
    let mut raw = TcpStream::connect(server.addr()).unwrap();
    let wire = numbered("half", 7).encode_to_vec().unwrap();
    raw.write_all(&wire[..wire.len() / 2]).unwrap();
    server_record.wait_until("both connected", WAIT, |seen| {
        seen.iter().filter(|seen| **seen == Seen::Connected).count() == 2
    });
    let deadline = Instant::now() + WAIT;
    while server_record.files_started() == 0 {
        assert!(Instant::now() < deadline, "the half frame never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }

    let stopping = std::thread::spawn(move || server.stop());
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !stopping.is_finished(),
        "shutdown waits for the frame in progress"
    );
    raw.write_all(&wire[wire.len() / 2..]).unwrap();
    stopping.join().unwrap();

    assert_eq!(texts(&server_record), ["half-7"]);
    let mut reply = Vec::new();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.read_to_end(&mut reply).unwrap();
    assert_eq!(
        reply,
        Frame::message("ack").encode_to_vec().unwrap(),
        "the reply is flushed before closing"
    );
    client.join().unwrap();
    assert_eq!(client_record.disconnects(), ["peer closed the connection"]);
    assert_eq!(
        server_record.disconnects(),
        ["closed locally", "closed locally"]
    );
}

/// A malformed frame closes only its connection, with its typed reason.
fn malformed_frame_closes_only_that_connection(server_runtime: Runtime, client_runtime: Runtime) {
    let server_record = Record::default();
    let mut handler = Recorder::new(&server_record);
    handler.reply = Some(Frame::message("ack"));
    let server = serve(server_runtime, SessionConfig::default(), handler);
    let client_record = Record::default();
    let client = runtime::connect(
        client_runtime,
        server.addr(),
        Recorder::new(&client_record),
        SessionConfig::default(),
    )
    .unwrap();
    client
        .sender()
        .send_blocking(Frame::message("before"))
        .unwrap();
    client_record.wait_until("first ack", WAIT, |seen| seen.len() >= 2);

    let mut bad = TcpStream::connect(server.addr()).unwrap();
    bad.write_all(&[0x05, 0x01, 0, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    server_record.wait_until("the bad connection's end", WAIT, |seen| {
        seen.iter()
            .any(|seen| matches!(seen, Seen::Disconnected(_)))
    });
    assert_eq!(
        server_record.disconnects(),
        ["protocol error: status bit is 0 in first byte 0x05 of a frame at offset 0"]
    );
    let mut rest = Vec::new();
    bad.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = bad.read_to_end(&mut rest);
    assert!(rest.is_empty(), "nothing is sent to the bad peer");

    client
        .sender()
        .send_blocking(Frame::message("after"))
        .unwrap();
    client_record.wait_until("second ack", WAIT, |seen| seen.len() >= 3);
    assert_eq!(texts(&client_record), ["ack", "ack"]);
    client.close().unwrap();
    server.stop();
}

/// A large file streamed from disk and spooled to disk, verified by hash.
fn large_file_to_disk(server_runtime: Runtime, client_runtime: Runtime) {
    let dir = std::env::temp_dir().join(format!(
        "tej-conformance-{}-{server_runtime}-{client_runtime}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("source.bin");
    let content: Vec<u8> = (0..48u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(&source, &content).unwrap();

    let server_record = Record::default();
    let mut handler = Recorder::new(&server_record);
    handler.spool_dir = Some(dir.join("spool"));
    let server = serve(server_runtime, SessionConfig::default(), handler);
    let client = runtime::connect(
        client_runtime,
        server.addr(),
        Recorder::default(),
        SessionConfig::default(),
    )
    .unwrap();
    client
        .sender()
        .send_blocking(
            FrameBuilder::new(Status::DEFAULT)
                .add_file(File::from_path("large.bin", &source).unwrap())
                .message("large")
                .build(),
        )
        .unwrap();
    server_record.wait_until("the large file", WAIT, |seen| seen.len() >= 2);
    let received = server_record.received();
    assert_eq!(received[0].files[0].size, content.len() as u64);
    assert_eq!(received[0].files[0].sha256, hex_sha256(&content));
    client.close().unwrap();
    server.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Instantiates every scenario for every runtime, and the scenarios that
/// involve both sides for each cross-runtime pair.
macro_rules! conformance {
    ($($module:ident: $server:expr, $client:expr;)*) => {
        $(
            mod $module {
                use super::*;

                #[test]
                fn callback_order() {
                    super::callback_order($server, $client);
                }
                #[test]
                fn ping() {
                    super::ping($server, $client);
                }
                #[test]
                fn full_duplex() {
                    super::full_duplex($server, $client);
                }
                #[test]
                fn server_push_from_another_thread() {
                    super::server_push_from_another_thread($server, $client);
                }
                #[test]
                fn backpressure_with_a_slow_reader() {
                    super::backpressure_with_a_slow_reader($server, $client);
                }
                #[test]
                fn idle_timeout() {
                    super::idle_timeout($server, $client);
                }
                #[test]
                fn graceful_shutdown() {
                    super::graceful_shutdown($server, $client);
                }
                #[test]
                fn malformed_frame_closes_only_that_connection() {
                    super::malformed_frame_closes_only_that_connection($server, $client);
                }
                #[test]
                fn large_file_to_disk() {
                    super::large_file_to_disk($server, $client);
                }
            }
        )*
    };
}

conformance! {
    tokio: Runtime::Tokio, Runtime::Tokio;
    async_std: Runtime::AsyncStd, Runtime::AsyncStd;
    async_std_server_tokio_client: Runtime::AsyncStd, Runtime::Tokio;
    tokio_server_async_std_client: Runtime::Tokio, Runtime::AsyncStd;
    mio: Runtime::Mio, Runtime::Mio;
    mio_server_tokio_client: Runtime::Mio, Runtime::Tokio;
    async_std_server_mio_client: Runtime::AsyncStd, Runtime::Mio;
}
