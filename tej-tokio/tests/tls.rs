//! tej-tokio over TLS (feature `tls`) on loopback: round trips, client
//! certificates, untrusted servers, peers that do not speak TLS or stop
//! mid-handshake, close_notify, and graceful shutdown at the cap.
#![cfg(feature = "tls")]

mod common;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{round_trip, within, Collect, Seen};
use tej_tokio::tls::rustls::crypto::{ring, CryptoProvider};
use tej_tokio::tls::rustls::pki_types::pem::PemObject;
use tej_tokio::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tej_tokio::tls::rustls::server::WebPkiClientVerifier;
use tej_tokio::tls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tej_tokio::tls::{TlsAcceptor, TlsConnector};
use tej_tokio::{Client, Frame, Server, SessionConfig, ShutdownHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

fn pem(name: &str) -> String {
    format!("{}/../testdata/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn certs(name: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(pem(name))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn key(name: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(pem(name)).unwrap()
}

fn roots() -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certs("ca.pem") {
        roots.add(cert).unwrap();
    }
    Arc::new(roots)
}

/// The server's configuration with certificate `name` (`server` or
/// `other-server`), requiring a client certificate signed by ca.pem if
/// `client_auth`.
fn server_tls(name: &str, client_auth: bool) -> Arc<ServerConfig> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if client_auth {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(), provider())
            .build()
            .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(
        builder
            .with_single_cert(certs(&format!("{name}.pem")), key(&format!("{name}.key")))
            .unwrap(),
    )
}

/// A client trusting ca.pem, presenting client.pem if `client_cert`.
fn client_tls(client_cert: bool) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots());
    Arc::new(if client_cert {
        builder
            .with_client_auth_cert(certs("client.pem"), key("client.key"))
            .unwrap()
    } else {
        builder.with_no_client_auth()
    })
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

/// A TLS server of `Mirror`s on a free loopback port.
struct Running {
    addr: std::net::SocketAddr,
    seen: Seen,
    shutdown: ShutdownHandle,
    serving: JoinHandle<()>,
}

impl Running {
    async fn start(tls: Arc<ServerConfig>, config: SessionConfig, max: usize) -> Running {
        let server = Server::bind("127.0.0.1:0")
            .await
            .unwrap()
            .with_config(config)
            .with_max_connections(max)
            .with_tls(tls);
        let addr = server.local_addr().unwrap();
        let shutdown = server.shutdown_handle();
        let seen = Seen::default();
        let serving = tokio::spawn(server.serve(seen.factory()));
        Running {
            addr,
            seen,
            shutdown,
            serving,
        }
    }

    async fn stop(self) -> Seen {
        self.shutdown.shutdown();
        within("the server to end", self.serving).await.unwrap();
        self.seen
    }
}

async fn connect(addr: std::net::SocketAddr, client_cert: bool) -> io::Result<(Client, Collect)> {
    let collect = Collect::default();
    let client = Client::connect_tls(
        addr,
        localhost(),
        client_tls(client_cert),
        collect.clone(),
        SessionConfig::default(),
    )
    .await?;
    Ok((client, collect))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_with_files_cross_tls_byte_for_byte_both_ways() {
    let server = Running::start(server_tls("server", false), SessionConfig::default(), 16).await;
    let (client, collect) = connect(server.addr, false).await.unwrap();
    assert_eq!(client.peer_addr(), Some(server.addr));
    round_trip(&client.sender(), &collect, &server.seen).await;
    client.close();
    within("the client to end", client.join()).await.unwrap();
    common::wait_until("the server's disconnect", || {
        server.seen.events.has("disconnected")
    })
    .await;
    let events = server.seen.events.snapshot();
    assert!(
        events[0].starts_with("connected peer=Some(127.0.0.1:"),
        "{events:?}"
    );
    assert_eq!(
        events.last().unwrap(),
        "disconnected: peer closed the connection"
    );
    assert_eq!(
        collect.events.snapshot(),
        ["connected", "disconnected: closed locally"]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_client_certificate_that_is_supplied_is_accepted() {
    let server = Running::start(server_tls("server", true), SessionConfig::default(), 16).await;
    let (client, collect) = connect(server.addr, true).await.unwrap();
    round_trip(&client.sender(), &collect, &server.seen).await;
    client.close();
    within("the client to end", client.join()).await.unwrap();
    let seen = server.stop().await;
    assert_eq!(seen.made(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_client_certificate_ends_the_connection_before_any_handler() {
    let server = Running::start(server_tls("server", true), SessionConfig::default(), 16).await;
    // TLS 1.3: the client may finish its side of the handshake before the
    // server refuses it; then its connection ends at the server's alert.
    match connect(server.addr, false).await {
        Err(error) => assert!(
            error.to_string().contains("TLS handshake"),
            "unexpected error: {error}"
        ),
        Ok((client, collect)) => {
            let _ = client.sender().try_send(Frame::message("let me in"));
            within("the refused client to end", client.join())
                .await
                .unwrap();
            assert!(collect.frames().is_empty());
            assert!(
                collect.events.has("disconnected"),
                "{:?}",
                collect.events.snapshot()
            );
        }
    }
    let seen = server.stop().await;
    assert_eq!(seen.made(), 0, "a handler was made for a refused client");
    assert!(seen.events.snapshot().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_server_certificate_fails_connect_with_the_reason() {
    let server = Running::start(
        server_tls("other-server", false),
        SessionConfig::default(),
        16,
    )
    .await;
    let Err(error) = connect(server.addr, false).await else {
        panic!("connected to an untrusted server");
    };
    let message = error.to_string();
    assert!(message.contains("not trusted"), "{message}");
    assert!(message.contains("localhost"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    let seen = server.stop().await;
    assert_eq!(seen.made(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_tcp_client_gets_no_frame_through_a_tls_port() {
    let server = Running::start(server_tls("server", false), SessionConfig::default(), 16).await;
    let collect = Collect::default();
    let client = Client::connect(server.addr, collect.clone()).await.unwrap();
    client
        .sender()
        .send(Frame::message("in the clear"))
        .await
        .unwrap();
    within("the plain client to be cut", client.join())
        .await
        .unwrap();
    assert!(collect.frames().is_empty());
    let seen = server.stop().await;
    assert_eq!(seen.made(), 0, "a handler was made for a plain client");
    assert!(seen.frames().is_empty());
}

/// Reads until the server closes; whatever it sent, and how it ended.
async fn read_until_closed(mut stream: TcpStream) -> io::Result<Vec<u8>> {
    let mut got = Vec::new();
    within("the server to close", stream.read_to_end(&mut got)).await?;
    Ok(got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_before_the_handshake_is_closed_and_the_server_serves_on() {
    let server = Running::start(server_tls("server", false), SessionConfig::default(), 16).await;
    let mut raw = TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff\xfe garbage")
        .await
        .unwrap();
    // Closed by the server (with or without a TLS alert first).
    let _ = read_until_closed(raw).await;

    let (client, collect) = connect(server.addr, false).await.unwrap();
    round_trip(&client.sender(), &collect, &server.seen).await;
    client.close();
    within("the client to end", client.join()).await.unwrap();
    let seen = server.stop().await;
    assert_eq!(seen.made(), 1, "only the TLS client gets a handler");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_stopping_mid_handshake_is_cut_at_the_handshake_timeout() {
    let timeout = Duration::from_millis(400);
    let server = Running::start(
        server_tls("server", false),
        SessionConfig::default().handshake_timeout(timeout),
        2,
    )
    .await;
    let started = Instant::now();
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    // A handshake record announcing 512 bytes, then silence.
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
        .await
        .unwrap();

    // The stalled peer holds one of the two slots; others are served.
    let (client, collect) = connect(server.addr, false).await.unwrap();
    round_trip(&client.sender(), &collect, &server.seen).await;

    let _ = read_until_closed(stalled).await;
    let waited = started.elapsed();
    assert!(
        waited >= timeout - Duration::from_millis(50),
        "cut after {waited:?}, before the timeout"
    );
    assert!(waited < Duration::from_secs(5), "cut only after {waited:?}");

    // The slot is free again: a new client gets through while the first stays.
    let (second, second_collect) = connect(server.addr, false).await.unwrap();
    second
        .sender()
        .send(Frame::message("after the stall"))
        .await
        .unwrap();
    common::wait_until("the echo", || !second_collect.frames().is_empty()).await;
    client.close();
    second.close();
    within("the client to end", client.join()).await.unwrap();
    within("the client to end", second.join()).await.unwrap();
    let seen = server.stop().await;
    assert_eq!(seen.made(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_sends_close_notify_when_a_session_ends() {
    let server = Running::start(server_tls("server", false), SessionConfig::default(), 16).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut tls = TlsConnector::from(client_tls(false))
        .connect(localhost(), tcp)
        .await
        .unwrap();
    let frame = Frame::message("echo me");
    tls.write_all(&frame.encode_to_vec().unwrap())
        .await
        .unwrap();
    tls.flush().await.unwrap();
    common::wait_until("the frame", || !server.seen.frames().is_empty()).await;
    let stopping = tokio::spawn(server.stop());
    // A missing close_notify shows as an UnexpectedEof error here.
    let mut got = Vec::new();
    let read = within("the end of the stream", tls.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "no clean TLS close: {read:?}");
    assert_eq!(got, frame.encode_to_vec().unwrap());
    within("the server to stop", stopping).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_sends_close_notify_on_close() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(server_tls("server", false));
    let raw_server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let mut got = Vec::new();
        tls.read_to_end(&mut got).await.map(|_| got)
    });
    let (client, _collect) = connect(addr, false).await.unwrap();
    let frame = Frame::message("then close");
    client.sender().send(frame.clone()).await.unwrap();
    client.close();
    within("the client to end", client.join()).await.unwrap();
    let got = within("the raw server", raw_server).await.unwrap();
    let got = got.expect("no clean TLS close (close_notify missing)");
    assert_eq!(got, frame.encode_to_vec().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_at_the_cap_over_tls() {
    let server = Running::start(server_tls("server", false), SessionConfig::default(), 1).await;
    let (first, first_collect) = connect(server.addr, false).await.unwrap();
    first.sender().send(Frame::message("first")).await.unwrap();
    common::wait_until("the echo", || !first_collect.frames().is_empty()).await;

    // At the cap: accepted and closed at once, before any handshake.
    let refused = connect(server.addr, false).await;
    assert!(refused.is_err(), "a connection beyond the cap was served");

    let seen = server.stop().await;
    within("the first client to end", first.join())
        .await
        .unwrap();
    assert_eq!(seen.made(), 1);
    assert_eq!(
        first_collect.events.snapshot(),
        ["connected", "disconnected: peer closed the connection"]
    );
    assert_eq!(first_collect.frames(), [Frame::message("first")]);
}
