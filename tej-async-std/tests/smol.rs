//! The same driver on smol alone: `run_session` over smol's `TcpStream` and
//! `Async<std::net::TcpStream>`, on smol's executor, with no async-std in sight.

use std::future::Future;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use smol::{future, Async, Task, Timer};
use tej_async_std::tej_core::Session;
use tej_async_std::{
    run_session, DisconnectReason, Frame, FrameBuilder, Sender, SessionConfig, ShutdownHandle,
    Status,
};
use tej_test_support::handlers::{Collect, Echo, Events, PerConnection};
use tej_test_support::peer::{eventually as wait_until, within as bounded};

/// How long a whole test may take.
const TEST_LIMIT: Duration = Duration::from_secs(60);

/// Runs one test on smol, failing it if it takes longer than [`TEST_LIMIT`].
fn run(test: impl Future<Output = ()>) {
    smol::block_on(future::or(test, async {
        Timer::after(TEST_LIMIT).await;
        panic!("the test timed out");
    }));
}

/// A hand-rolled server on smol: accepts on `Async<TcpListener>`, runs each
/// connection with `run_session` over `Async<TcpStream>` in a smol task.
/// Returns once shut down and every connection has ended.
async fn smol_server(
    listener: Async<TcpListener>,
    config: SessionConfig,
    shutdown: ShutdownHandle,
    connections: PerConnection,
) {
    let mut tasks: Vec<Task<DisconnectReason>> = Vec::new();
    loop {
        let stop = async {
            shutdown.wait().await;
            None
        };
        let accept = async { Some(listener.accept().await) };
        let Some(accepted) = future::or(stop, accept).await else {
            break;
        };
        let (stream, peer) = accepted.unwrap();
        stream.get_ref().set_nodelay(true).unwrap();
        let session = Session::new(Echo(connections.next()), config.clone()).with_peer(peer);
        tasks.push(smol::spawn(run_session(stream, session, shutdown.clone())));
    }
    for task in tasks {
        task.await;
    }
}

/// A [`smol_server`] on a free loopback port, in a smol task.
struct SmolServer {
    addr: SocketAddr,
    shutdown: ShutdownHandle,
    /// The events of each connection, in accept order.
    connections: PerConnection,
    serving: Task<()>,
}

impl SmolServer {
    fn start(config: SessionConfig) -> SmolServer {
        let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
        let addr = listener.get_ref().local_addr().unwrap();
        let shutdown = ShutdownHandle::new();
        let connections = PerConnection::default();
        let serving = smol::spawn(smol_server(
            listener,
            config,
            shutdown.clone(),
            connections.clone(),
        ));
        SmolServer {
            addr,
            shutdown,
            connections,
            serving,
        }
    }

    /// Shuts the server down and waits (bounded) for it to return.
    async fn stop(self) {
        self.shutdown.shutdown();
        bounded("the server to stop", self.serving).await;
    }
}

/// A client on smol's `TcpStream`: its sender, its shutdown signal and its task.
async fn smol_client(
    addr: SocketAddr,
    events: Events,
) -> (Sender, ShutdownHandle, Task<DisconnectReason>) {
    let stream = smol::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let peer = stream.peer_addr().unwrap();
    let session = Session::new(Collect(events), SessionConfig::default()).with_peer(peer);
    let sender = session.sender();
    let shutdown = ShutdownHandle::new();
    let task = smol::spawn(run_session(stream, session, shutdown.clone()));
    (sender, shutdown, task)
}

#[test]
fn run_session_on_smol_streams() {
    run(async {
        // The server's sockets are plain `Async<TcpStream>`s, whose close
        // only flushes: a graceful close then waits out the linger for the
        // peer's end of stream (kept short here).
        let config = SessionConfig::default()
            .idle_timeout(Some(Duration::from_millis(300)))
            .close_linger(Duration::from_millis(300));
        let server = SmolServer::start(config);
        // (The connections' events are checked after the server stops.)
        let addr = server.addr;
        let connections = server.connections.clone();

        // Frames and a ping, echoed in order.
        let client_events = Events::default();
        let (sender, _client_shutdown, client) = smol_client(addr, client_events.clone()).await;
        for i in 0..100 {
            let frame = FrameBuilder::new(Status::DEFAULT)
                .file("data.bin", vec![i as u8; i * 300])
                .message(format!("m{i}"))
                .build();
            sender.send(frame).await.unwrap();
        }
        sender.send(Frame::ping()).await.unwrap();
        wait_until("100 echoes", || client_events.len() >= 100).await;
        sender.close();
        let reason = bounded("the client to end", client).await;
        assert!(matches!(reason, DisconnectReason::LocalClose), "{reason}");
        let server_events = connections.get(0).unwrap();
        wait_until("server disconnect", || server_events.ended()).await;

        let mut expected: Vec<String> = (0..100).map(|i| format!("echo: m{i}")).collect();
        expected.push("disconnected: closed locally".into());
        assert_eq!(client_events.snapshot(), expected);
        let mut expected = vec!["connected".to_string()];
        expected.extend((0..100).map(|i| format!("received m{i} files=1")));
        expected.push("ping".into());
        expected.push("disconnected: peer closed the connection".into());
        assert_eq!(server_events.snapshot(), expected);

        // A silent client is closed by the server's idle timeout.
        let idle_events = Events::default();
        let (_idle_sender, _idle_shutdown, idle) = smol_client(addr, idle_events.clone()).await;
        bounded("the idle client to end", idle).await;
        assert_eq!(
            idle_events.snapshot(),
            vec!["disconnected: peer closed the connection"]
        );
        assert_eq!(
            connections.get(1).unwrap().snapshot(),
            vec!["connected", "disconnected: idle timeout"]
        );

        // Graceful shutdown: the busy connection flushes its echo, then closes.
        let busy_events = Events::default();
        let (busy_sender, _busy_shutdown, busy) = smol_client(addr, busy_events.clone()).await;
        busy_sender
            .send(Frame::message("before shutdown"))
            .await
            .unwrap();
        wait_until("echo", || !busy_events.is_empty()).await;
        server.stop().await;
        bounded("the busy client to end", busy).await;
        assert_eq!(
            busy_events.snapshot(),
            vec![
                "echo: before shutdown",
                "disconnected: peer closed the connection"
            ]
        );
        assert_eq!(
            connections.get(2).unwrap().snapshot(),
            vec![
                "connected",
                "received before shutdown files=0",
                "disconnected: closed locally"
            ]
        );
        assert!(busy_sender.is_closed());
    });
}

#[test]
fn shutdown_handle_closes_a_smol_client() {
    run(async {
        let server = SmolServer::start(SessionConfig::default());

        // The client side on a plain `Async<std::net::TcpStream>`, whose
        // close only flushes: the server never sees its end of stream, so
        // its graceful close waits out the linger (kept short here).
        let stream = Async::<TcpStream>::connect(server.addr).await.unwrap();
        let events = Events::default();
        let config = SessionConfig::default().close_linger(Duration::from_millis(300));
        let session = Session::new(Collect(events.clone()), config);
        let sender = session.sender();
        let client_shutdown = ShutdownHandle::new();
        let client = smol::spawn(run_session(stream, session, client_shutdown.clone()));
        sender.send(Frame::message("hello")).await.unwrap();
        wait_until("echo", || !events.is_empty()).await;
        client_shutdown.shutdown();
        bounded("the client to end", client).await;
        assert_eq!(
            events.snapshot(),
            vec!["echo: hello", "disconnected: closed locally"]
        );
        let server_events = server.connections.get(0).unwrap();
        wait_until("server disconnect", || server_events.ended()).await;
        assert_eq!(
            server_events.snapshot(),
            vec![
                "connected",
                "received hello files=0",
                "disconnected: peer closed the connection"
            ]
        );

        server.stop().await;
    });
}

#[cfg(feature = "async-std")]
#[test]
fn async_std_server_and_client_inside_smol_block_on() {
    use tej_async_std::{Client, Server};

    run(async {
        let server = Server::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let shutdown = server.shutdown_handle();
        let connections = PerConnection::default();
        let serving = smol::spawn(server.serve({
            let connections = connections.clone();
            move || Echo(connections.next())
        }));
        let events = Events::default();
        let client = Client::connect(addr, Collect(events.clone()))
            .await
            .unwrap();
        client
            .sender()
            .send(Frame::message("on smol"))
            .await
            .unwrap();
        wait_until("echo", || !events.is_empty()).await;
        client.close();
        bounded("the client to end", client.join()).await.unwrap();
        assert_eq!(
            events.snapshot(),
            vec!["echo: on smol", "disconnected: closed locally"]
        );
        wait_until("server disconnect", || {
            connections.get(0).is_some_and(|events| events.ended())
        })
        .await;
        shutdown.shutdown();
        bounded("the server to stop", serving).await;
        assert_eq!(
            connections.get(0).unwrap().snapshot(),
            vec![
                "connected",
                "received on smol files=0",
                "disconnected: peer closed the connection"
            ]
        );
    });
}
