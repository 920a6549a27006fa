//! `Server::with_proxy_protocol` on loopback: v1 and v2 headers name the
//! peer, a connection without a valid header never meets a handler, a
//! stalled header is cut at the handshake timeout, health checks go
//! unreported, and PROXY composes with TLS (header first, then TLS).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tej_tokio::tls::rustls::crypto::ring;
use tej_tokio::tls::rustls::pki_types::pem::PemObject;
use tej_tokio::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tej_tokio::tls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tej_tokio::tls::TlsConnector;
use tej_tokio::{
    Client, Connection, DisconnectReason, Frame, FrameBuilder, Handler, Server, SessionConfig,
    ShutdownHandle, Status,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// A connection's peer and proxy addresses.
type Addrs = (Option<SocketAddr>, Option<SocketAddr>);

/// What the server's handlers saw: `peer proxy` per connection, frames.
#[derive(Default, Clone)]
struct Seen {
    made: Arc<AtomicUsize>,
    connected: Arc<Mutex<Vec<Addrs>>>,
    frames: Arc<Mutex<Vec<Frame>>>,
}

/// Records the connection's addresses and mirrors every frame.
struct Mirror(Seen);

impl Handler for Mirror {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        let addrs = (conn.peer_addr(), conn.proxy_addr());
        self.0.connected.lock().unwrap().push(addrs);
    }
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        self.0.frames.lock().unwrap().push(frame.clone());
        let _ = conn.send(frame);
    }
}

/// Keeps what comes back.
#[derive(Default, Clone)]
struct Collect(Arc<Mutex<Vec<Frame>>>);

impl Handler for Collect {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.0.lock().unwrap().push(frame);
    }
    fn disconnected(&mut self, _reason: DisconnectReason) {}
}

struct Running {
    addr: SocketAddr,
    seen: Seen,
    shutdown: ShutdownHandle,
    serving: JoinHandle<()>,
}

async fn start(handshake_timeout: Duration, tls: Option<Arc<ServerConfig>>) -> Running {
    let config = SessionConfig::default().handshake_timeout(handshake_timeout);
    let server = Server::bind("127.0.0.1:0")
        .await
        .unwrap()
        .with_config(config)
        .with_proxy_protocol();
    let addr = server.local_addr().unwrap();
    let shutdown = server.shutdown_handle();
    let seen = Seen::default();
    let factory = {
        let seen = seen.clone();
        move || {
            seen.made.fetch_add(1, Ordering::SeqCst);
            Mirror(seen.clone())
        }
    };
    let serving = match tls {
        Some(tls) => tokio::spawn(server.with_tls(tls).serve(factory)),
        None => tokio::spawn(server.serve(factory)),
    };
    Running {
        addr,
        seen,
        shutdown,
        serving,
    }
}

impl Running {
    async fn stop(self) -> Seen {
        self.shutdown.shutdown();
        within(self.serving).await.unwrap();
        self.seen
    }
}

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("timed out")
}

fn v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    format!(
        "PROXY TCP4 {} {} {} {}\r\n",
        source.ip(),
        destination.ip(),
        source.port(),
        destination.port()
    )
    .into_bytes()
}

const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// A v2 `PROXY` header over TCP4 (`local`: a `LOCAL` one).
fn v2(source: SocketAddr, destination: SocketAddr, local: bool) -> Vec<u8> {
    let (SocketAddr::V4(source), SocketAddr::V4(destination)) = (source, destination) else {
        panic!("IPv4 only here");
    };
    let mut header = SIGNATURE.to_vec();
    header.extend_from_slice(&[if local { 0x20 } else { 0x21 }, 0x11, 0, 12]);
    header.extend_from_slice(&source.ip().octets());
    header.extend_from_slice(&destination.ip().octets());
    header.extend_from_slice(&source.port().to_be_bytes());
    header.extend_from_slice(&destination.port().to_be_bytes());
    header
}

fn client_address() -> SocketAddr {
    "203.0.113.7:40001".parse().unwrap()
}

fn sample() -> Frame {
    FrameBuilder::new(Status::DEFAULT)
        .file(
            "a.bin",
            (0..70_000u32).map(|i| i as u8).collect::<Vec<u8>>(),
        )
        .message("through the balancer")
        .build()
}

/// Writes `preamble`, then runs a client over the stream, sends one frame
/// and waits for it to come back.
async fn round_trip(stream: TcpStream, preamble: &[u8]) -> Frame {
    let mut stream = stream;
    stream.write_all(preamble).await.unwrap();
    let collect = Collect::default();
    let client = Client::from_stream(stream, collect.clone(), SessionConfig::default());
    client.sender().send(sample()).await.unwrap();
    wait_for(|| !collect.0.lock().unwrap().is_empty()).await;
    client.close();
    let _ = within(client.join()).await;
    let frame = collect.0.lock().unwrap().remove(0);
    frame
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads until the server closes; the bytes it sent.
async fn until_closed(mut stream: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = within(stream.read_to_end(&mut got)).await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_header_names_the_peer_and_the_balancer_is_the_proxy() {
    let running = start(Duration::from_secs(5), None).await;
    let stream = TcpStream::connect(running.addr).await.unwrap();
    let balancer = stream.local_addr().unwrap();
    let back = round_trip(stream, &v1(client_address(), running.addr)).await;
    assert_eq!(back, sample());
    let seen = running.stop().await;
    assert_eq!(
        *seen.connected.lock().unwrap(),
        vec![(Some(client_address()), Some(balancer))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_header_with_the_first_frame_in_the_same_write_loses_no_byte() {
    let running = start(Duration::from_secs(5), None).await;
    let mut stream = TcpStream::connect(running.addr).await.unwrap();
    let balancer = stream.local_addr().unwrap();
    // Header and frame in one segment: the server must read exactly the
    // header, leaving the frame's bytes to the session.
    let mut wire = v2(client_address(), running.addr, false);
    wire.extend_from_slice(&sample().encode_to_vec().unwrap());
    stream.write_all(&wire).await.unwrap();
    let back = round_trip(stream, &[]).await;
    assert_eq!(back, sample());
    // Both frames reach the handler (a shutdown right away could
    // otherwise stop before the second is read).
    let frames = running.seen.frames.clone();
    wait_for(|| frames.lock().unwrap().len() == 2).await;
    let seen = running.stop().await;
    assert_eq!(seen.frames.lock().unwrap().len(), 2);
    assert_eq!(
        *seen.connected.lock().unwrap(),
        vec![(Some(client_address()), Some(balancer))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_invalid_header_is_refused_before_any_handler() {
    let running = start(Duration::from_secs(5), None).await;
    let bad: [&[u8]; 4] = [
        &sample().encode_to_vec().unwrap(),
        b"PROXY TCP4 not-an-address 10.0.0.1 1 2\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        // A v2 signature with version 3.
        b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c",
    ];
    for preamble in bad {
        let mut stream = TcpStream::connect(running.addr).await.unwrap();
        stream.write_all(preamble).await.unwrap();
        assert!(until_closed(stream).await.is_empty());
    }
    // The server serves on.
    let stream = TcpStream::connect(running.addr).await.unwrap();
    assert_eq!(
        round_trip(stream, &v1(client_address(), running.addr)).await,
        sample()
    );
    let seen = running.stop().await;
    assert_eq!(seen.made.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_header_is_cut_at_the_handshake_timeout() {
    let running = start(Duration::from_millis(300), None).await;
    let mut stream = TcpStream::connect(running.addr).await.unwrap();
    let started = Instant::now();
    stream.write_all(b"PROXY TCP4 192.0.2.1").await.unwrap();
    assert!(until_closed(stream).await.is_empty());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let seen = running.stop().await;
    assert_eq!(seen.made.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_are_closed_quietly_without_a_handler() {
    let running = start(Duration::from_secs(5), None).await;
    for _ in 0..3 {
        // A bare TCP check: connect and close.
        drop(TcpStream::connect(running.addr).await.unwrap());
        // HAProxy's check with send-proxy-v2: a LOCAL header.
        let mut stream = TcpStream::connect(running.addr).await.unwrap();
        let local = v2(client_address(), running.addr, true);
        stream.write_all(&local).await.unwrap();
        assert!(until_closed(stream).await.is_empty());
    }
    let stream = TcpStream::connect(running.addr).await.unwrap();
    assert_eq!(
        round_trip(stream, &v1(client_address(), running.addr)).await,
        sample()
    );
    let seen = running.stop().await;
    assert_eq!(seen.made.load(Ordering::SeqCst), 1);
}

fn pem(name: &str) -> String {
    format!("{}/../testdata/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn certs(name: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(pem(name))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_then_tls() {
    let provider = Arc::new(ring::default_provider());
    let server_tls = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            certs("server.pem"),
            PrivateKeyDer::from_pem_file(pem("server.key")).unwrap(),
        )
        .unwrap();
    let mut roots = RootCertStore::empty();
    for cert in certs("ca.pem") {
        roots.add(cert).unwrap();
    }
    let client_tls = Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let running = start(Duration::from_secs(5), Some(Arc::new(server_tls))).await;

    let mut stream = TcpStream::connect(running.addr).await.unwrap();
    let balancer = stream.local_addr().unwrap();
    stream
        .write_all(&v2(client_address(), running.addr, false))
        .await
        .unwrap();
    let tls = TlsConnector::from(client_tls.clone())
        .connect(ServerName::try_from("localhost").unwrap(), stream)
        .await
        .unwrap();
    let collect = Collect::default();
    let client = Client::from_stream(tls, collect.clone(), SessionConfig::default());
    client.sender().send(sample()).await.unwrap();
    wait_for(|| !collect.0.lock().unwrap().is_empty()).await;
    client.close();
    let _ = within(client.join()).await;
    assert_eq!(collect.0.lock().unwrap()[0], sample());

    // TLS without the header first is refused.
    let stream = TcpStream::connect(running.addr).await.unwrap();
    let refused = TlsConnector::from(client_tls)
        .connect(ServerName::try_from("localhost").unwrap(), stream)
        .await;
    assert!(refused.is_err());

    let seen = running.stop().await;
    assert_eq!(
        *seen.connected.lock().unwrap(),
        vec![(Some(client_address()), Some(balancer))]
    );
}
