//! tej-tokio over transports other than TCP: Unix sockets, in-memory
//! streams, a listener and a handshake of the user's own.

mod common;

use std::io;
use std::net::SocketAddr;

use common::{round_trip, wait_until, within, Collect, Mirror, Seen};
use tej_tokio::tej_core::Session;
use tej_tokio::{
    run_session, Acceptor, Client, Frame, Listener, Server, SessionConfig, ShutdownHandle,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

/// A socket path of its own for each test, in a fresh directory removed
/// (with the socket) when dropped.
#[cfg(unix)]
struct SocketPath(std::path::PathBuf, #[allow(dead_code)] tempfile::TempDir);

#[cfg(unix)]
impl SocketPath {
    fn new(test: &str) -> SocketPath {
        let dir = tempfile::Builder::new()
            .prefix(&format!("tej-tokio-{test}-"))
            .tempdir()
            .unwrap();
        SocketPath(dir.path().join("tej.sock"), dir)
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_with_files_cross_a_unix_socket() {
    let path = SocketPath::new("round-trip");
    let server = Server::bind_unix(&path.0).await.unwrap();
    assert_eq!(
        server.local_addr().unwrap().as_pathname(),
        Some(path.0.as_path())
    );
    let shutdown = server.shutdown_handle();
    let seen = Seen::default();
    let serving = tokio::spawn(server.serve(seen.factory()));

    let collect = Collect::default();
    let client = Client::connect_unix(&path.0, collect.clone(), SessionConfig::default())
        .await
        .unwrap();
    assert_eq!(client.peer_addr(), None);
    assert_eq!(client.local_addr(), None);
    round_trip(&client.sender(), &collect, &seen).await;
    client.close();
    within("the client to end", client.join()).await.unwrap();
    wait_until("the server's disconnect", || {
        seen.events.has("disconnected")
    })
    .await;
    assert_eq!(
        seen.events.snapshot(),
        [
            "connected peer=None",
            "received",
            "received",
            "received",
            "received",
            "disconnected: peer closed the connection"
        ]
    );
    shutdown.shutdown();
    within("the server to end", serving).await.unwrap();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_at_the_cap_over_a_unix_socket() {
    let path = SocketPath::new("cap");
    let server = Server::bind_unix(&path.0)
        .await
        .unwrap()
        .with_max_connections(1);
    let shutdown = server.shutdown_handle();
    let seen = Seen::default();
    let serving = tokio::spawn(server.serve(seen.factory()));

    let first_collect = Collect::default();
    let first = Client::connect_unix(&path.0, first_collect.clone(), SessionConfig::default())
        .await
        .unwrap();
    first.sender().send(Frame::message("first")).await.unwrap();
    wait_until("the echo", || !first_collect.frames().is_empty()).await;

    // At the cap: accepted and closed at once, never served.
    let refused_collect = Collect::default();
    let refused = Client::connect_unix(&path.0, refused_collect.clone(), SessionConfig::default())
        .await
        .unwrap();
    let _ = refused.sender().try_send(Frame::message("refused"));
    within("the refused client to end", refused.join())
        .await
        .unwrap();
    assert!(refused_collect.frames().is_empty());

    shutdown.shutdown();
    within("the server to end", serving).await.unwrap();
    within("the first client to end", first.join())
        .await
        .unwrap();
    assert_eq!(seen.made(), 1);
    assert_eq!(seen.frames(), [Frame::message("first")]);
    assert_eq!(
        first_collect.events.snapshot(),
        ["connected", "disconnected: peer closed the connection"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_from_a_duplex_stream_talks_to_run_session() {
    let (near, far) = tokio::io::duplex(16 * 1024);
    let seen = Seen::default();
    let server_side = tokio::spawn(run_session(
        far,
        Session::new(Mirror(seen.clone()), SessionConfig::default()),
        ShutdownHandle::new(),
    ));
    let collect = Collect::default();
    let client = Client::from_stream(near, collect.clone(), SessionConfig::default());
    assert_eq!(client.peer_addr(), None);
    round_trip(&client.sender(), &collect, &seen).await;
    client.close();
    within("the client to end", client.join()).await.unwrap();
    within("the server side to end", server_side).await.unwrap();
    assert_eq!(
        seen.events.snapshot().last().unwrap(),
        "disconnected: peer closed the connection"
    );
}

/// A listener of in-memory streams sent down a channel.
struct Channel(mpsc::Receiver<DuplexStream>);

impl Listener<tej_tokio::Tokio> for Channel {
    type Io = DuplexStream;
    type Addr = &'static str;

    async fn accept(&mut self) -> io::Result<(DuplexStream, Option<SocketAddr>)> {
        match self.0.recv().await {
            Some(stream) => Ok((stream, None)),
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<&'static str> {
        Ok("memory")
    }
}

/// Admits a peer only once it has said the password.
struct Password(&'static [u8]);

impl<S> Acceptor<tej_tokio::Tokio, S> for Password
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = S;

    async fn accept(&self, mut stream: S) -> io::Result<S> {
        let mut said = vec![0; self.0.len()];
        stream.read_exact(&mut said).await?;
        if said == self.0 {
            Ok(stream)
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "wrong password",
            ))
        }
    }

    fn peer_addr(&self, _stream: &S) -> Option<SocketAddr> {
        Some(([192, 0, 2, 1], 4000).into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_and_a_handshake_of_ones_own() {
    let (connect, accept) = mpsc::channel(4);
    let server = Server::from_listener(Channel(accept))
        .with_acceptor(Password(b"sesame\n"))
        .with_config(SessionConfig::default().handshake_timeout(std::time::Duration::from_secs(5)));
    assert_eq!(server.local_addr().unwrap(), "memory");
    let shutdown = server.shutdown_handle();
    let seen = Seen::default();
    let serving = tokio::spawn(server.serve(seen.factory()));

    // The wrong password: closed, no handler made.
    let (mut intruder, far) = tokio::io::duplex(1024);
    connect.send(far).await.unwrap();
    intruder.write_all(b"letmein").await.unwrap();
    let mut rest = Vec::new();
    within("the intruder to be cut", intruder.read_to_end(&mut rest))
        .await
        .unwrap();
    assert_eq!(seen.made(), 0);

    // The right one: served, with the peer the acceptor reported.
    let (mut near, far) = tokio::io::duplex(64 * 1024);
    connect.send(far).await.unwrap();
    near.write_all(b"sesame\n").await.unwrap();
    let collect = Collect::default();
    let client = Client::from_stream(near, collect.clone(), SessionConfig::default());
    round_trip(&client.sender(), &collect, &seen).await;
    client.close();
    within("the client to end", client.join()).await.unwrap();
    wait_until("the server's disconnect", || {
        seen.events.has("disconnected")
    })
    .await;
    assert_eq!(
        seen.events.snapshot().first().unwrap(),
        "connected peer=Some(192.0.2.1:4000)"
    );
    assert_eq!(seen.made(), 1);

    shutdown.shutdown();
    within("the server to end", serving).await.unwrap();
}
