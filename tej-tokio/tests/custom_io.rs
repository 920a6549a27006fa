//! tej-tokio with streams and listeners of the user's own: a `Client`
//! from an in-memory duplex stream against `run_session`, a `Listener` and
//! an `Acceptor` of one's own, and a Unix listener's address. The
//! scenarios every runtime shares are in the matrix
//! (`tej-examples/tests/conformance.rs`).

use std::io;
use std::net::SocketAddr;

use tej_test_support::peer::{eventually, sample_frames, within};
use tej_test_support::recorder::{FrameSummary, Record, Recorder, Seen};
use tej_tokio::tej_core::Session;
use tej_tokio::{run_session, Acceptor, Client, Listener, Server, SessionConfig, ShutdownHandle};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

/// Sends the sample frames, waits for them all to come back, and checks
/// that both sides saw exactly them, byte for byte.
async fn round_trip(sender: &tej_tokio::Sender, client: &Record, server: &Record) {
    let frames = sample_frames();
    for frame in &frames {
        sender.send(frame.clone()).await.unwrap();
    }
    eventually("the echoes", || client.received().len() >= frames.len()).await;
    let sent: Vec<_> = frames.iter().map(FrameSummary::of).collect();
    assert_eq!(server.received(), sent, "the server received other frames");
    assert_eq!(client.received(), sent, "the client received other frames");
}

fn mirror(record: &Record) -> Recorder {
    let mut handler = Recorder::new(record);
    handler.mirror = true;
    handler
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_listener_has_its_path_for_address() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tej.sock");
    let server = Server::bind_unix(&path).await.unwrap();
    assert_eq!(
        server.local_addr().unwrap().as_pathname(),
        Some(path.as_path())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_from_a_duplex_stream_talks_to_run_session() {
    let (near, far) = tokio::io::duplex(16 * 1024);
    let seen = Record::default();
    let server_side = tokio::spawn(run_session(
        far,
        Session::new(mirror(&seen), SessionConfig::default()),
        ShutdownHandle::new(),
    ));
    let collect = Record::default();
    let client = Client::from_stream(near, Recorder::new(&collect), SessionConfig::default());
    assert_eq!(client.peer_addr(), None);
    round_trip(&client.sender(), &collect, &seen).await;
    client.close();
    within("the client to end", client.join()).await.unwrap();
    within("the server side to end", server_side).await.unwrap();
    assert_eq!(
        seen.snapshot().last().unwrap(),
        &Seen::Disconnected("peer closed the connection".into())
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
    let seen = Record::default();
    let serving = tokio::spawn(server.serve(mirror(&seen).factory()));

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
    let collect = Record::default();
    let client = Client::from_stream(near, Recorder::new(&collect), SessionConfig::default());
    round_trip(&client.sender(), &collect, &seen).await;
    client.close();
    within("the client to end", client.join()).await.unwrap();
    eventually("the server's disconnect", || seen.disconnects().len() == 1).await;
    assert_eq!(seen.snapshot().first().unwrap(), &Seen::Connected);
    assert_eq!(seen.addrs(), [(Some(([192, 0, 2, 1], 4000).into()), None)]);
    assert_eq!(seen.made(), 1);

    shutdown.shutdown();
    within("the server to end", serving).await.unwrap();
}
