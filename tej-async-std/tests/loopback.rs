//! tej-async-std over real loopback sockets on async-std: server, client, sender.
#![cfg(feature = "async-std")]

mod common;

use std::future::Future;
use std::time::Duration;

use async_std::io::{ReadExt, WriteExt};
use async_std::net::TcpStream;
use async_std::task;
use common::{
    wait_until, Collect, Echo, Events, PanicOnConnect, PerConnection, TEST_LIMIT, WAIT_LIMIT,
};
use tej_async_std::{
    Client, Connection, DisconnectReason, FileTarget, Frame, FrameBuilder, Handler, Server,
    SessionConfig, Status,
};

/// Runs one test on async-std, failing it if it takes longer than [`TEST_LIMIT`].
fn run(test: impl Future<Output = ()>) {
    task::block_on(async_std::future::timeout(TEST_LIMIT, test)).expect("the test timed out");
}

/// Awaits `future`, failing if it takes longer than [`WAIT_LIMIT`].
async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    match async_std::future::timeout(WAIT_LIMIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// An [`Echo`] that also records each file's header as it arrives.
struct EchoFiles(Echo);

impl Handler for EchoFiles {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        self.0.connected(conn);
    }
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        self.0.received(conn, frame);
    }
    fn ping_received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        self.0.ping_received(conn, frame);
    }
    fn disconnected(&mut self, reason: DisconnectReason) {
        self.0.disconnected(reason);
    }
    fn file_target(&mut self, name: &str, size: u64, _index: usize) -> FileTarget {
        self.0 .0.push(format!("file {name} {size}"));
        FileTarget::Memory
    }
}

#[test]
fn client_and_server_exchange_frames_in_order() {
    run(async {
        let server = Server::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        let shutdown = server.shutdown_handle();
        let server_events = Events::default();
        let serving = task::spawn(server.serve({
            let events = server_events.clone();
            move || Echo(events.clone())
        }));

        let client_events = Events::default();
        let client = Client::connect(addr, Collect(client_events.clone()))
            .await
            .unwrap();
        assert_eq!(client.peer_addr(), Some(addr));
        assert_eq!(client.local_addr().unwrap().ip(), addr.ip());
        let sender = client.sender();
        for i in 0..200 {
            let frame = FrameBuilder::new(Status::DEFAULT)
                .file("data.bin", vec![i as u8; i * 100])
                .message(format!("m{i}"))
                .build();
            sender.send(frame).await.unwrap();
        }
        sender.send(Frame::ping()).await.unwrap();
        wait_until("200 echoes", || client_events.len() >= 200).await;
        client.close();
        bounded("the client to end", client.join()).await.unwrap();
        wait_until("server disconnect", || server_events.ended()).await;

        let expected_echoes: Vec<String> = (0..200).map(|i| format!("echo: m{i}")).collect();
        let client_seen = client_events.snapshot();
        assert_eq!(client_seen[..200], expected_echoes[..]);
        assert_eq!(client_seen[200], "disconnected: closed locally");
        assert_eq!(client_seen.len(), 201);
        let server_seen = server_events.snapshot();
        assert_eq!(server_seen[0], "connected");
        assert_eq!(server_seen[1], "received m0 files=1");
        assert_eq!(server_seen[200], "received m199 files=1");
        assert_eq!(server_seen[201], "ping");
        assert_eq!(server_seen[202], "disconnected: peer closed the connection");
        assert_eq!(server_seen.len(), 203);

        assert!(!shutdown.is_shutdown());
        shutdown.shutdown();
        assert!(shutdown.is_shutdown());
        bounded("serve to return", serving).await;
    });
}

#[test]
fn idle_timeout_and_graceful_shutdown() {
    run(async {
        let server = Server::bind("127.0.0.1:0")
            .await
            .unwrap()
            .with_config(SessionConfig::default().idle_timeout(Some(Duration::from_millis(200))));
        let addr = server.local_addr().unwrap();
        let shutdown = server.shutdown_handle();
        let events = Events::default();
        let serving = task::spawn(server.serve({
            let events = events.clone();
            move || Echo(events.clone())
        }));
        let idle_events = Events::default();
        let idle = Client::connect(addr, Collect(idle_events.clone()))
            .await
            .unwrap();
        wait_until("idle timeout", || {
            events.contains("disconnected: idle timeout")
        })
        .await;
        bounded("the idle client to end", idle.join())
            .await
            .unwrap();
        assert_eq!(
            idle_events.snapshot(),
            vec!["disconnected: peer closed the connection".to_string()]
        );

        let busy_events = Events::default();
        let busy = Client::connect(addr, Collect(busy_events.clone()))
            .await
            .unwrap();
        busy.sender()
            .send(Frame::message("before shutdown"))
            .await
            .unwrap();
        wait_until("echo", || busy_events.len() > 0).await;
        shutdown.shutdown();
        bounded("serve to return", serving).await;
        bounded("the busy client to end", busy.join())
            .await
            .unwrap();
        assert_eq!(
            busy_events.snapshot(),
            vec![
                "echo: before shutdown".to_string(),
                "disconnected: peer closed the connection".to_string()
            ]
        );
        assert_eq!(
            events.snapshot(),
            vec![
                "connected",
                "disconnected: idle timeout",
                "connected",
                "received before shutdown files=0",
                "disconnected: closed locally",
            ]
        );
    });
}

#[test]
fn graceful_shutdown_finishes_the_frame_being_received() {
    run(async {
        let server = Server::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let shutdown = server.shutdown_handle();
        let events = Events::default();
        let mut serving = task::spawn(server.serve({
            let events = events.clone();
            move || EchoFiles(Echo(events.clone()))
        }));

        let wire = FrameBuilder::new(Status::DEFAULT)
            .file("half.bin", vec![7u8; 4000])
            .message("split")
            .build()
            .encode_to_vec()
            .unwrap();
        let (first, rest) = wire.split_at(wire.len() / 2);
        let mut peer = TcpStream::connect(addr).await.unwrap();
        peer.write_all(first).await.unwrap();
        // The server is inside the frame before it is told to stop.
        wait_until("the file header", || events.contains("file half.bin 4000")).await;
        shutdown.shutdown();

        // The connection waits for the rest of its frame, so serve goes on.
        let early = async_std::future::timeout(Duration::from_millis(300), &mut serving).await;
        assert!(early.is_err(), "serve returned with a frame half received");
        assert_eq!(events.snapshot(), vec!["connected", "file half.bin 4000"]);

        peer.write_all(rest).await.unwrap();
        let mut reply = Vec::new();
        bounded(
            "the echo and the end of the stream",
            peer.read_to_end(&mut reply),
        )
        .await
        .unwrap();
        assert_eq!(
            reply,
            Frame::message("echo: split").encode_to_vec().unwrap()
        );
        bounded("serve to return", serving).await;
        assert_eq!(
            events.snapshot(),
            vec![
                "connected",
                "file half.bin 4000",
                "received split files=1",
                "disconnected: closed locally"
            ]
        );
    });
}

#[test]
fn a_panicking_handler_ends_only_its_connection() {
    run(async {
        let server = Server::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let shutdown = server.shutdown_handle();
        let connections = PerConnection::default();
        let serving = task::spawn(server.serve({
            let connections = connections.clone();
            move || Echo(connections.next())
        }));

        let doomed_events = Events::default();
        let doomed = Client::connect(addr, Collect(doomed_events.clone()))
            .await
            .unwrap();
        doomed.sender().send(Frame::message("boom")).await.unwrap();
        bounded("the doomed client to end", doomed.join())
            .await
            .unwrap();
        assert_eq!(
            doomed_events.snapshot(),
            vec!["disconnected: peer closed the connection"]
        );
        // The handler that panicked is not called again.
        assert_eq!(
            connections.get(0).unwrap().snapshot(),
            vec!["connected", "received boom files=0"]
        );

        // The server goes on accepting.
        let events = Events::default();
        let client = Client::connect(addr, Collect(events.clone()))
            .await
            .unwrap();
        client.sender().send(Frame::message("after")).await.unwrap();
        wait_until("echo", || events.len() > 0).await;
        client.shutdown();
        bounded("the client to end", client.join()).await.unwrap();
        assert_eq!(
            events.snapshot(),
            vec!["echo: after", "disconnected: closed locally"]
        );
        wait_until("server disconnect", || {
            connections.get(1).is_some_and(|events| events.ended())
        })
        .await;
        shutdown.shutdown();
        bounded("serve to return", serving).await;
        assert_eq!(connections.count(), 2);
    });
}

#[test]
fn join_reports_a_client_handler_panic() {
    run(async {
        let listener = async_std::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap();
        let server = Server::from_listener(listener);
        let addr = server.local_addr().unwrap();
        let shutdown = server.shutdown_handle();
        let server_events = Events::default();
        let serving = task::spawn(server.serve({
            let events = server_events.clone();
            move || Echo(events.clone())
        }));

        let events = Events::default();
        let client = Client::connect(addr, PanicOnConnect(events.clone()))
            .await
            .unwrap();
        let error = bounded("the client to end", client.join())
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("deliberate panic in connected"),
            "{error}"
        );
        assert_eq!(events.snapshot(), vec!["connected"]);
        wait_until("server disconnect", || server_events.ended()).await;
        assert_eq!(
            server_events.snapshot(),
            vec!["connected", "disconnected: peer closed the connection"]
        );
        shutdown.shutdown();
        bounded("serve to return", serving).await;
    });
}
