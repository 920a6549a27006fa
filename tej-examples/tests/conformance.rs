//! The test matrix: every scenario is written once against the blocking
//! facade in `tej_examples::runtime` and instantiated per runtime, per
//! cross-runtime pair and per transport (TCP, Unix sockets, TLS) by
//! `matrix!` (from `tej_test_support::matrix`) below. Scenarios about both sides run on every setup; those
//! about a server alone (raw peers, PROXY, TLS handshakes) on each runtime
//! per transport.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use tej_core::{
    Assembler, DisconnectReason, Frame, FrameBuilder, Limits, SendError, SessionConfig, Status,
    Transport,
};
use tej_examples::runtime::{self, Endpoint, RunningClient, ServerOptions};
use tej_examples::tls::ClientTls;
use tej_test_support::matrix::Runtime::{self, AsyncStd, Mio, Smol, Tokio};
use tej_test_support::matrix::{
    client_tls, client_tls_with, connect, raw, runtimes_and_pairs, same_runtime, serve, serve_with,
    try_connect, Net, Options, Setup, TestServer,
};
use tej_test_support::peer::{pattern, sample_frames, text, Peer, Raw};
use tej_test_support::recorder::{hex_sha256, FrameSummary, Record, Recorder, Seen};
use tej_test_support::{proxy, tls as certs};

const WAIT: Duration = Duration::from_secs(30);

/// A raw TCP connection (never TLS) to a server on TCP.
fn raw_tcp(server: &TestServer) -> TcpStream {
    let stream = TcpStream::connect(server.addr()).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

/// Reads until the server closes (a reset counts); what it sent.
fn until_closed(stream: &mut impl Read) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got);
    got
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

fn connections(seen: &[Seen]) -> usize {
    seen.iter().filter(|seen| **seen == Seen::Connected).count()
}

fn echoing(record: &Record) -> Recorder {
    let mut handler = Recorder::new(record);
    handler.echo = true;
    handler
}

fn mirroring(record: &Record) -> Recorder {
    let mut handler = Recorder::new(record);
    handler.mirror = true;
    handler
}

/// A recorder that answers every frame with "ack".
fn acking(record: &Record) -> Recorder {
    let mut handler = Recorder::new(record);
    handler.reply = Some(Frame::message("ack"));
    handler
}

/// A client of the default config connected to `server`, recording into
/// `record`.
fn client_of(s: Setup, server: &TestServer, record: &Record) -> RunningClient {
    connect(s, server, Recorder::new(record), SessionConfig::default())
}

/// A client of the default config connecting to `server` with `tls`,
/// recording into `record`.
fn try_connect_to(
    s: Setup,
    server: &TestServer,
    tls: Option<ClientTls>,
    record: &Record,
) -> io::Result<RunningClient> {
    try_connect(
        s,
        server,
        tls,
        Recorder::new(record),
        SessionConfig::default(),
    )
}

/// A scenario's server and a client connected to it, each with its record:
/// (server record, server, client record, client).
type Pair = (Record, TestServer, Record, RunningClient);

/// A server whose handler `handler` makes over its record, and a client
/// connected to it, both of the default config.
fn pair(s: Setup, handler: impl FnOnce(&Record) -> Recorder) -> Pair {
    pair_with(s, SessionConfig::default(), handler)
}

/// [`pair`], both sides with `config`.
fn pair_with(s: Setup, config: SessionConfig, handler: impl FnOnce(&Record) -> Recorder) -> Pair {
    let server_record = Record::default();
    let server = serve(s, config.clone(), handler(&server_record));
    let client_record = Record::default();
    let client = connect(s, &server, Recorder::new(&client_record), config);
    (server_record, server, client_record, client)
}

/// Sends a frame of `text` alone, waiting for room in the send queue.
fn send_message(client: &RunningClient, text: &str) {
    client
        .sender()
        .send_blocking(Frame::message(text.to_owned()))
        .unwrap();
}

/// Sends "hello" and waits for its echo: the client is served.
fn assert_served(client: &RunningClient, record: &Record, tag: &str) {
    let before = record.received().len();
    send_message(client, tag);
    record.wait_until("the echo", WAIT, |seen| {
        seen.iter()
            .filter(|seen| matches!(seen, Seen::Received(_)))
            .count()
            > before
    });
    assert_eq!(
        record.received().last().unwrap().message_text(),
        format!("echo: {tag}")
    );
}

/// `connected`, then every frame in order (pings to `ping_received`), then
/// `disconnected` once, on both sides; each side's addresses; the reason
/// `close` gives, and a sender closed after it.
fn callback_order(s: Setup) {
    const COUNT: usize = 200;
    let (server_record, server, client_record, client) = pair(s, echoing);
    match server.endpoint() {
        Endpoint::Tcp(addr) => {
            assert_eq!(client.peer_addr(), Some(*addr));
            assert_eq!(client.local_addr().map(|local| local.ip()), Some(addr.ip()));
        }
        Endpoint::Unix(_) => {
            assert_eq!(client.peer_addr(), None);
            assert_eq!(client.local_addr(), None);
        }
    }
    let sender = client.sender();
    for i in 0..COUNT {
        sender.send_blocking(numbered("c", i)).unwrap();
        if i % 10 == 0 {
            sender.send_blocking(Frame::ping()).unwrap();
        }
    }
    client_record.wait_until("the echoes", WAIT, |seen| seen.len() > COUNT);
    let reason = client.close().unwrap();
    assert!(matches!(reason, DisconnectReason::LocalClose), "{reason}");
    assert!(sender.is_closed());
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
                assert_eq!(frame.files.len(), 1);
                expected_frames += 1;
            }
            Seen::Ping(frame) => assert_eq!(frame.status, 2),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(expected_frames, COUNT);
    assert_eq!(
        seen.last(),
        Some(&Seen::Disconnected("peer closed the connection".into()))
    );
    let mut expected = vec![Seen::Connected];
    let echoes = client_record.received();
    assert_eq!(echoes.len(), COUNT);
    for (i, echo) in echoes.into_iter().enumerate() {
        assert_eq!(echo.message_text(), format!("echo: c-{i}"));
        expected.push(Seen::Received(echo));
    }
    expected.push(Seen::Disconnected("closed locally".into()));
    assert_eq!(client_record.snapshot(), expected);
    let addrs = server_record.addrs();
    assert_eq!(addrs.len(), 1);
    match s.net {
        Net::Unix => assert_eq!(addrs[0], (None, None)),
        Net::Tcp | Net::Tls => {
            let (peer, proxy) = addrs[0];
            assert_eq!(peer.map(|peer| peer.ip()), Some(Ipv4Addr::LOCALHOST.into()));
            assert_eq!(proxy, None);
        }
    }
    server.stop();
    assert_eq!(
        server_record.disconnects().len(),
        1,
        "disconnected exactly once"
    );
}

/// Pings go to `ping_received`, never `received`: periodic ones both ways
/// and one sent through a sender.
fn ping(s: Setup) {
    let every = SessionConfig::default().ping_interval(Some(Duration::from_millis(50)));
    let (server_record, server, client_record, client) = pair_with(s, every, Recorder::new);
    client.sender().send_blocking(Frame::ping()).unwrap();
    let pings = |seen: &[Seen]| {
        seen.iter()
            .filter(|seen| matches!(seen, Seen::Ping(_)))
            .count()
    };
    server_record.wait_until("pings at the server", WAIT, |seen| pings(seen) >= 4);
    client_record.wait_until("pings at the client", WAIT, |seen| pings(seen) >= 3);
    client.close().unwrap();
    server_record.wait_until("disconnect", WAIT, ended);
    assert!(
        server_record.received().is_empty() && client_record.received().is_empty(),
        "pings never reach received"
    );
    server.stop();
}

/// Sends the sample frames and waits for them to come back from a
/// mirroring server: what was sent, as the records see it.
fn send_samples_mirrored(client: &RunningClient, client_record: &Record) -> Vec<FrameSummary> {
    let frames = sample_frames();
    for frame in &frames {
        client.sender().send_blocking(frame.clone()).unwrap();
    }
    client_record.wait_until("the mirrored frames", WAIT, |seen| {
        seen.len() > frames.len()
    });
    frames.iter().map(FrameSummary::of).collect()
}

/// Frames with files of every size cross byte for byte both ways.
fn files_both_ways(s: Setup) {
    let (server_record, server, client_record, client) = pair(s, mirroring);
    let sent = send_samples_mirrored(&client, &client_record);
    assert_eq!(
        server_record.received(),
        sent,
        "the server got other frames"
    );
    assert_eq!(
        client_record.received(),
        sent,
        "the client got other frames"
    );
    client.close().unwrap();
    server_record.wait_until("disconnect", WAIT, ended);
    assert_eq!(server_record.disconnects(), ["peer closed the connection"]);
    server.stop();
}

/// Senders used from several threads at once, both ways, on small queues:
/// nothing lost, order kept per thread; closing through the server's
/// sender ends the client.
fn senders_on_other_threads(s: Setup) {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 250;
    const PUSHED: usize = 300;
    let small = SessionConfig::default().send_queue_capacity(4096);
    let (server_record, server, client_record, client) = pair_with(s, small, Recorder::new);
    server_record.wait_until("connected", WAIT, |seen| !seen.is_empty());
    let server_sender = server_record.senders().remove(0);

    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let sender = client.sender();
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let frame = FrameBuilder::new(Status::DEFAULT)
                        .file("pad", vec![t as u8; 700])
                        .message(format!("t{t}-{i}"))
                        .build();
                    sender.send_blocking(frame).unwrap();
                }
            })
        })
        .collect();
    let pusher = std::thread::spawn(move || {
        for i in 0..PUSHED {
            server_sender.send_blocking(numbered("s", i)).unwrap();
        }
        server_sender
    });
    for thread in threads {
        thread.join().unwrap();
    }
    let server_sender = pusher.join().unwrap();
    server_record.wait_until("every client frame", WAIT, |seen| {
        seen.len() > THREADS * PER_THREAD
    });
    client_record.wait_until("every pushed frame", WAIT, |seen| seen.len() > PUSHED);
    let seen = texts(&server_record);
    for t in 0..THREADS {
        let order: Vec<usize> = seen
            .iter()
            .filter_map(|message| message.strip_prefix(&format!("t{t}-")))
            .map(|i| i.parse().unwrap())
            .collect();
        assert_eq!(order, (0..PER_THREAD).collect::<Vec<_>>(), "thread {t}");
    }
    assert_eq!(
        texts(&client_record),
        (0..PUSHED).map(|i| format!("s-{i}")).collect::<Vec<_>>()
    );
    server_sender.close();
    client.join().unwrap();
    assert_eq!(client_record.disconnects(), ["peer closed the connection"]);
    server.stop();
}

/// Both sides stream at once: nothing lost, order kept per direction.
fn full_duplex(s: Setup) {
    const COUNT: usize = 500;
    let server_record = Record::default();
    let mut server_handler = Recorder::new(&server_record);
    server_handler.push_on_connect = COUNT;
    let server = serve(s, SessionConfig::default(), server_handler);
    let client_record = Record::default();
    let client = client_of(s, &server, &client_record);
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

/// A peer that does not read: the Sender's queue stops at its bound, and
/// everything arrives once the peer reads.
fn backpressure_with_a_slow_reader(s: Setup) {
    const CAPACITY: usize = 256 * 1024;
    let server_record = Record::default();
    let config = SessionConfig::default()
        .send_queue_capacity(CAPACITY)
        .outbox_high_water(256 * 1024);
    let server = serve(s, config, Recorder::new(&server_record));
    let mut peer = raw(s, &server);
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
                std::thread::sleep(Duration::from_millis(10));
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
    peer.set_read_timeout(Duration::from_secs(5));
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
fn idle_timeout(s: Setup) {
    let server_record = Record::default();
    let config = SessionConfig::default().idle_timeout(Some(Duration::from_millis(300)));
    let server = serve(s, config, Recorder::new(&server_record));
    let client_record = Record::default();
    let started = Instant::now();
    let client = client_of(s, &server, &client_record);
    let seen = server_record.wait_until("idle timeout", WAIT, ended);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        seen.last(),
        Some(&Seen::Disconnected("idle timeout".into()))
    );
    let reason = client.join().unwrap();
    assert!(matches!(reason, DisconnectReason::PeerClosed), "{reason}");
    assert!(reason.is_graceful());
    assert_eq!(client_record.disconnects(), ["peer closed the connection"]);
    server.stop();
}

/// Shutdown lets a frame being received finish, then closes every connection.
fn graceful_shutdown(s: Setup) {
    let (server_record, server, client_record, client) = pair(s, acking);
    send_message(&client, "before shutdown");
    client_record.wait_until("the ack", WAIT, |seen| seen.len() >= 2);
    let mut raw = raw(s, &server);
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
    // The peer reads to the server's end of stream, then closes: what the
    // server's close waits for.
    let reading = std::thread::spawn(move || {
        let mut reply = Vec::new();
        raw.set_read_timeout(Duration::from_secs(5));
        raw.read_to_end(&mut reply).unwrap();
        reply
    });
    stopping.join().unwrap();

    assert_eq!(texts(&server_record), ["before shutdown", "half-7"]);
    let reply = reading.join().unwrap();
    assert_eq!(
        reply,
        Frame::message("ack").encode_to_vec().unwrap(),
        "the reply is flushed before closing"
    );
    client.join().unwrap();
    assert_eq!(
        texts(&client_record),
        ["ack"],
        "the ack came before the end"
    );
    assert_eq!(client_record.disconnects(), ["peer closed the connection"]);
    assert_eq!(
        server_record.disconnects(),
        ["closed locally", "closed locally"]
    );
}

/// A malformed frame closes only its connection, with its typed reason.
fn malformed_frame_closes_only_that_connection(s: Setup) {
    let (server_record, server, client_record, client) = pair(s, acking);
    send_message(&client, "before");
    client_record.wait_until("first ack", WAIT, |seen| seen.len() >= 2);

    let mut bad = raw(s, &server);
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
    bad.set_read_timeout(Duration::from_secs(5));
    let _ = bad.read_to_end(&mut rest);
    assert!(rest.is_empty(), "nothing is sent to the bad peer");

    send_message(&client, "after");
    client_record.wait_until("second ack", WAIT, |seen| seen.len() >= 3);
    assert_eq!(texts(&client_record), ["ack", "ack"]);
    client.close().unwrap();
    server.stop();
}

/// A large file streamed from disk and spooled to disk, verified by hash.
fn large_file_to_disk(s: Setup) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let source = dir.join("source.bin");
    // Far more than the read buffer, the send queue and the outbox hold.
    let content = pattern(16 << 20, 11);
    std::fs::write(&source, &content).unwrap();

    let server_record = Record::default();
    let mut handler = Recorder::new(&server_record);
    handler.spool_dir = Some(dir.join("spool"));
    let server = serve(s, SessionConfig::default(), handler);
    let client = connect(s, &server, Recorder::default(), SessionConfig::default());
    client
        .sender()
        .send_blocking(
            FrameBuilder::new(Status::DEFAULT)
                .add_file(tej_net::file::from_path("large.bin", &source).unwrap())
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
}

/// A 64 MiB file in memory, and a small one, both ways over TLS byte for
/// byte.
fn a_64_mib_file_round_trips_both_ways(s: Setup) {
    let (server_record, server, client_record, client) = pair(s, mirroring);
    let frame = FrameBuilder::new(Status::DEFAULT)
        .file("upload.bin", pattern(64 << 20, 1))
        .file("small.txt", &b"hello over TLS"[..])
        .message("up")
        .build();
    let sent = FrameSummary::of(&frame);
    client.sender().send_blocking(frame).unwrap();
    client_record.wait_until("the file back", WAIT * 2, |seen| seen.len() >= 2);
    assert_eq!(server_record.received(), std::slice::from_ref(&sent));
    assert_eq!(client_record.received(), [sent]);
    client.close().unwrap();
    server.stop();
}

/// A peer that writes every frame before it reads any: the server
/// buffers, answers each whole and in order.
fn pipelined_frames_arrive_whole_and_in_order(s: Setup) {
    let server = serve(s, SessionConfig::default(), mirroring(&Record::default()));
    let frames: Vec<Frame> = (0..200)
        .map(|i| {
            // Any status but 2, which is a ping and not mirrored.
            let status = if i % 128 == 2 { 127 } else { i % 128 };
            FrameBuilder::new(Status::new(status as u8).unwrap())
                .file(format!("a{i}.bin"), pattern(i * 97, i as u64))
                .file("é.txt", vec![i as u8; 5000 + i])
                .message(format!("frame {i}"))
                .build()
        })
        .collect();
    let stream = raw(s, &server);
    stream.set_read_timeout(WAIT);
    let writer = {
        let frames = frames.clone();
        let mut stream = stream.try_clone();
        std::thread::spawn(move || {
            for frame in &frames {
                stream.write_all(&frame.encode_to_vec().unwrap()).unwrap();
            }
        })
    };
    let mut peer = Peer::over(stream, 64 * 1024);
    for expected in &frames {
        assert_eq!(&peer.recv().unwrap().expect("a frame"), expected);
    }
    writer.join().unwrap();
    drop(peer);
    server.stop();
}

/// Dropping a client closes it once what is queued is sent; a sender
/// taken before does not keep the connection open.
fn dropping_a_client_closes_it_after_what_is_queued(s: Setup) {
    // A server that answers nothing: a peer still sending when this side
    // closes would see its close as a reset.
    let server_record = Record::default();
    let server = serve(s, SessionConfig::default(), Recorder::new(&server_record));
    let client_record = Record::default();
    // Room for every frame, so that they are all queued at once.
    let config = SessionConfig::default().send_queue_capacity(8 << 20);
    let client = connect(s, &server, Recorder::new(&client_record), config);
    let sender = client.sender();
    for i in 0..40 {
        let frame = FrameBuilder::new(Status::DEFAULT)
            .file("data.bin", pattern(64 * 1024, i))
            .message(format!("m{i}"))
            .build();
        sender.try_send(frame).unwrap();
    }
    drop(client);
    let seen = server_record.wait_until("the server to see the end", WAIT, ended);
    assert_eq!(
        texts(&server_record),
        (0..40).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    assert_eq!(
        seen.last(),
        Some(&Seen::Disconnected("peer closed the connection".into()))
    );
    let seen = client_record.wait_until("the client to end", WAIT, ended);
    assert_eq!(
        seen,
        [Seen::Connected, Seen::Disconnected("closed locally".into())]
    );
    assert!(sender.is_closed());
    server.stop();
}

/// A detached client runs on: it is served, closes on its sender's
/// `close`, and sees a server's shutdown as the peer's close.
fn a_detached_client_runs_on(s: Setup) {
    let (server_record, server, client_record, client) = pair(s, echoing);
    let sender = client.detach();
    sender
        .send_blocking(Frame::message("after detach"))
        .unwrap();
    client_record.wait_until("the echo", WAIT, |seen| seen.len() >= 2);
    assert_eq!(texts(&client_record), ["echo: after detach"]);
    assert!(!sender.is_closed());
    sender.close();
    server_record.wait_until("the server to see the end", WAIT, ended);
    assert_eq!(server_record.disconnects(), ["peer closed the connection"]);
    client_record.wait_until("the client's end", WAIT, ended);

    let second_record = Record::default();
    let second = client_of(s, &server, &second_record);
    let second_sender = second.detach();
    second_sender
        .send_blocking(Frame::message("detached"))
        .unwrap();
    second_record.wait_until("the echo", WAIT, |seen| seen.len() >= 2);
    server.stop();
    second_record.wait_until("the second client's end", WAIT, ended);
    assert_eq!(second_record.disconnects(), ["peer closed the connection"]);
}

/// `shutdown` ends a client at once; connecting where nothing listens
/// any more fails.
fn client_shutdown_and_connect_error(s: Setup) {
    let (server_record, server, client_record, client) = pair(s, echoing);
    server_record.wait_until("the connection", WAIT, |seen| !seen.is_empty());
    client_record.wait_until("the connection", WAIT, |seen| !seen.is_empty());
    let reason = client.shutdown().unwrap();
    assert!(matches!(reason, DisconnectReason::LocalClose), "{reason}");
    assert_eq!(
        client_record.snapshot(),
        [Seen::Connected, Seen::Disconnected("closed locally".into())]
    );
    server_record.wait_until("the server's end", WAIT, ended);
    assert_eq!(server_record.disconnects(), ["peer closed the connection"]);
    let endpoint = server.endpoint().clone();
    server.stop();
    let tls = (s.net == Net::Tls).then(client_tls);
    let refused = runtime::connect_with(
        s.client,
        &endpoint,
        tls.as_ref(),
        Recorder::default(),
        SessionConfig::default(),
    );
    assert!(refused.is_err(), "connected where nothing listens");
}

/// A handler that panics ends only its connection, and is not called
/// again; a client whose handler panics reports it from `join`.
fn a_panicking_handler_ends_only_its_connection(s: Setup) {
    let server_record = Record::default();
    let mut handler = echoing(&server_record);
    handler.panic_on_boom = true;
    let server = serve(s, SessionConfig::default(), handler);
    let calm_record = Record::default();
    let calm = client_of(s, &server, &calm_record);
    assert_served(&calm, &calm_record, "one");

    let doomed_record = Record::default();
    let doomed = client_of(s, &server, &doomed_record);
    send_message(&doomed, "boom");
    doomed.join().unwrap();
    assert!(doomed_record.received().is_empty(), "no answer to boom");
    if s.net == Net::Tls {
        // The stream is dropped without close_notify.
        assert_eq!(doomed_record.disconnects().len(), 1);
    } else {
        assert_eq!(doomed_record.disconnects(), ["peer closed the connection"]);
    }

    assert_served(&calm, &calm_record, "two");
    let late_record = Record::default();
    let late = client_of(s, &server, &late_record);
    assert_served(&late, &late_record, "three");
    calm.close().unwrap();
    late.close().unwrap();
    server.stop();
    // The panicking handler is not called again: two disconnects, three
    // connections.
    let seen = server_record.snapshot();
    assert_eq!(connections(&seen), 3);
    assert_eq!(server_record.disconnects().len(), 2, "{seen:?}");
    let boom = seen
        .iter()
        .position(|seen| matches!(seen, Seen::Received(frame) if frame.message_text() == "boom"))
        .unwrap();
    assert_eq!(server_record.made(), 3);
    assert!(boom > 0);

    // On the client's side.
    let server_record = Record::default();
    let server = serve(s, SessionConfig::default(), echoing(&server_record));
    let client_record = Record::default();
    let mut handler = Recorder::new(&client_record);
    handler.panic_on_connect = true;
    let client = connect(s, &server, handler, SessionConfig::default());
    let error = client.join().unwrap_err().to_string();
    assert!(error.contains("panicked"), "{error}");
    assert!(error.contains("deliberate panic in connected"), "{error}");
    assert_eq!(client_record.snapshot(), [Seen::Connected]);
    server_record.wait_until("the server's end", WAIT, ended);
    if s.net == Net::Tls {
        // The stream is dropped without close_notify.
        assert_eq!(server_record.disconnects().len(), 1);
    } else {
        assert_eq!(server_record.disconnects(), ["peer closed the connection"]);
    }
    server.stop();
}

/// A flush the peer never reads ends at the close linger.
fn close_linger_ends_a_flush_the_peer_never_reads(s: Setup) {
    let server_record = Record::default();
    let mut handler = Recorder::new(&server_record);
    handler.greeting = vec![FrameBuilder::new(Status::DEFAULT)
        .file("big", vec![1u8; 16 << 20])
        .build()];
    handler.close_on_connect = true;
    let config = SessionConfig::default().close_linger(Duration::from_millis(300));
    let server = serve(s, config, handler);
    let started = Instant::now();
    // Connected, never read: the flush cannot finish.
    let stalled = raw(s, &server);
    server_record.wait_until("the linger to run out", WAIT, ended);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert_eq!(server_record.disconnects(), ["closed locally"]);
    drop(stalled);
    server.stop();
}

/// At the connection cap one more connection is accepted and closed at
/// once, never served; shutdown then ends the one served gracefully.
fn graceful_shutdown_at_the_cap(s: Setup) {
    let server_record = Record::default();
    let options = Options {
        max_connections: Some(1),
        ..Options::default()
    };
    let server = serve_options(s, options, echoing(&server_record));
    let first_record = Record::default();
    let first = client_of(s, &server, &first_record);
    assert_served(&first, &first_record, "first");

    let refused_record = Record::default();
    let tls = (s.net == Net::Tls).then(client_tls);
    // Over TLS the handshake fails; otherwise the connection ends at once.
    if let Ok(refused) = try_connect_to(s, &server, tls, &refused_record) {
        let _ = refused.sender().try_send(Frame::message("refused"));
        refused.join().unwrap();
        assert!(refused_record.received().is_empty());
    }
    server.stop();
    first.join().unwrap();
    assert_eq!(server_record.made(), 1);
    assert_eq!(texts(&server_record), ["first"]);
    assert_eq!(first_record.disconnects(), ["peer closed the connection"]);
    assert_eq!(first_record.snapshot().len(), 3);
}

// ---------------------------------------------------------------------------
// TLS.

/// A server of the default config with `options`.
fn serve_options(s: Setup, options: Options, handler: Recorder) -> TestServer {
    serve_with(s, SessionConfig::default(), options, handler)
}

/// A server's options over TLS that require a client certificate.
fn requiring_client_certificates() -> Options {
    Options {
        client_auth: true,
        ..Options::default()
    }
}

/// A required client certificate: a client presenting one is served.
fn a_client_certificate_when_required_and_presented_is_served(s: Setup) {
    let options = requiring_client_certificates();
    let server_record = Record::default();
    let server = serve_options(s, options, mirroring(&server_record));
    let client_record = Record::default();
    let client = try_connect_to(s, &server, Some(client_tls_with(true)), &client_record).unwrap();
    let sent = send_samples_mirrored(&client, &client_record);
    assert_eq!(client_record.received(), sent);
    client.close().unwrap();
    server.stop();
    assert_eq!(server_record.made(), 1);
    assert_eq!(server_record.received(), sent);
}

/// A required client certificate that is missing: refused before any
/// handler, while a client with one is served after it.
fn a_missing_client_certificate_reaches_no_handler(s: Setup) {
    let options = requiring_client_certificates();
    let server_record = Record::default();
    let server = serve_options(s, options, echoing(&server_record));
    let refused_record = Record::default();
    // TLS 1.3: the client may finish its side of the handshake before the
    // server refuses it; then its connection ends at the server's alert.
    match try_connect_to(s, &server, Some(client_tls()), &refused_record) {
        Err(error) => assert!(error.to_string().contains("TLS handshake"), "{error}"),
        Ok(client) => {
            let _ = client.sender().try_send(Frame::message("let me in"));
            client.join().unwrap();
            assert!(refused_record.received().is_empty(), "served");
            assert!(
                ended(&refused_record.snapshot()),
                "{:?}",
                refused_record.snapshot()
            );
        }
    }
    assert_eq!(server_record.made(), 0, "a handler for the refused client");
    let client_record = Record::default();
    let client = try_connect_to(s, &server, Some(client_tls_with(true)), &client_record).unwrap();
    assert_served(&client, &client_record, "mine");
    client.close().unwrap();
    server.stop();
    assert_eq!(server_record.made(), 1);
    assert_eq!(server_record.snapshot()[0], Seen::Connected);
}

/// A server certificate the client does not trust fails `connect` with a
/// one-line reason, before any callback on either side.
fn an_untrusted_server_certificate_fails_connect_with_the_reason(s: Setup) {
    let options = Options {
        cert: "other-server",
        ..Options::default()
    };
    let server_record = Record::default();
    let server = serve_options(s, options, echoing(&server_record));
    let client_record = Record::default();
    let error = try_connect_to(s, &server, Some(client_tls()), &client_record).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    let message = error.to_string();
    assert!(
        message.starts_with(
            "TLS handshake with localhost failed: the server's certificate is not trusted"
        ),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(client_record.snapshot().is_empty());
    server.stop();
    assert_eq!(server_record.made(), 0);
}

/// A plain client on a TLS port gets no frame through, nor a handler.
fn a_plain_client_on_a_tls_port_gets_no_frame_through(s: Setup) {
    let server_record = Record::default();
    let server = serve(s, SessionConfig::default(), echoing(&server_record));
    let client_record = Record::default();
    let client = try_connect_to(s, &server, None, &client_record).unwrap();
    let _ = client.sender().try_send(Frame::message("in the clear"));
    client.join().unwrap();
    assert!(client_record.received().is_empty());
    assert!(ended(&client_record.snapshot()));

    // Raw: a TEJ frame in the clear gets back no TEJ bytes, only (at
    // most) a TLS alert, then the end.
    let mut plain = raw_tcp(&server);
    plain
        .write_all(&Frame::message("plain").encode_to_vec().unwrap())
        .unwrap();
    let reply = until_closed(&mut plain);
    assert!(reply.is_empty() || reply[0] == 0x15, "{reply:?}");
    server.stop();
    assert_eq!(server_record.made(), 0, "a handler for a plain client");
}

/// A client sends close_notify when it closes.
fn a_client_sends_close_notify_on_close(s: Setup) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let raw_server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        let conn = rustls::ServerConnection::new(certs::server()).unwrap();
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        let mut got = Vec::new();
        // rustls reports a bare TCP end as UnexpectedEof.
        stream.read_to_end(&mut got).map(|_| got)
    });
    let client_record = Record::default();
    let client = runtime::connect_with(
        s.client,
        &Endpoint::Tcp(addr),
        Some(&client_tls()),
        Recorder::new(&client_record),
        SessionConfig::default(),
    )
    .unwrap();
    let frame = Frame::message("then close");
    client.sender().send_blocking(frame.clone()).unwrap();
    client.close().unwrap();
    let got = raw_server
        .join()
        .unwrap()
        .expect("no clean TLS close (close_notify missing)");
    assert_eq!(got, frame.encode_to_vec().unwrap());
    assert_eq!(
        client_record.snapshot(),
        [Seen::Connected, Seen::Disconnected("closed locally".into())]
    );
}

/// Garbage before the handshake closes that connection; others are served.
fn garbage_before_the_handshake_is_closed_and_the_server_serves_on(s: Setup) {
    let server_record = Record::default();
    let server = serve(s, SessionConfig::default(), echoing(&server_record));
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff\xfe garbage"[..],
        &[0xff; 300][..],
    ] {
        let mut stream = raw_tcp(&server);
        stream.write_all(garbage).unwrap();
        // An alert at most, then the end (or a reset).
        let rest = until_closed(&mut stream);
        assert!(rest.len() < 64, "{} bytes came back", rest.len());
    }
    assert_eq!(server_record.made(), 0);
    let client_record = Record::default();
    let client = client_of(s, &server, &client_record);
    assert_served(&client, &client_record, "ok");
    client.close().unwrap();
    server.stop();
    assert_eq!(
        server_record.made(),
        1,
        "only the TLS client gets a handler"
    );
}

/// Peers that stop in the handshake (in its first record, or after the
/// server's first flight) hold their slots under the cap until the
/// handshake timeout cuts them; others are served meanwhile, one more is
/// refused at the cap, and the freed slots serve again.
fn stalled_handshakes_are_cut_at_the_timeout_while_others_are_served(s: Setup) {
    let timeout = Duration::from_millis(800);
    let options = Options {
        max_connections: Some(3),
        ..Options::default()
    };
    let server_record = Record::default();
    let config = SessionConfig::default().handshake_timeout(timeout);
    let server = serve_with(s, config, options, echoing(&server_record));
    let started = Instant::now();
    // A handshake record announcing 512 bytes, then silence.
    let mut first_record = raw_tcp(&server);
    first_record
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
        .unwrap();
    // A ClientHello, the server's first flight read, then silence.
    let mut after_hello = {
        let tcp = raw_tcp(&server);
        let conn = rustls::ClientConnection::new(certs::client(), certs::localhost()).unwrap();
        rustls::StreamOwned::new(conn, tcp)
    };
    after_hello.conn.write_tls(&mut after_hello.sock).unwrap();
    let mut flight = [0u8; 16 * 1024];
    assert!(
        after_hello.sock.read(&mut flight).unwrap() > 0,
        "no ServerHello"
    );

    let client_record = Record::default();
    let client = client_of(s, &server, &client_record);
    assert_served(&client, &client_record, "fast");
    assert!(started.elapsed() < timeout, "too slow to tell");
    // Every slot is taken: one more is closed at once.
    let refused = try_connect(
        s,
        &server,
        Some(client_tls()),
        Recorder::default(),
        SessionConfig::default(),
    );
    assert!(refused.is_err(), "a connection beyond the cap was served");

    for rest in [
        until_closed(&mut first_record),
        until_closed(&mut after_hello.sock),
    ] {
        let cut = started.elapsed();
        assert!(
            cut >= timeout - Duration::from_millis(50),
            "cut after {cut:?}"
        );
        assert!(cut < timeout + Duration::from_secs(5), "cut after {cut:?}");
        assert!(rest.is_empty() || rest[0] == 0x15, "{rest:?}");
    }
    // The slots are free again; the first client stays served.
    let second_record = Record::default();
    let second = client_of(s, &server, &second_record);
    assert_served(&second, &second_record, "after the stall");
    assert_served(&client, &client_record, "still");
    client.close().unwrap();
    second.close().unwrap();
    server.stop();
    assert_eq!(server_record.made(), 2);
}

/// The server sends close_notify when a session ends: by shutdown, or by
/// its handler's `close`.
fn the_server_sends_close_notify_when_a_session_ends(s: Setup) {
    let server_record = Record::default();
    let server = serve(s, SessionConfig::default(), echoing(&server_record));
    let mut tls = raw(s, &server);
    tls.write_all(&Frame::message("echo me").encode_to_vec().unwrap())
        .unwrap();
    tls.flush().unwrap();
    server_record.wait_until("the frame", WAIT, |seen| seen.len() >= 2);
    let stopping = std::thread::spawn(move || server.stop());
    // A missing close_notify shows as an UnexpectedEof error here.
    tls.set_read_timeout(WAIT);
    let mut got = Vec::new();
    tls.read_to_end(&mut got)
        .expect("a clean TLS end (close_notify)");
    assert_eq!(
        got,
        Frame::message("echo: echo me").encode_to_vec().unwrap()
    );
    // The server's close waits for this side's end of stream.
    drop(tls);
    stopping.join().unwrap();

    let handler = Recorder {
        greeting: vec![Frame::message("bye")],
        close_on_connect: true,
        ..Recorder::default()
    };
    let server = serve(s, SessionConfig::default(), handler);
    let mut tls = raw(s, &server);
    tls.set_read_timeout(WAIT);
    let mut got = Vec::new();
    tls.read_to_end(&mut got)
        .expect("a clean TLS end (close_notify)");
    let mut assembler = Assembler::new(Limits::DEFAULT);
    let assembled = assembler.decode(&got).unwrap();
    assert_eq!(text(&assembled.frame.expect("one whole frame")), "bye");
    assert_eq!(assembled.consumed, got.len());
    drop(tls);
    server.stop();
}

/// Shutdown ends TLS sessions gracefully and cuts handshakes in progress.
fn shutdown_ends_tls_sessions_and_cuts_handshakes(s: Setup) {
    let (server_record, server, client_record, client) = pair(s, echoing);
    assert_served(&client, &client_record, "served");
    // Stalled before its ClientHello.
    let mut stalled = raw_tcp(&server);
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    server.stop();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server_record.disconnects(), ["closed locally"]);
    assert!(until_closed(&mut stalled).is_empty());
    client.join().unwrap();
    assert_eq!(client_record.disconnects(), ["peer closed the connection"]);
    assert_eq!(server_record.made(), 1);
}

// ---------------------------------------------------------------------------
// PROXY protocol: a balancer's headers before TEJ (or before TLS).

fn serve_proxied(s: Setup, handshake_timeout: Duration, record: &Record) -> TestServer {
    let options = Options {
        proxy_protocol: true,
        ..Options::default()
    };
    let config = SessionConfig::default().handshake_timeout(handshake_timeout);
    serve_with(s, config, options, mirroring(record))
}

/// A client behind the balancer (a PROXY v1 header first) is served; the
/// server stops with that one connection made, none of the others before.
fn assert_only_a_proxied_client_is_served(s: Setup, server: TestServer, record: &Record) {
    let mut tcp = raw_tcp(&server);
    tcp.write_all(&proxy::v1(proxy::client_address(), server.addr()))
        .unwrap();
    assert_eq!(round_trip(after_header(s, tcp)), through_the_balancer());
    server.stop();
    assert_eq!(record.made(), 1);
}

/// The server's one connection came from the balancer at `balancer` on
/// behalf of the PROXY header's client.
fn assert_one_client_behind(record: &Record, balancer: SocketAddr) {
    assert_eq!(
        record.addrs(),
        [(Some(proxy::client_address()), Some(balancer))]
    );
}

/// A frame with a file, as a balancer passes it on.
fn through_the_balancer() -> Frame {
    FrameBuilder::new(Status::DEFAULT)
        .file(
            "a.bin",
            (0..70_000u32).map(|i| i as u8).collect::<Vec<u8>>(),
        )
        .message("through the balancer")
        .build()
}

/// Over `tcp` (a header written already), the scenario's transport: TLS
/// or not.
fn after_header(s: Setup, tcp: TcpStream) -> Raw {
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    match s.net {
        Net::Tls => Raw::tls_over(tcp, certs::client()),
        _ => Raw::Tcp(tcp),
    }
}

/// Sends one frame over `stream` and reads it back.
fn round_trip(stream: Raw) -> Frame {
    let mut peer = Peer::over(stream, 64 * 1024);
    peer.send(&through_the_balancer());
    peer.recv().unwrap().expect("the frame back")
}

/// A v1 header names the peer; the balancer is the proxy.
fn proxy_v1_names_the_peer_and_the_balancer_is_the_proxy(s: Setup) {
    let record = Record::default();
    let server = serve_proxied(s, Duration::from_secs(5), &record);
    let mut tcp = raw_tcp(&server);
    let balancer = tcp.local_addr().unwrap();
    tcp.write_all(&proxy::v1(proxy::client_address(), server.addr()))
        .unwrap();
    assert_eq!(round_trip(after_header(s, tcp)), through_the_balancer());
    server.stop();
    assert_one_client_behind(&record, balancer);
}

/// A v2 header with the first frame in the same write (over TLS: right
/// before the handshake) loses no byte.
fn proxy_v2_with_the_first_bytes_in_the_same_write_loses_none(s: Setup) {
    let record = Record::default();
    let server = serve_proxied(s, Duration::from_secs(5), &record);
    let mut tcp = raw_tcp(&server);
    let balancer = tcp.local_addr().unwrap();
    let mut wire = proxy::v2(proxy::client_address(), server.addr(), false);
    let stream = if s.net == Net::Tls {
        tcp.write_all(&wire).unwrap();
        let mut stream = after_header(s, tcp);
        stream
            .write_all(&through_the_balancer().encode_to_vec().unwrap())
            .unwrap();
        stream
    } else {
        wire.extend_from_slice(&through_the_balancer().encode_to_vec().unwrap());
        tcp.write_all(&wire).unwrap();
        after_header(s, tcp)
    };
    assert_eq!(round_trip(stream), through_the_balancer());
    // Both frames reach the handler before the shutdown.
    record.wait_until("both frames", WAIT, |seen| seen.len() >= 3);
    server.stop();
    assert_eq!(record.received().len(), 2);
    assert_one_client_behind(&record, balancer);
}

/// A missing or invalid header is refused before any handler; the server
/// serves on.
fn proxy_a_missing_or_invalid_header_is_refused_before_any_handler(s: Setup) {
    let record = Record::default();
    let server = serve_proxied(s, Duration::from_secs(5), &record);
    let frame = through_the_balancer().encode_to_vec().unwrap();
    for preamble in proxy::invalid_preambles(&frame) {
        let mut tcp = raw_tcp(&server);
        tcp.write_all(&preamble).unwrap();
        assert!(until_closed(&mut tcp).is_empty());
    }
    if s.net == Net::Tls {
        // TLS without the header first is refused.
        assert!(Raw::try_tls_over(raw_tcp(&server), certs::client()).is_err());
    }
    assert_only_a_proxied_client_is_served(s, server, &record);
}

/// A stalled header is cut at the handshake timeout.
fn proxy_a_stalled_header_is_cut_at_the_handshake_timeout(s: Setup) {
    let record = Record::default();
    let server = serve_proxied(s, Duration::from_millis(300), &record);
    let mut tcp = raw_tcp(&server);
    let started = Instant::now();
    tcp.write_all(b"PROXY TCP4 192.0.2.1").unwrap();
    assert!(until_closed(&mut tcp).is_empty());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    server.stop();
    assert_eq!(record.made(), 0);
}

/// Health checks (a bare connect, a LOCAL header) are closed quietly
/// without a handler.
fn proxy_health_checks_are_closed_quietly_without_a_handler(s: Setup) {
    let record = Record::default();
    let server = serve_proxied(s, Duration::from_secs(5), &record);
    for _ in 0..3 {
        drop(raw_tcp(&server));
        let mut tcp = raw_tcp(&server);
        tcp.write_all(&proxy::v2(proxy::client_address(), server.addr(), true))
            .unwrap();
        assert!(until_closed(&mut tcp).is_empty());
    }
    assert_only_a_proxied_client_is_served(s, server, &record);
}

// ---------------------------------------------------------------------------
// The matrix.

/// What each side knows of the connection: the server's factory and its
/// `Connection::info` agree, the addresses cross (the server's peer is the
/// client's local address), the transport is named, and over TLS (a
/// client certificate presented) each side has the version, the cipher
/// suite, the SNI and the other's certificate chain.
fn connection_info_is_seen_by_the_factory_and_the_connection(s: Setup) {
    let options = Options {
        client_auth: s.net == Net::Tls,
        ..Options::default()
    };
    let server_record = Record::default();
    let (bind, _dir) = match s.net {
        Net::Tcp | Net::Tls => (SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into(), None),
        Net::Unix => {
            let dir = tempfile::tempdir().unwrap();
            (Endpoint::Unix(dir.path().join("tej.sock")), Some(dir))
        }
    };
    let server_options = ServerOptions {
        tls: (s.net == Net::Tls).then(|| certs::server_with(options.cert, options.client_auth)),
        ..ServerOptions::default()
    };
    let server = runtime::start_server_with(
        s.server,
        bind,
        SessionConfig::default(),
        server_options,
        echoing(&server_record).info_factory(),
    )
    .expect("server starts");
    let client_record = Record::default();
    let tls = (s.net == Net::Tls).then(|| client_tls_with(true));
    let client = runtime::connect_with(
        s.client,
        server.endpoint(),
        tls.as_ref(),
        Recorder::new(&client_record),
        SessionConfig::default(),
    )
    .expect("client connects");
    client.sender().send_blocking(numbered("info", 0)).unwrap();
    client_record.wait_until("the echo", WAIT, |seen| {
        seen.iter().any(|seen| matches!(seen, Seen::Received(_)))
    });
    client.close().unwrap();
    let server_addr = (s.net != Net::Unix).then(|| server.addr());
    server.stop();

    let made = server_record.factory_infos();
    let seen = server_record.infos();
    assert_eq!(made.len(), 1, "one handler made");
    assert_eq!(made, seen, "the factory and the connection see the same");
    let on_server = &seen[0];
    let on_client = &client_record.infos()[0];
    let (transport, name) = match s.net {
        Net::Tcp => (Transport::Tcp, "tcp"),
        Net::Unix => (Transport::Unix, "unix"),
        Net::Tls => (Transport::Tcp, "tls-over-tcp"),
    };
    for info in [on_server, on_client] {
        assert_eq!(info.transport, transport, "{info:?}");
        assert_eq!(info.transport_name(), name);
        assert_eq!(info.proxy, None);
    }
    if s.net == Net::Unix {
        assert_eq!((on_server.local, on_server.peer), (None, None));
    } else {
        assert_eq!(on_server.local, server_addr);
        assert_eq!(on_client.peer, server_addr);
        assert!(on_client.local.is_some());
        assert_eq!(on_server.peer, on_client.local, "the addresses cross");
    }
    match (&on_server.tls, &on_client.tls) {
        (None, None) => assert_ne!(s.net, Net::Tls),
        (Some(server_tls), Some(client_tls)) => {
            for tls in [server_tls, client_tls] {
                assert_eq!(tls.version, "TLSv1.3");
                assert!(tls.cipher.starts_with("TLS13_"), "{tls:?}");
                assert_eq!(tls.sni.as_deref(), Some("localhost"));
                assert_eq!(tls.alpn, None);
            }
            assert_eq!(server_tls.cipher, client_tls.cipher);
            let der = |name: &str| -> Vec<Vec<u8>> {
                certs::certs(name)
                    .iter()
                    .map(|c| c.as_ref().to_vec())
                    .collect()
            };
            assert_eq!(server_tls.peer_certificates, der("client.pem"));
            assert_eq!(client_tls.peer_certificates, der("server.pem"));
        }
        other => panic!("TLS on one side only: {other:?}"),
    }
}

use tej_test_support::{harness, matrix};

fn main() -> std::process::ExitCode {
    harness::run(vec![
        ("both_sides", both_sides::cases()),
        ("server_side", server_side::cases()),
        ("server_side::plain", server_side::plain::cases()),
        ("tls_both_sides", tls_both_sides::cases()),
        ("tls_server_side", tls_server_side::cases()),
        ("proxy_protocol", proxy_protocol::cases()),
    ])
}

/// The cross-runtime pairs (server, client) over TCP, besides each
/// runtime serving itself.
const TCP_PAIRS: &[(Runtime, Runtime)] = &[
    (AsyncStd, Tokio),
    (Tokio, AsyncStd),
    (Mio, Tokio),
    (AsyncStd, Mio),
    (Smol, Mio),
    (Tokio, Smol),
];
/// The same over TLS: each runtime a server and a client once.
const TLS_PAIRS: &[(Runtime, Runtime)] = &[
    (Tokio, Mio),
    (Mio, AsyncStd),
    (AsyncStd, Smol),
    (Smol, Tokio),
];

/// Both sides: every runtime, cross-runtime pairs, every transport.
mod both_sides {
    use super::*;

    matrix! {
        [
            callback_order,
            ping,
            full_duplex,
            senders_on_other_threads,
            files_both_ways,
            backpressure_with_a_slow_reader,
            idle_timeout,
            graceful_shutdown,
            graceful_shutdown_at_the_cap,
            malformed_frame_closes_only_that_connection,
            large_file_to_disk,
            dropping_a_client_closes_it_after_what_is_queued,
            a_detached_client_runs_on,
            client_shutdown_and_connect_error,
            a_panicking_handler_ends_only_its_connection,
            connection_info_is_seen_by_the_factory_and_the_connection,
        ]
        runtimes_and_pairs("", Net::Tcp, TCP_PAIRS),
        runtimes_and_pairs("unix_", Net::Unix, &[(Mio, Smol)]),
        runtimes_and_pairs("tls_", Net::Tls, TLS_PAIRS),
    }
}

/// A server alone, against raw peers: every runtime, every transport.
mod server_side {
    use super::*;

    matrix! {
        [close_linger_ends_a_flush_the_peer_never_reads]
        same_runtime("", Net::Tcp),
        same_runtime("unix_", Net::Unix),
        same_runtime("tls_", Net::Tls),
    }

    /// A raw peer writing from one thread while it reads on another: TCP
    /// and Unix sockets.
    pub(super) mod plain {
        use super::*;

        matrix! {
            [pipelined_frames_arrive_whole_and_in_order]
            same_runtime("", Net::Tcp),
            same_runtime("unix_", Net::Unix),
        }
    }
}

/// TLS, both sides: client certificates, untrusted servers, plain
/// clients, close_notify from the client.
mod tls_both_sides {
    use super::*;

    matrix! {
        [
            a_client_certificate_when_required_and_presented_is_served,
            a_missing_client_certificate_reaches_no_handler,
            an_untrusted_server_certificate_fails_connect_with_the_reason,
            a_plain_client_on_a_tls_port_gets_no_frame_through,
            a_client_sends_close_notify_on_close,
        ]
        runtimes_and_pairs("", Net::Tls, TLS_PAIRS),
    }
}

/// TLS, a server against raw peers: garbage, stalled handshakes,
/// close_notify, shutdown in the middle of handshakes.
mod tls_server_side {
    use super::*;

    matrix! {
        [
            garbage_before_the_handshake_is_closed_and_the_server_serves_on,
            stalled_handshakes_are_cut_at_the_timeout_while_others_are_served,
            the_server_sends_close_notify_when_a_session_ends,
            shutdown_ends_tls_sessions_and_cuts_handshakes,
            a_64_mib_file_round_trips_both_ways,
        ]
        same_runtime("", Net::Tls),
    }
}

/// The PROXY protocol: every runtime, plain and under TLS.
mod proxy_protocol {
    use super::*;

    matrix! {
        [
            proxy_v1_names_the_peer_and_the_balancer_is_the_proxy,
            proxy_v2_with_the_first_bytes_in_the_same_write_loses_none,
            proxy_a_missing_or_invalid_header_is_refused_before_any_handler,
            proxy_a_stalled_header_is_cut_at_the_handshake_timeout,
            proxy_health_checks_are_closed_quietly_without_a_handler,
        ]
        same_runtime("", Net::Tcp),
        same_runtime("tls_", Net::Tls),
    }
}
