//! tej-mio over transports other than plain TCP from `bind`: Unix sockets,
//! a listener given to `from_listener`, and a shutdown signal made by the
//! user.

mod support;

use std::io;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{join, wait_until, Collect, Echo, Events, Peer};
use tej_mio::{Client, Frame, FrameBuilder, Server, SessionConfig, ShutdownHandle, Status};

#[cfg(unix)]
#[test]
fn a_unix_socket_round_trip() {
    let dir = tempfile::Builder::new()
        .prefix("tej-mio-unix-")
        .tempdir()
        .unwrap();
    let path = dir.path().join("tej.sock");

    let server = Server::bind_unix(&path).unwrap();
    assert_eq!(server.local_path().as_deref(), Some(path.as_path()));
    assert_eq!(
        server.local_addr().unwrap_err().kind(),
        io::ErrorKind::Unsupported
    );
    let shutdown = server.shutdown_handle();
    let server_events = Events::default();
    let thread = std::thread::spawn({
        let events = server_events.clone();
        move || server.run(move || Echo(events.clone()))
    });

    let events = Events::default();
    let client =
        Client::connect_unix(&path, Collect(events.clone()), SessionConfig::default()).unwrap();
    assert_eq!(client.peer_addr(), None);
    assert_eq!(client.local_addr(), None);
    let sender = client.sender();
    for i in 0..50 {
        let frame = FrameBuilder::new(Status::DEFAULT)
            .file("f.bin", support::pattern(i * 1000, i as u64))
            .message(format!("u{i}"))
            .build();
        sender.send_blocking(frame).unwrap();
    }
    wait_until("50 echoes", || events.len() >= 50);
    client.close();
    join(client).unwrap();
    let expected: Vec<String> = (0..50).map(|i| format!("echo: u{i}")).collect();
    assert_eq!(events.snapshot()[..50], expected[..]);
    wait_until("the server's disconnect", || server_events.len() == 52);
    assert_eq!(server_events.snapshot()[1], "received u0 files=1");

    shutdown.shutdown();
    wait_until("the server to stop", || thread.is_finished());
    thread.join().unwrap().unwrap();
    dir.close().unwrap();
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
    assert_eq!(support::text(&frame), "echo: own");
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
