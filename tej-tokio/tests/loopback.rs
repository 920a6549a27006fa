//! tej-tokio over real loopback sockets: server, client, sender, codec.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tej_tokio::{
    Client, Connection, DisconnectReason, Frame, FrameBuilder, Handler, Server, SessionConfig,
    Status, TejCodec,
};
use tokio_util::codec::Framed;

#[derive(Default, Clone)]
struct Events(Arc<Mutex<Vec<String>>>);

impl Events {
    fn push(&self, event: String) {
        self.0.lock().unwrap().push(event);
    }
    fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Echoes each frame's message back with "echo: " in front.
struct Echo(Events);

impl Handler for Echo {
    fn connected(&mut self, _conn: &mut Connection<'_>) {
        self.0.push("connected".into());
    }
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        let message =
            String::from_utf8_lossy(frame.message.as_deref().unwrap_or_default()).into_owned();
        self.0
            .push(format!("received {message} files={}", frame.files.len()));
        conn.send(Frame::message(format!("echo: {message}")))
            .unwrap();
    }
    fn ping_received(&mut self, _conn: &mut Connection<'_>, _frame: Frame) {
        self.0.push("ping".into());
    }
    fn disconnected(&mut self, reason: DisconnectReason) {
        self.0.push(format!("disconnected: {reason}"));
    }
}

/// Collects every message it receives.
struct Collect(Events);

impl Handler for Collect {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.0.push(
            String::from_utf8_lossy(frame.message.as_deref().unwrap_or_default()).into_owned(),
        );
    }
    fn disconnected(&mut self, reason: DisconnectReason) {
        self.0.push(format!("disconnected: {reason}"));
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_and_server_exchange_frames_in_order() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    assert_ne!(addr.port(), 0);
    let shutdown = server.shutdown_handle();
    let server_events = Events::default();
    let serving = tokio::spawn(server.serve({
        let events = server_events.clone();
        move || Echo(events.clone())
    }));

    let client_events = Events::default();
    let client = Client::connect(addr, Collect(client_events.clone()))
        .await
        .unwrap();
    let sender = client.sender();
    for i in 0..200 {
        let frame = FrameBuilder::new(Status::DEFAULT)
            .file("data.bin", vec![i as u8; i * 100])
            .message(format!("m{i}"))
            .build();
        sender.send(frame).await.unwrap();
    }
    sender.send(Frame::ping()).await.unwrap();
    wait_until("200 echoes", || client_events.snapshot().len() >= 200).await;
    client.close();
    let reason = client.join().await.unwrap();
    assert!(matches!(reason, DisconnectReason::LocalClose), "{reason}");
    wait_until("server disconnect", || {
        server_events
            .snapshot()
            .last()
            .is_some_and(|event| event.starts_with("disconnected"))
    })
    .await;

    let expected_echoes: Vec<String> = (0..200).map(|i| format!("echo: m{i}")).collect();
    let client_seen = client_events.snapshot();
    assert_eq!(client_seen[..200], expected_echoes[..]);
    assert_eq!(client_seen[200], "disconnected: closed locally");
    let server_seen = server_events.snapshot();
    assert_eq!(server_seen[0], "connected");
    assert_eq!(server_seen[1], "received m0 files=1");
    assert_eq!(server_seen[200], "received m199 files=1");
    assert_eq!(server_seen[201], "ping");
    assert_eq!(server_seen[202], "disconnected: peer closed the connection");

    shutdown.shutdown();
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_talks_to_the_server() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = server.shutdown_handle();
    let events = Events::default();
    let serving = tokio::spawn(server.serve({
        let events = events.clone();
        move || Echo(events.clone())
    }));
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut framed = Framed::new(stream, TejCodec::default());
    framed.send(Frame::message("via codec")).await.unwrap();
    let reply = framed.next().await.unwrap().unwrap();
    assert_eq!(reply, Frame::message("echo: via codec"));
    // One `Encoder` impl: `feed` and `flush` need no turbofish.
    framed.feed(Frame::message("fed")).await.unwrap();
    framed.flush().await.unwrap();
    let reply = framed.next().await.unwrap().unwrap();
    assert_eq!(reply, Frame::message("echo: fed"));
    drop(framed);
    shutdown.shutdown();
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_and_graceful_shutdown() {
    let server = Server::bind("127.0.0.1:0")
        .await
        .unwrap()
        .with_config(SessionConfig::default().idle_timeout(Some(Duration::from_millis(200))));
    let addr = server.local_addr().unwrap();
    let shutdown = server.shutdown_handle();
    let events = Events::default();
    let serving = tokio::spawn(server.serve({
        let events = events.clone();
        move || Echo(events.clone())
    }));
    let idle = Client::connect(addr, Collect(Events::default()))
        .await
        .unwrap();
    wait_until("idle timeout", || {
        events
            .snapshot()
            .iter()
            .any(|e| e == "disconnected: idle timeout")
    })
    .await;
    let reason = idle.join().await.unwrap();
    assert!(matches!(reason, DisconnectReason::PeerClosed), "{reason}");
    assert!(reason.is_graceful());

    let busy_events = Events::default();
    let busy = Client::connect(addr, Collect(busy_events.clone()))
        .await
        .unwrap();
    busy.sender()
        .send(Frame::message("before shutdown"))
        .await
        .unwrap();
    wait_until("echo", || !busy_events.snapshot().is_empty()).await;
    shutdown.shutdown();
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .unwrap()
        .unwrap();
    busy.join().await.unwrap();
    assert_eq!(
        busy_events.snapshot(),
        vec![
            "echo: before shutdown".to_string(),
            "disconnected: peer closed the connection".to_string()
        ]
    );
}

/// Serves `Echo` on a free port: its address, shutdown handle, task and events.
async fn echo_server() -> (
    std::net::SocketAddr,
    tej_tokio::ShutdownHandle,
    tokio::task::JoinHandle<()>,
    Events,
) {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = server.shutdown_handle();
    let events = Events::default();
    let serving = tokio::spawn(server.serve({
        let events = events.clone();
        move || Echo(events.clone())
    }));
    (addr, shutdown, serving, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_client_closes_it_after_what_is_queued() {
    // A server that answers nothing: a peer still sending when this side
    // closes would see its close as a reset.
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = server.shutdown_handle();
    let server_events = Events::default();
    let serving = tokio::spawn(server.serve({
        let events = server_events.clone();
        move || Collect(events.clone())
    }));
    let client_events = Events::default();
    // Room for every frame, so that they are all queued at once.
    let config = SessionConfig::default().send_queue_capacity(8 << 20);
    let client = Client::connect_with(addr, Collect(client_events.clone()), config)
        .await
        .unwrap();
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
    })
    .await;
    let mut expected: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    expected.push("disconnected: peer closed the connection".into());
    assert_eq!(server_events.snapshot(), expected);
    wait_until("the client to end", || {
        client_events
            .snapshot()
            .last()
            .is_some_and(|event| event.starts_with("disconnected"))
    })
    .await;
    assert_eq!(client_events.snapshot(), ["disconnected: closed locally"]);
    assert!(sender.is_closed());
    shutdown.shutdown();
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_client_runs_on_until_closed() {
    let (addr, shutdown, serving, server_events) = echo_server().await;
    let client_events = Events::default();
    let client = Client::connect(addr, Collect(client_events.clone()))
        .await
        .unwrap();
    let sender = client.detach();
    sender.send(Frame::message("after detach")).await.unwrap();
    wait_until("the echo", || {
        client_events.snapshot() == ["echo: after detach".to_string()]
    })
    .await;
    assert!(!sender.is_closed());
    sender.close();
    wait_until("the server to see the end", || {
        server_events
            .snapshot()
            .last()
            .is_some_and(|event| event == "disconnected: peer closed the connection")
    })
    .await;
    shutdown.shutdown();
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .unwrap()
        .unwrap();
}
