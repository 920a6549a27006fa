//! What only tej-mio's own event loop does: resume reading by itself
//! after backpressure, a listener of the user's own, a user-made shutdown
//! signal waking an idle loop, its handles' auto traits, and its
//! `local_addr`/`local_path` on a Unix socket. The scenarios every runtime
//! shares are in the matrix (`tej-examples/tests/conformance.rs`).

use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tej_mio::{Client, Frame, FrameBuilder, Sender, Server, SessionConfig, ShutdownHandle, Status};
use tej_test_support::handlers::{Collect, Echo, Events, Mirror};
use tej_test_support::mio::{join, Running};
use tej_test_support::peer::{pattern, text, wait_until, Peer};

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
                .file("chunk", pattern(64_000, i))
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
    // Closed first: the server's close waits for the peer's end of stream.
    drop(peer);
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
fn a_unix_listener_has_a_path_and_no_socket_address() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tej.sock");
    let server = Server::bind_unix(&path).unwrap();
    assert_eq!(server.local_path().as_deref(), Some(path.as_path()));
    assert_eq!(
        server.local_addr().unwrap_err().kind(),
        io::ErrorKind::Unsupported
    );
}

#[test]
fn a_server_on_a_mio_listener_of_ones_own() {
    let listener = tej_mio::mio::net::TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::from_listener(listener).unwrap();
    assert_eq!(server.local_addr().unwrap(), addr);
    assert_eq!(server.local_path(), None);
    let shutdown = server.shutdown_handle();
    let thread = std::thread::spawn(move || server.run(|| Echo(Events::default())));
    let mut peer = Peer::connect(addr);
    peer.send(&Frame::message("own"));
    let frame = peer.recv().unwrap().unwrap();
    assert_eq!(text(&frame), "echo: own");
    drop(peer);
    shutdown.shutdown();
    wait_until("the server to stop", || thread.is_finished());
    thread.join().unwrap().unwrap();
}

#[test]
fn one_user_made_shutdown_handle_stops_a_server_at_once() {
    let shutdown = ShutdownHandle::new();
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .with_shutdown(shutdown.clone());
    assert!(!server.shutdown_handle().is_shutdown());
    let addr = server.local_addr().unwrap();
    let server_events = Events::default();
    let (done, finished) = mpsc::channel();
    std::thread::spawn({
        let events = server_events.clone();
        move || {
            let result = server.run(move || Echo(events.clone()));
            let _ = done.send(result);
        }
    });

    // An idle connection: no timer would wake the loop for a long while.
    let config = SessionConfig::default();
    let events = Events::default();
    let client = Client::connect_with(addr, Collect(events.clone()), config).unwrap();
    client.sender().send_blocking(Frame::message("hi")).unwrap();
    wait_until("the echo", || events.contains("echo: hi"));

    let started = Instant::now();
    let remote = shutdown.clone();
    std::thread::spawn(move || remote.shutdown());
    finished
        .recv_timeout(Duration::from_secs(5))
        .expect("the server did not stop")
        .unwrap();
    assert!(shutdown.is_shutdown());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(server_events
        .snapshot()
        .last()
        .is_some_and(|e| e.starts_with("disconnected")));
    join(client).unwrap();
    assert!(events
        .snapshot()
        .last()
        .is_some_and(|e| e.starts_with("disconnected")));
}
