//! tej-mio over TLS (feature `tls`): rustls's own connections in the mio
//! loop, against our client and against raw rustls and plain TCP peers.

mod support;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::{join, pattern, text, wait_until, Collect, Echo, Events, Peer, PATIENCE};
use tej_core::{Assembler, Limits};
use tej_mio::tls::rustls::{self, pki_types};
use tej_mio::tls::{TlsListener, TlsStream};
use tej_mio::{
    Client, Connection, DisconnectReason, Frame, FrameBuilder, Handler, Server, SessionConfig,
    ShutdownHandle, Status,
};

use pki_types::pem::PemObject;
use pki_types::{CertificateDer, PrivateKeyDer, ServerName};

fn testdata(name: &str) -> String {
    format!("{}/../testdata/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn certs(name: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(testdata(name))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn key(name: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(testdata(name)).unwrap()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &str) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(ca) {
        roots.add(cert).unwrap();
    }
    roots
}

/// The test server's config: `server.pem` (or `cert`), client
/// certificates from ca.pem required if `client_auth`.
fn server_tls(cert: &str, client_auth: bool) -> Arc<rustls::ServerConfig> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if client_auth {
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots("ca.pem")),
            provider(),
        )
        .build()
        .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let key_name = cert.replace(".pem", ".key");
    Arc::new(
        builder
            .with_single_cert(certs(cert), key(&key_name))
            .unwrap(),
    )
}

/// The test client's config: trusts ca.pem; presents client.pem if `client_cert`.
fn client_tls(client_cert: bool) -> Arc<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots("ca.pem"));
    let config = if client_cert {
        builder
            .with_client_auth_cert(certs("client.pem"), key("client.key"))
            .unwrap()
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(config)
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

/// A TLS server on its own thread, counting the handlers it made.
struct TlsServer {
    addr: SocketAddr,
    shutdown: ShutdownHandle,
    made: Arc<AtomicUsize>,
    thread: JoinHandle<io::Result<()>>,
}

impl TlsServer {
    fn start<F, H>(tls: Arc<rustls::ServerConfig>, config: SessionConfig, mut factory: F) -> Self
    where
        F: FnMut() -> H + Send + 'static,
        H: Handler,
    {
        let server = Server::bind("127.0.0.1:0")
            .unwrap()
            .with_config(config)
            .with_tls(tls);
        let addr = server.local_addr().unwrap();
        let shutdown = server.shutdown_handle();
        let made = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&made);
        let thread = std::thread::spawn(move || {
            server.run(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                factory()
            })
        });
        TlsServer {
            addr,
            shutdown,
            made,
            thread,
        }
    }

    fn made(&self) -> usize {
        self.made.load(Ordering::SeqCst)
    }

    fn stop(self) {
        self.shutdown.shutdown();
        wait_until("the server to stop", || self.thread.is_finished());
        self.thread.join().unwrap().unwrap();
    }
}

/// The bytes of a received file.
fn bytes(frame: &Frame, index: usize) -> Vec<u8> {
    let file = &frame.files[index];
    match file.data() {
        Some(data) => data.to_vec(),
        None => std::fs::read(file.path().expect("a file in memory or on disk")).unwrap(),
    }
}

/// Hands every frame it receives to the test, and answers each with a
/// file of its own (seed 2, as long as the first file received).
struct Answer(mpsc::Sender<Frame>);

impl Handler for Answer {
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        let len = frame.files.first().map_or(0, |file| file.len() as usize);
        let reply = FrameBuilder::new(Status::DEFAULT)
            .file("answer.bin", pattern(len, 2))
            .message(format!("got {}", text(&frame)))
            .build();
        conn.send(reply).unwrap();
        let _ = self.0.send(frame);
    }
}

/// Hands every frame it receives to the test.
struct Keep(mpsc::Sender<Frame>);

impl Handler for Keep {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        let _ = self.0.send(frame);
    }
}

/// Sends a file of `len` bytes over TLS and checks both directions byte for byte.
fn round_trip(len: usize) {
    let (to_test, at_server) = mpsc::channel();
    let server = TlsServer::start(
        server_tls("server.pem", false),
        SessionConfig::default(),
        move || Answer(to_test.clone()),
    );
    let (to_client, at_client) = mpsc::channel();
    let client = Client::connect_tls(
        server.addr,
        localhost(),
        client_tls(false),
        Keep(to_client),
        SessionConfig::default(),
    )
    .unwrap();
    assert_eq!(client.peer_addr(), Some(server.addr));
    let sent = pattern(len, 1);
    client
        .sender()
        .send_blocking(
            FrameBuilder::new(Status::DEFAULT)
                .file("upload.bin", sent.clone())
                .file("small.txt", &b"hello over TLS"[..])
                .message("up")
                .build(),
        )
        .unwrap();

    let received = at_server.recv_timeout(PATIENCE * 3).unwrap();
    assert_eq!(text(&received), "up");
    assert_eq!(received.files.len(), 2);
    assert_eq!(received.files[0].name, "upload.bin");
    assert!(bytes(&received, 0) == sent, "the server got other bytes");
    assert_eq!(bytes(&received, 1), b"hello over TLS");

    let answer = at_client.recv_timeout(PATIENCE * 3).unwrap();
    assert_eq!(text(&answer), "got up");
    assert_eq!(answer.files[0].name, "answer.bin");
    assert!(
        bytes(&answer, 0) == pattern(len, 2),
        "the client got other bytes"
    );

    client.close();
    join(client).unwrap();
    assert_eq!(server.made(), 1);
    server.stop();
}

#[test]
fn files_round_trip_over_tls_byte_for_byte() {
    round_trip(1_000_003);
}

#[test]
fn a_64_mib_file_round_trips_over_tls() {
    round_trip(64 << 20);
}

#[test]
fn a_required_client_certificate_when_presented_is_served() {
    let server_events = Events::default();
    let server = TlsServer::start(server_tls("server.pem", true), SessionConfig::default(), {
        let events = server_events.clone();
        move || Echo(events.clone())
    });
    let client_events = Events::default();
    let client = Client::connect_tls(
        server.addr,
        localhost(),
        client_tls(true),
        Collect(client_events.clone()),
        SessionConfig::default(),
    )
    .unwrap();
    client
        .sender()
        .send_blocking(Frame::message("mine"))
        .unwrap();
    wait_until("the echo", || client_events.contains("echo: mine"));
    client.close();
    join(client).unwrap();
    wait_until("the server's disconnect", || server_events.len() == 3);
    assert_eq!(
        server_events.snapshot()[..2],
        ["connected", "received mine files=0"]
    );
    server.stop();
}

#[test]
fn a_missing_client_certificate_reaches_no_handler() {
    let server_events = Events::default();
    let server = TlsServer::start(server_tls("server.pem", true), SessionConfig::default(), {
        let events = server_events.clone();
        move || Echo(events.clone())
    });
    // TLS 1.3: the client is done with its side of the handshake before
    // the server checks it, so the refusal comes as the connection's end.
    let client_events = Events::default();
    match Client::connect_tls(
        server.addr,
        localhost(),
        client_tls(false),
        Collect(client_events.clone()),
        SessionConfig::default(),
    ) {
        Ok(client) => {
            let _ = client.sender().send_blocking(Frame::message("let me in"));
            let _ = join(client);
            let seen = client_events.snapshot();
            assert!(
                seen.iter().all(|event| !event.starts_with("echo")),
                "the client was served: {seen:?}"
            );
            assert!(
                seen.last()
                    .is_some_and(|event| event.starts_with("disconnected")),
                "{seen:?}"
            );
        }
        Err(error) => assert!(error.to_string().contains("TLS"), "{error}"),
    }
    // A client with its certificate is served after it: the refused one
    // was handled first, on the same loop.
    let client = Client::connect_tls(
        server.addr,
        localhost(),
        client_tls(true),
        Collect(Events::default()),
        SessionConfig::default(),
    )
    .unwrap();
    wait_until("the good client's handler", || server.made() == 1);
    client.close();
    join(client).unwrap();
    wait_until("the server's disconnect", || server_events.len() == 2);
    assert_eq!(
        server.made(),
        1,
        "a handler was made for the refused client"
    );
    assert_eq!(server_events.snapshot()[0], "connected");
    server.stop();
}

#[test]
fn an_untrusted_server_certificate_fails_the_client_with_the_reason() {
    let server = TlsServer::start(
        server_tls("other-server.pem", false),
        SessionConfig::default(),
        || Echo(Events::default()),
    );
    let events = Events::default();
    let error = Client::connect_tls(
        server.addr,
        localhost(),
        client_tls(false),
        Collect(events.clone()),
        SessionConfig::default(),
    )
    .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    let message = error.to_string();
    assert!(
        message.starts_with(
            "TLS handshake with localhost failed: the server's certificate is not trusted"
        ),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
    assert_eq!(events.len(), 0, "a callback ran: {:?}", events.snapshot());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.made(), 0);
    server.stop();
}

#[test]
fn a_failed_handshake_of_a_client_from_a_stream_is_its_join_error() {
    let server = TlsServer::start(
        server_tls("other-server.pem", false),
        SessionConfig::default(),
        || Echo(Events::default()),
    );
    let stream = std::net::TcpStream::connect(server.addr).unwrap();
    stream.set_nonblocking(true).unwrap();
    let stream = TlsStream::client(
        tej_mio::mio::net::TcpStream::from_std(stream),
        localhost(),
        client_tls(false),
    )
    .unwrap();
    let events = Events::default();
    let client =
        Client::from_stream(stream, Collect(events.clone()), SessionConfig::default()).unwrap();
    let error = join(client).unwrap_err();
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
    assert_eq!(events.len(), 0, "a callback ran: {:?}", events.snapshot());
    server.stop();
}

#[test]
fn a_plain_tcp_peer_gets_no_frame_through_a_tls_port() {
    let server = TlsServer::start(
        server_tls("server.pem", false),
        SessionConfig::default(),
        || Echo(Events::default()),
    );
    let mut peer = Peer::connect(server.addr);
    peer.send(&Frame::message("plain"));
    // The server answers with a TLS alert (not a frame) and closes.
    match peer.recv() {
        Ok(None) | Err(_) => {}
        Ok(Some(frame)) => panic!("a frame came back: {frame:?}"),
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.made(), 0);
    server.stop();
}

#[test]
fn garbage_before_the_handshake_closes_the_connection_and_others_are_served() {
    let server = TlsServer::start(
        server_tls("server.pem", false),
        SessionConfig::default(),
        || Echo(Events::default()),
    );
    let mut garbage = TcpStream::connect(server.addr).unwrap();
    garbage.set_read_timeout(Some(PATIENCE)).unwrap();
    garbage.write_all(&[0xff; 300]).unwrap();
    let mut rest = Vec::new();
    // An alert at most, then the end (or a reset).
    let _ = garbage.read_to_end(&mut rest);
    assert!(rest.len() < 64, "{} bytes came back", rest.len());
    assert_eq!(server.made(), 0);

    let events = Events::default();
    let client = Client::connect_tls(
        server.addr,
        localhost(),
        client_tls(false),
        Collect(events.clone()),
        SessionConfig::default(),
    )
    .unwrap();
    client.sender().send_blocking(Frame::message("ok")).unwrap();
    wait_until("the echo", || events.contains("echo: ok"));
    client.close();
    join(client).unwrap();
    assert_eq!(server.made(), 1);
    server.stop();
}

/// A raw rustls client over a blocking socket.
fn raw_client(addr: SocketAddr) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let socket = TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    socket.set_write_timeout(Some(PATIENCE)).unwrap();
    let conn = rustls::ClientConnection::new(client_tls(false), localhost()).unwrap();
    rustls::StreamOwned::new(conn, socket)
}

#[test]
fn a_peer_that_stops_mid_handshake_is_cut_at_the_handshake_timeout() {
    let timeout = Duration::from_millis(600);
    let server = TlsServer::start(
        server_tls("server.pem", false),
        SessionConfig::default().handshake_timeout(timeout),
        || Echo(Events::default()),
    );
    // Send the ClientHello, read the server's first flight, then stop.
    let started = Instant::now();
    let mut stalled = raw_client(server.addr);
    stalled.conn.write_tls(&mut stalled.sock).unwrap();
    let mut flight = [0u8; 16 * 1024];
    let read = stalled.sock.read(&mut flight).unwrap();
    assert!(read > 0, "no ServerHello");

    // Others are served meanwhile.
    let events = Events::default();
    let client = Client::connect_tls(
        server.addr,
        localhost(),
        client_tls(false),
        Collect(events.clone()),
        SessionConfig::default(),
    )
    .unwrap();
    client
        .sender()
        .send_blocking(Frame::message("fast"))
        .unwrap();
    wait_until("the echo", || events.contains("echo: fast"));
    assert!(started.elapsed() < timeout, "too slow to tell");

    // The stalled one is closed once its time is up, never served.
    let mut rest = Vec::new();
    let _ = stalled.sock.read_to_end(&mut rest);
    let cut = started.elapsed();
    assert!(
        cut >= timeout - Duration::from_millis(50),
        "cut after {cut:?}"
    );
    assert!(cut < timeout + Duration::from_secs(5), "cut after {cut:?}");
    assert_eq!(server.made(), 1);

    client.close();
    join(client).unwrap();
    server.stop();
}

/// Says one thing on connect, then closes.
struct SayAndClose;

impl Handler for SayAndClose {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        conn.send(Frame::message("bye")).unwrap();
        conn.close();
    }
}

#[test]
fn the_server_sends_close_notify_when_it_closes() {
    let server = TlsServer::start(
        server_tls("server.pem", false),
        SessionConfig::default(),
        || SayAndClose,
    );
    let mut raw = raw_client(server.addr);
    let mut received = Vec::new();
    // A clean end (Ok) only after close_notify: rustls reports a bare TCP
    // end as UnexpectedEof.
    raw.read_to_end(&mut received)
        .expect("a clean TLS end of stream");
    assert!(!raw.conn.is_handshaking());
    let mut assembler = Assembler::new(Limits::DEFAULT);
    let assembled = assembler.decode(&received).unwrap();
    let frame = assembled.frame.expect("one whole frame");
    assert_eq!(text(&frame), "bye");
    assert_eq!(assembled.consumed, received.len());
    server.stop();
}

#[test]
fn a_client_over_a_tls_stream_of_its_own_on_a_unix_socket() {
    let dir = tempfile::Builder::new()
        .prefix("tej-mio-tls-")
        .tempdir()
        .unwrap();
    let path = dir.path().join("tls.sock");
    let listener = tej_mio::mio::net::UnixListener::bind(&path).unwrap();
    let server =
        Server::from_listener(TlsListener::new(listener, server_tls("server.pem", false))).unwrap();
    assert_eq!(server.local_path().as_deref(), Some(path.as_path()));
    let shutdown = server.shutdown_handle();
    let events = Events::default();
    let thread = std::thread::spawn({
        let events = events.clone();
        move || server.run(move || Echo(events.clone()))
    });

    let socket = std::os::unix::net::UnixStream::connect(&path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let stream = TlsStream::client(
        tej_mio::mio::net::UnixStream::from_std(socket),
        localhost(),
        client_tls(false),
    )
    .unwrap();
    let seen = Events::default();
    let client =
        Client::from_stream(stream, Collect(seen.clone()), SessionConfig::default()).unwrap();
    assert_eq!(client.peer_addr(), None);
    client
        .sender()
        .send_blocking(Frame::message("unix"))
        .unwrap();
    wait_until("the echo", || seen.contains("echo: unix"));
    client.close();
    join(client).unwrap();
    wait_until("the server's disconnect", || events.len() == 3);
    shutdown.shutdown();
    wait_until("the server to stop", || thread.is_finished());
    thread.join().unwrap().unwrap();
    dir.close().unwrap();
}

/// Records its disconnect reason.
struct Reason(mpsc::Sender<DisconnectReason>);

impl Handler for Reason {
    fn disconnected(&mut self, reason: DisconnectReason) {
        let _ = self.0.send(reason);
    }
}

#[test]
fn shutdown_ends_tls_connections_and_cuts_handshakes() {
    let (reasons, reason) = mpsc::channel();
    let shutdown = ShutdownHandle::new();
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .with_tls(server_tls("server.pem", false))
        .with_shutdown(shutdown.clone());
    let addr = server.local_addr().unwrap();
    let thread = std::thread::spawn(move || server.run(move || Reason(reasons.clone())));

    // One served, one stalled before its ClientHello.
    let events = Events::default();
    let client = Client::connect_tls(
        addr,
        localhost(),
        client_tls(false),
        Collect(events.clone()),
        SessionConfig::default(),
    )
    .unwrap();
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled.set_read_timeout(Some(PATIENCE)).unwrap();
    std::thread::sleep(Duration::from_millis(50));

    let started = Instant::now();
    shutdown.shutdown();
    wait_until("the server to stop", || thread.is_finished());
    thread.join().unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(reason.recv_timeout(PATIENCE).unwrap().is_graceful());
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest);
    assert!(rest.is_empty());
    join(client).unwrap();
    assert!(
        events
            .snapshot()
            .last()
            .is_some_and(|e| e.starts_with("disconnected")),
        "{:?}",
        events.snapshot()
    );
}
