//! `Server::with_proxy_protocol` on loopback: v1 and v2 headers name the
//! peer, a connection without a valid header never meets a handler, a
//! stalled header is cut at the handshake timeout, health checks go
//! unreported, and PROXY composes with TLS (header first, then TLS).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tej_mio::{
    Client, Connection, DisconnectReason, Frame, FrameBuilder, Handler, Server, SessionConfig,
    ShutdownHandle, Status,
};

/// A connection's peer and proxy addresses.
type Addrs = (Option<SocketAddr>, Option<SocketAddr>);

/// What the server's handlers saw: `(peer, proxy)` per connection, frames.
#[derive(Default, Clone)]
struct Seen {
    made: Arc<AtomicUsize>,
    connected: Arc<Mutex<Vec<Addrs>>>,
    frames: Arc<Mutex<Vec<Frame>>>,
}

impl Seen {
    fn made(&self) -> usize {
        self.made.load(Ordering::SeqCst)
    }
    fn connected(&self) -> Vec<Addrs> {
        self.connected.lock().unwrap().clone()
    }
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
    thread: JoinHandle<std::io::Result<()>>,
}

#[allow(unused_mut)]
fn start(timeout: Duration, tls: bool) -> Running {
    let config = SessionConfig::default().handshake_timeout(timeout);
    let mut server = Server::bind("127.0.0.1:0")
        .unwrap()
        .with_config(config)
        .with_proxy_protocol();
    #[cfg(feature = "tls")]
    if tls {
        server = server.with_tls(tls::server());
    }
    assert!(cfg!(feature = "tls") || !tls);
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
    let thread = std::thread::spawn(move || server.run(factory));
    Running {
        addr,
        seen,
        shutdown,
        thread,
    }
}

impl Running {
    fn stop(self) -> Seen {
        self.shutdown.shutdown();
        wait_for(|| self.thread.is_finished());
        self.thread.join().unwrap().unwrap();
        self.seen
    }
}

fn wait_for(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(2));
    }
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

/// A v2 `PROXY` header over TCP4 (`local`: a `LOCAL` one).
fn v2(source: SocketAddr, destination: SocketAddr, local: bool) -> Vec<u8> {
    let (SocketAddr::V4(source), SocketAddr::V4(destination)) = (source, destination) else {
        panic!("IPv4 only here");
    };
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
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

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Runs a client over `stream`, sends one frame and waits for it to come
/// back.
fn round_trip(stream: impl tej_mio::Stream + 'static) -> Frame {
    let collect = Collect::default();
    let client = Client::from_stream(stream, collect.clone(), SessionConfig::default()).unwrap();
    client.sender().send_blocking(sample()).unwrap();
    wait_for(|| !collect.0.lock().unwrap().is_empty());
    client.close();
    let _ = client.join();
    let frame = collect.0.lock().unwrap().remove(0);
    frame
}

fn into_mio(stream: TcpStream) -> tej_mio::mio::net::TcpStream {
    stream.set_nonblocking(true).unwrap();
    tej_mio::mio::net::TcpStream::from_std(stream)
}

/// Reads until the server closes; the bytes it sent.
fn until_closed(mut stream: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got);
    got
}

#[test]
fn a_v1_header_names_the_peer_and_the_balancer_is_the_proxy() {
    let running = start(Duration::from_secs(5), false);
    let mut stream = connect(running.addr);
    let balancer = stream.local_addr().unwrap();
    stream
        .write_all(&v1(client_address(), running.addr))
        .unwrap();
    assert_eq!(round_trip(into_mio(stream)), sample());
    let seen = running.stop();
    assert_eq!(
        seen.connected(),
        vec![(Some(client_address()), Some(balancer))]
    );
}

#[test]
fn a_v2_header_with_the_first_frame_in_the_same_write_loses_no_byte() {
    let running = start(Duration::from_secs(5), false);
    let mut stream = connect(running.addr);
    let balancer = stream.local_addr().unwrap();
    let mut wire = v2(client_address(), running.addr, false);
    wire.extend_from_slice(&sample().encode_to_vec().unwrap());
    stream.write_all(&wire).unwrap();
    assert_eq!(round_trip(into_mio(stream)), sample());
    // Both frames reach the handler (a shutdown right away could
    // otherwise stop before the second is read).
    let frames = running.seen.frames.clone();
    wait_for(|| frames.lock().unwrap().len() == 2);
    let seen = running.stop();
    assert_eq!(seen.frames.lock().unwrap().len(), 2);
    assert_eq!(
        seen.connected(),
        vec![(Some(client_address()), Some(balancer))]
    );
}

#[test]
fn a_missing_or_invalid_header_is_refused_before_any_handler() {
    let running = start(Duration::from_secs(5), false);
    let bad: [&[u8]; 4] = [
        &sample().encode_to_vec().unwrap(),
        b"PROXY TCP4 not-an-address 10.0.0.1 1 2\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c",
    ];
    for preamble in bad {
        let mut stream = connect(running.addr);
        stream.write_all(preamble).unwrap();
        assert!(until_closed(stream).is_empty());
    }
    let mut stream = connect(running.addr);
    stream
        .write_all(&v1(client_address(), running.addr))
        .unwrap();
    assert_eq!(round_trip(into_mio(stream)), sample());
    assert_eq!(running.stop().made(), 1);
}

#[test]
fn a_stalled_header_is_cut_at_the_handshake_timeout() {
    let running = start(Duration::from_millis(300), false);
    let mut stream = connect(running.addr);
    let started = Instant::now();
    stream.write_all(b"PROXY TCP4 192.0.2.1").unwrap();
    assert!(until_closed(stream).is_empty());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(running.stop().made(), 0);
}

#[test]
fn health_checks_are_closed_quietly_without_a_handler() {
    let running = start(Duration::from_secs(5), false);
    for _ in 0..3 {
        drop(connect(running.addr));
        let mut stream = connect(running.addr);
        stream
            .write_all(&v2(client_address(), running.addr, true))
            .unwrap();
        assert!(until_closed(stream).is_empty());
    }
    let mut stream = connect(running.addr);
    stream
        .write_all(&v1(client_address(), running.addr))
        .unwrap();
    assert_eq!(round_trip(into_mio(stream)), sample());
    assert_eq!(running.stop().made(), 1);
}

#[cfg(feature = "tls")]
mod tls {
    use std::sync::Arc;

    use tej_mio::tls::rustls::pki_types::pem::PemObject;
    use tej_mio::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tej_mio::tls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
    use tej_mio::tls::TlsStream;

    use super::*;

    fn pem(name: &str) -> String {
        format!("{}/../testdata/tls/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn certs(name: &str) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_file_iter(pem(name))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    pub fn server() -> Arc<ServerConfig> {
        let key = PrivateKeyDer::from_pem_file(pem("server.key")).unwrap();
        Arc::new(
            ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs("server.pem"), key)
                .unwrap(),
        )
    }

    fn client() -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for cert in certs("ca.pem") {
            roots.add(cert).unwrap();
        }
        Arc::new(
            ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    fn localhost() -> ServerName<'static> {
        ServerName::try_from("localhost").unwrap()
    }

    #[test]
    fn proxy_then_tls() {
        let running = start(Duration::from_secs(5), true);
        let mut stream = connect(running.addr);
        let balancer = stream.local_addr().unwrap();
        stream
            .write_all(&v2(client_address(), running.addr, false))
            .unwrap();
        let tls = TlsStream::client(into_mio(stream), localhost(), client()).unwrap();
        assert_eq!(round_trip(tls), sample());

        // TLS without the header first is refused before any handler.
        let stream = connect(running.addr);
        let tls = TlsStream::client(into_mio(stream), localhost(), client()).unwrap();
        let collect = Collect::default();
        let client = Client::from_stream(tls, collect, SessionConfig::default()).unwrap();
        let _ = client.join();

        let seen = running.stop();
        assert_eq!(
            seen.connected(),
            vec![(Some(client_address()), Some(balancer))]
        );
    }
}
