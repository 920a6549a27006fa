//! tej-mio over real loopback sockets: the tej-tokio scenarios, plus
//! cross-thread senders, panics, backpressure and graceful shutdown.

mod support;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use support::{join, text, wait_until, Collect, Echo, Events, Mirror, Peer, Running};
use tej_mio::{
    Client, Connection, DisconnectReason, Frame, FrameBuilder, Handler, Sender, SessionConfig,
    Status,
};

#[test]
fn client_and_server_exchange_frames_in_order() {
    let server_events = Events::default();
    let server = Running::start(SessionConfig::default(), {
        let events = server_events.clone();
        move || Echo(events.clone())
    });

    let client_events = Events::default();
    let client = Client::connect(server.addr, Collect(client_events.clone())).unwrap();
    assert_eq!(client.peer_addr(), Some(server.addr));
    assert_eq!(client.local_addr().map(|a| a.ip()), Some(server.addr.ip()));
    let sender = client.sender();
    for i in 0..200 {
        let frame = FrameBuilder::new(Status::DEFAULT)
            .file("data.bin", vec![i as u8; i * 100])
            .message(format!("m{i}"))
            .build();
        sender.send_blocking(frame).unwrap();
    }
    sender.send_blocking(Frame::ping()).unwrap();
    wait_until("200 echoes", || client_events.len() >= 200);
    client.close();
    let reason = join(client).unwrap();
    assert!(matches!(reason, DisconnectReason::LocalClose), "{reason}");
    wait_until("server disconnect", || {
        server_events
            .snapshot()
            .last()
            .is_some_and(|event| event.starts_with("disconnected"))
    });

    let expected_echoes: Vec<String> = (0..200).map(|i| format!("echo: m{i}")).collect();
    let client_seen = client_events.snapshot();
    assert_eq!(client_seen[..200], expected_echoes[..]);
    assert_eq!(client_seen[200], "disconnected: closed locally");
    assert_eq!(client_seen.len(), 201);
    let server_seen = server_events.snapshot();
    assert_eq!(server_seen[0], "connected");
    for i in 0..200 {
        assert_eq!(server_seen[1 + i], format!("received m{i} files=1"));
    }
    assert_eq!(server_seen[201], "ping");
    assert_eq!(server_seen[202], "disconnected: peer closed the connection");
    assert_eq!(server_seen.len(), 203);
    assert!(sender.is_closed());

    server.stop();
}

#[test]
fn files_arrive_whole_and_in_order() {
    let server = Running::start(SessionConfig::default(), || Mirror);
    let mut peer = Peer::connect(server.addr);
    let frames: Vec<Frame> = (0..200)
        .map(|i| {
            // Any status but 2, which is a ping and not mirrored.
            let status = if i % 128 == 2 { 127 } else { i % 128 };
            FrameBuilder::new(Status::new(status as u8).unwrap())
                .file(format!("a{i}.bin"), support::pattern(i * 97, i as u64))
                .file("é.txt", vec![i as u8; 5000 + i])
                .message(format!("frame {i}"))
                .build()
        })
        .collect();
    // Write everything first, then read: the server must buffer and keep order.
    let writer = {
        let frames = frames.clone();
        let mut stream = peer.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            for frame in &frames {
                stream.write_all(&frame.encode_to_vec().unwrap()).unwrap();
            }
        })
    };
    for expected in &frames {
        assert_eq!(&peer.recv().unwrap().expect("a frame"), expected);
    }
    writer.join().unwrap();
    server.stop();
}

#[test]
fn pings_both_ways() {
    // The client pings the server every 20 ms; the server pings the client too.
    let server_events = Events::default();
    let server = Running::start(
        SessionConfig::default().ping_interval(Some(Duration::from_millis(20))),
        {
            let events = server_events.clone();
            move || Echo(events.clone())
        },
    );
    let client_events = Events::default();
    let client = Client::connect_with(
        server.addr,
        Collect(client_events.clone()),
        SessionConfig::default().ping_interval(Some(Duration::from_millis(20))),
    )
    .unwrap();
    // An explicit ping from the sender, too.
    client.sender().send_blocking(Frame::ping()).unwrap();
    wait_until("pings at the server", || {
        server_events
            .snapshot()
            .iter()
            .filter(|e| *e == "ping")
            .count()
            >= 4
    });
    wait_until("pings at the client", || {
        client_events
            .snapshot()
            .iter()
            .filter(|e| *e == "ping")
            .count()
            >= 3
    });
    client.close();
    join(client).unwrap();
    server.stop();
}

#[test]
fn idle_timeout_and_graceful_shutdown() {
    let events = Events::default();
    let server = Running::start(
        SessionConfig::default().idle_timeout(Some(Duration::from_millis(200))),
        {
            let events = events.clone();
            move || Echo(events.clone())
        },
    );
    let idle = Client::connect(server.addr, Collect(Events::default())).unwrap();
    wait_until("idle timeout", || {
        events.contains("disconnected: idle timeout")
    });
    let reason = join(idle).unwrap();
    assert!(matches!(reason, DisconnectReason::PeerClosed), "{reason}");
    assert!(reason.is_graceful());

    let busy_events = Events::default();
    let busy = Client::connect(server.addr, Collect(busy_events.clone())).unwrap();
    busy.sender()
        .send_blocking(Frame::message("before shutdown"))
        .unwrap();
    wait_until("echo", || busy_events.len() > 0);
    server.stop();
    join(busy).unwrap();
    assert_eq!(
        busy_events.snapshot(),
        vec![
            "echo: before shutdown".to_string(),
            "disconnected: peer closed the connection".to_string()
        ]
    );
}

#[test]
fn graceful_shutdown_finishes_the_frame_being_received() {
    let events = Events::default();
    let server = Running::start(SessionConfig::default(), {
        let events = events.clone();
        move || Echo(events.clone())
    });
    let mut peer = Peer::connect(server.addr);
    let wire = FrameBuilder::new(Status::DEFAULT)
        .file("big.bin", support::pattern(200_000, 7))
        .message("late")
        .build()
        .encode_to_vec()
        .unwrap();
    let (head, tail) = wire.split_at(wire.len() / 2);
    peer.stream.write_all(head).unwrap();
    wait_until("the connection", || events.contains("connected"));
    std::thread::sleep(Duration::from_millis(100));

    server.shutdown.shutdown();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !server.is_finished(),
        "the server stopped in the middle of a frame"
    );
    peer.stream.write_all(tail).unwrap();
    let echo = peer.recv().unwrap().expect("the echo");
    assert_eq!(text(&echo), "echo: late");
    assert!(peer.recv().unwrap().is_none(), "the server closes after it");
    server.wait();
    assert_eq!(
        events.snapshot(),
        vec![
            "connected".to_string(),
            "received late files=1".to_string(),
            "disconnected: closed locally".to_string()
        ]
    );
}

#[test]
fn client_shutdown_and_connect_error() {
    let events = Events::default();
    let server = Running::start(SessionConfig::default(), {
        let events = events.clone();
        move || Echo(events.clone())
    });
    let client_events = Events::default();
    let client = Client::connect(server.addr, Collect(client_events.clone())).unwrap();
    wait_until("the connection", || events.contains("connected"));
    client.shutdown();
    join(client).unwrap();
    assert_eq!(
        client_events.snapshot(),
        vec!["disconnected: closed locally"]
    );
    wait_until("server side closed", || {
        events.contains("disconnected: peer closed the connection")
    });
    let addr = server.addr;
    server.stop();
    // Nothing listens there any more.
    assert!(Client::connect(addr, Collect(Events::default())).is_err());
}

#[test]
fn protocol_error_closes_only_that_connection() {
    let events = Events::default();
    let server = Running::start(SessionConfig::default(), {
        let events = events.clone();
        move || Echo(events.clone())
    });
    let mut good = Peer::connect(server.addr);
    let mut bad = Peer::connect(server.addr);
    // Status bit clear: a protocol error.
    bad.stream
        .write_all(&[0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    assert!(bad.recv().unwrap().is_none());
    wait_until("protocol error", || {
        events
            .snapshot()
            .iter()
            .any(|e| e.starts_with("disconnected: protocol error"))
    });
    good.send(&Frame::message("still here"));
    assert_eq!(text(&good.recv().unwrap().unwrap()), "echo: still here");
    drop(good);
    server.stop();
}

/// Echoes, but panics on "boom".
struct Fragile(Events);

impl Handler for Fragile {
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        let message = text(&frame);
        assert_ne!(message, "boom", "asked to panic");
        conn.send(Frame::message(format!("echo: {message}")))
            .unwrap();
    }
    fn disconnected(&mut self, reason: DisconnectReason) {
        self.0.push(format!("disconnected: {reason}"));
    }
}

#[test]
fn a_panicking_handler_ends_only_its_connection() {
    let events = Events::default();
    let server = Running::start(SessionConfig::default(), {
        let events = events.clone();
        move || Fragile(events.clone())
    });
    let mut calm = Peer::connect(server.addr);
    let mut doomed = Peer::connect(server.addr);
    calm.send(&Frame::message("one"));
    assert_eq!(text(&calm.recv().unwrap().unwrap()), "echo: one");

    doomed.send(&Frame::message("boom"));
    // Closed without a frame (a reset is fine too).
    assert!(!matches!(doomed.recv(), Ok(Some(_))));

    calm.send(&Frame::message("two"));
    assert_eq!(text(&calm.recv().unwrap().unwrap()), "echo: two");
    let mut late = Peer::connect(server.addr);
    late.send(&Frame::message("three"));
    assert_eq!(text(&late.recv().unwrap().unwrap()), "echo: three");
    // The panicking handler is not called again.
    assert!(events.snapshot().is_empty());
    drop((calm, late));
    server.stop();

    // A client whose handler panics reports it from `join`.
    let server = Running::start(SessionConfig::default(), || Mirror);
    let client = Client::connect(server.addr, Fragile(Events::default())).unwrap();
    client
        .sender()
        .send_blocking(Frame::message("boom"))
        .unwrap();
    let error = join(client).unwrap_err();
    assert!(error.to_string().contains("panicked"), "{error}");
    server.stop();
}

/// Hands its connection's sender to the test, then collects messages.
struct Handover(mpsc::Sender<Sender>, Events);

impl Handler for Handover {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        self.0.send(conn.sender()).unwrap();
    }
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.1.push(text(&frame));
    }
}

#[test]
fn senders_on_other_threads_wake_the_loop() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 250;
    let (senders, handed) = mpsc::channel();
    let server_events = Events::default();
    // A small queue: senders block on it and the loop must keep draining.
    let server = Running::start(SessionConfig::default().send_queue_capacity(4096), {
        let events = server_events.clone();
        move || Handover(senders.clone(), events.clone())
    });
    let client_events = Events::default();
    let client = Client::connect_with(
        server.addr,
        Collect(client_events.clone()),
        SessionConfig::default().send_queue_capacity(4096),
    )
    .unwrap();
    let server_sender = handed.recv_timeout(support::PATIENCE).unwrap();

    // Client to server, from several threads at once.
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
    // Server to client, from yet another thread.
    let pusher = std::thread::spawn(move || {
        for i in 0..300 {
            server_sender
                .send_blocking(Frame::message(format!("s{i}")))
                .unwrap();
        }
        server_sender
    });
    for thread in threads {
        thread.join().unwrap();
    }
    let server_sender = pusher.join().unwrap();
    wait_until("all client frames", || {
        server_events.len() == THREADS * PER_THREAD
    });
    wait_until("all server frames", || client_events.len() == 300);

    let seen = server_events.snapshot();
    for t in 0..THREADS {
        let order: Vec<usize> = seen
            .iter()
            .filter_map(|m| m.strip_prefix(&format!("t{t}-")))
            .map(|i| i.parse().unwrap())
            .collect();
        assert_eq!(order, (0..PER_THREAD).collect::<Vec<_>>(), "thread {t}");
    }
    let expected: Vec<String> = (0..300).map(|i| format!("s{i}")).collect();
    assert_eq!(client_events.snapshot(), expected);

    // Closing through the server's sender, from this thread.
    server_sender.close();
    join(client).unwrap();
    assert_eq!(
        client_events.snapshot().last().unwrap(),
        "disconnected: peer closed the connection"
    );
    server.stop();
}

#[test]
fn reading_resumes_after_backpressure_without_a_new_event() {
    // The server stops reading while 64 KiB wait to be written. The peer
    // writes everything before it reads anything: once its last bytes sit in
    // the server's socket, no new readable event comes for them, so the
    // server must resume reading by itself as its writes drain (the driver
    // does it in the same turn; a re-registration would also report them).
    let server = Running::start(
        SessionConfig::default()
            .outbox_high_water(64 * 1024)
            .read_buffer_len(16 * 1024),
        || Mirror,
    );
    let mut peer = Peer::connect(server.addr);
    let frames: Vec<Frame> = (0..400)
        .map(|i| {
            FrameBuilder::new(Status::DEFAULT)
                .file("chunk", support::pattern(64_000, i))
                .message(format!("{i}"))
                .build()
        })
        .collect();
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let frames = frames.clone();
        let written = Arc::clone(&written);
        let mut stream = peer.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            for frame in &frames {
                stream.write_all(&frame.encode_to_vec().unwrap()).unwrap();
                written.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        written.load(Ordering::SeqCst) < frames.len(),
        "buffers too large for this test to block the writer"
    );
    for expected in &frames {
        assert_eq!(&peer.recv().unwrap().expect("an echo"), expected);
    }
    writer.join().unwrap();
    server.stop();
}

/// Sends a large frame and closes at once.
struct SendAndClose(Events);

impl Handler for SendAndClose {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        conn.send(
            FrameBuilder::new(Status::DEFAULT)
                .file("big", vec![1u8; 16 << 20])
                .build(),
        )
        .unwrap();
        conn.close();
    }
    fn disconnected(&mut self, reason: DisconnectReason) {
        self.0.push(format!("disconnected: {reason}"));
    }
}

#[test]
fn close_linger_ends_a_flush_the_peer_never_reads() {
    let events = Events::default();
    let server = Running::start(
        SessionConfig::default().close_linger(Duration::from_millis(300)),
        {
            let events = events.clone();
            move || SendAndClose(events.clone())
        },
    );
    let started = std::time::Instant::now();
    // Connected, never read: the flush cannot finish.
    let stalled = std::net::TcpStream::connect(server.addr).unwrap();
    wait_until("the linger to run out", || events.len() == 1);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert_eq!(events.snapshot(), vec!["disconnected: closed locally"]);
    drop(stalled);
    server.stop();
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<tej_mio::ShutdownHandle>();
    send_sync::<Sender>();
    send_sync::<Client>();
    send::<tej_mio::Server>();
    send::<tej_mio::Driver<Echo>>();
}

#[test]
fn dropping_a_client_closes_it_after_what_is_queued() {
    let server_events = Events::default();
    let server = Running::start(SessionConfig::default(), {
        let events = server_events.clone();
        // A server that answers nothing: a peer still sending when this
        // side closes would see its close as a reset.
        move || Collect(events.clone())
    });
    let client_events = Events::default();
    // Room for every frame, so that they are all queued at once.
    let config = SessionConfig::default().send_queue_capacity(8 << 20);
    let client = Client::connect_with(server.addr, Collect(client_events.clone()), config).unwrap();
    let sender = client.sender();
    for i in 0..40 {
        let frame = FrameBuilder::new(Status::DEFAULT)
            .file("data.bin", vec![i as u8; 64 * 1024])
            .message(format!("m{i}"))
            .build();
        sender.try_send(frame).unwrap();
    }
    drop(client);
    // A sender taken before does not keep the connection open.
    wait_until("the server to see the end", || {
        server_events
            .snapshot()
            .last()
            .is_some_and(|event| event.starts_with("disconnected"))
    });
    let mut expected: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    expected.push("disconnected: peer closed the connection".into());
    assert_eq!(server_events.snapshot(), expected);
    wait_until("the client to end", || {
        client_events
            .snapshot()
            .last()
            .is_some_and(|event| event.starts_with("disconnected"))
    });
    assert_eq!(client_events.snapshot(), ["disconnected: closed locally"]);
    assert!(sender.is_closed());
    server.stop();
}

#[test]
fn a_detached_client_runs_on_until_closed() {
    let server_events = Events::default();
    let server = Running::start(SessionConfig::default(), {
        let events = server_events.clone();
        move || Echo(events.clone())
    });
    let client_events = Events::default();
    let client = Client::connect(server.addr, Collect(client_events.clone())).unwrap();
    let sender = client.detach();
    sender
        .send_blocking(Frame::message("after detach"))
        .unwrap();
    wait_until("the echo", || client_events.contains("echo: after detach"));
    assert!(!sender.is_closed());
    sender.close();
    wait_until("the server to see the end", || {
        server_events.contains("disconnected: peer closed the connection")
    });
    server.stop();
}
