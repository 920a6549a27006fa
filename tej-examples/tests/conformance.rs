//! One conformance suite for every adapter: each scenario is written once
//! against the blocking facade in `tej_examples::runtime` and instantiated
//! per runtime, per cross-runtime pair and per transport (TCP, Unix
//! sockets, TLS) by `conformance!` below.

#[path = "support/recorder.rs"]
mod recorder;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use recorder::{hex_sha256, Record, Recorder, Seen};
use tej_core::{Assembler, Frame, FrameBuilder, Limits, SendError, SessionConfig, Status};
use tej_examples::runtime::{self, Endpoint, RunningClient, RunningServer, Runtime, ServerOptions};
use tej_examples::tls::{self, ClientTls};

const WAIT: Duration = Duration::from_secs(30);

/// The transport a scenario runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    Tcp,
    Unix,
    Tls,
}

/// Who serves, who connects, and over what.
#[derive(Debug, Clone, Copy)]
struct Setup {
    server: Runtime,
    client: Runtime,
    net: Net,
}

fn testdata(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/tls")
        .join(name)
}

fn client_tls() -> ClientTls {
    ClientTls {
        config: tls::client_config(Some(&testdata("ca.pem")), None).unwrap(),
        server_name: tls::server_name("localhost").unwrap(),
    }
}

/// A server of a scenario, with the directory of its Unix socket.
struct TestServer {
    server: RunningServer,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    fn endpoint(&self) -> &Endpoint {
        self.server.endpoint()
    }

    fn stop(self) {
        self.server.stop();
    }
}

fn serve(s: Setup, config: SessionConfig, handler: Recorder) -> TestServer {
    let (bind, dir) = match s.net {
        Net::Tcp | Net::Tls => (SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into(), None),
        Net::Unix => {
            let dir = tempfile::tempdir().unwrap();
            (Endpoint::Unix(dir.path().join("tej.sock")), Some(dir))
        }
    };
    let options = ServerOptions {
        tls: (s.net == Net::Tls).then(|| {
            tls::server_config(&testdata("server.pem"), &testdata("server.key"), None).unwrap()
        }),
        ..ServerOptions::default()
    };
    let server =
        runtime::start_server_with(s.server, bind, config, options, move || handler.clone())
            .expect("server starts");
    TestServer { server, _dir: dir }
}

fn connect(
    s: Setup,
    server: &TestServer,
    handler: Recorder,
    config: SessionConfig,
) -> RunningClient {
    let tls = (s.net == Net::Tls).then(client_tls);
    runtime::connect_with(s.client, server.endpoint(), tls.as_ref(), handler, config)
        .expect("client connects")
}

/// A raw byte stream to the server, over the scenario's transport.
enum Raw {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Raw {
    fn connect(s: Setup, server: &TestServer) -> Raw {
        match server.endpoint() {
            Endpoint::Unix(path) => Raw::Unix(UnixStream::connect(path).unwrap()),
            Endpoint::Tcp(addr) => {
                let tcp = TcpStream::connect(addr).unwrap();
                if s.net == Net::Tls {
                    let tls = client_tls();
                    let mut conn =
                        rustls::ClientConnection::new(tls.config, tls.server_name).unwrap();
                    let mut tcp = tcp;
                    // The server makes no handler before the handshake: finish it.
                    while conn.is_handshaking() {
                        conn.complete_io(&mut tcp).unwrap();
                    }
                    Raw::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
                } else {
                    Raw::Tcp(tcp)
                }
            }
        }
    }

    fn set_read_timeout(&self, timeout: Duration) {
        match self {
            Raw::Tcp(stream) => stream.set_read_timeout(Some(timeout)).unwrap(),
            Raw::Unix(stream) => stream.set_read_timeout(Some(timeout)).unwrap(),
            Raw::Tls(stream) => stream.sock.set_read_timeout(Some(timeout)).unwrap(),
        }
    }
}

impl Read for Raw {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Raw::Tcp(stream) => stream.read(buf),
            Raw::Unix(stream) => stream.read(buf),
            Raw::Tls(stream) => stream.read(buf),
        }
    }
}

impl Write for Raw {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Raw::Tcp(stream) => stream.write(buf),
            Raw::Unix(stream) => stream.write(buf),
            Raw::Tls(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Raw::Tcp(stream) => stream.flush(),
            Raw::Unix(stream) => stream.flush(),
            Raw::Tls(stream) => stream.flush(),
        }
    }
}

fn numbered(prefix: &str, i: usize) -> Frame {
    FrameBuilder::new(Status::new((i % 100) as u8 + 10).unwrap())
        .file(format!("{prefix}-{i}.bin"), vec![i as u8; i * 37 % 5000])
        .message(format!("{prefix}-{i}"))
        .build()
}

fn texts(record: &Record) -> Vec<String> {
    record
        .received()
        .iter()
        .map(|frame| frame.message_text())
        .collect()
}

fn ended(seen: &[Seen]) -> bool {
    matches!(seen.last(), Some(Seen::Disconnected(_)))
}

/// `connected`, then every frame in order (pings to `ping_received`), then
/// `disconnected` once, on both sides.
fn callback_order(s: Setup) {
    let server_record = Record::default();
    let server = serve(s, SessionConfig::default(), Recorder::new(&server_record));
    let client_record = Record::default();
    let client = connect(
        s,
        &server,
        Recorder::new(&client_record),
        SessionConfig::default(),
    );
    let sender = client.sender();
    for i in 0..50 {
        sender.send_blocking(numbered("c", i)).unwrap();
        if i % 10 == 0 {
            sender.send_blocking(Frame::ping()).unwrap();
        }
    }
    server_record.wait_until("50 frames", WAIT, |seen| seen.len() >= 1 + 50 + 5);
    client.close().unwrap();
    let seen = server_record.wait_until("disconnect", WAIT, ended);

    assert_eq!(seen[0], Seen::Connected);
    let mut expected_frames = 0;
    for (i, event) in seen[1..seen.len() - 1].iter().enumerate() {
        match event {
            Seen::Received(frame) => {
                assert_eq!(
                    frame.message_text(),
                    format!("c-{expected_frames}"),
                    "at {i}"
                );
                expected_frames += 1;
            }
            Seen::Ping(frame) => assert_eq!(frame.status, 2),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(expected_frames, 50);
    assert_eq!(
        seen.last(),
        Some(&Seen::Disconnected("peer closed the connection".into()))
    );
    assert_eq!(
        client_record.snapshot(),
        vec![Seen::Connected, Seen::Disconnected("closed locally".into())]
    );
    server.stop();
    assert_eq!(
        server_record.disconnects().len(),
        1,
        "disconnected exactly once"
    );
}

/// A ping goes to `ping_received`, never `received`; periodic pings too.
fn ping(s: Setup) {
    let server_record = Record::default();
    let server = serve(s, SessionConfig::default(), Recorder::new(&server_record));
    let config = SessionConfig::default().ping_interval(Some(Duration::from_millis(50)));
    let client = connect(s, &server, Recorder::default(), config);
    server_record.wait_until("three periodic pings", WAIT, |seen| {
        seen.iter()
            .filter(|seen| matches!(seen, Seen::Ping(_)))
            .count()
            >= 3
    });
    client.close().unwrap();
    server_record.wait_until("disconnect", WAIT, ended);
    assert!(
        server_record.received().is_empty(),
        "pings never reach received"
    );
    server.stop();
}

/// Both sides stream at once: nothing lost, order kept per direction.
fn full_duplex(s: Setup) {
    const COUNT: usize = 500;
    let server_record = Record::default();
    let mut server_handler = Recorder::new(&server_record);
    server_handler.push_on_connect = COUNT;
    let server = serve(s, SessionConfig::default(), server_handler);
    let client_record = Record::default();
    let client = connect(
        s,
        &server,
        Recorder::new(&client_record),
        SessionConfig::default(),
    );
    let sender = client.sender();
    for i in 0..COUNT {
        sender.send_blocking(numbered("c", i)).unwrap();
    }
    server_record.wait_until("the client's stream", WAIT, |seen| seen.len() > COUNT);
    client_record.wait_until("the server's stream", WAIT, |seen| seen.len() > COUNT);
    assert_eq!(
        texts(&server_record),
        (0..COUNT).map(|i| format!("c-{i}")).collect::<Vec<_>>()
    );
    assert_eq!(
        texts(&client_record),
        (0..COUNT).map(|i| format!("push-{i}")).collect::<Vec<_>>()
    );
    let sent_files: Vec<_> = (0..COUNT).map(|i| numbered("c", i)).collect();
    for (received, sent) in server_record.received().iter().zip(&sent_files) {
        assert_eq!(
            received.files[0].sha256,
            hex_sha256(sent.files[0].data().unwrap())
        );
    }
    client.close().unwrap();
    server.stop();
}

/// The server pushes through a `Sender` from a thread of the test's own.
fn server_push_from_another_thread(s: Setup) {
    let server_record = Record::default();
    let server = serve(s, SessionConfig::default(), Recorder::new(&server_record));
    let client_record = Record::default();
    let client = connect(
        s,
        &server,
        Recorder::new(&client_record),
        SessionConfig::default(),
    );
    server_record.wait_until("connected", WAIT, |seen| !seen.is_empty());
    let sender = server_record.senders().remove(0);
    let pusher = std::thread::spawn(move || {
        for i in 0..100 {
            sender.send_blocking(numbered("s", i)).unwrap();
        }
    });
    pusher.join().unwrap();
    client_record.wait_until("100 pushed frames", WAIT, |seen| seen.len() > 100);
    assert_eq!(
        texts(&client_record),
        (0..100).map(|i| format!("s-{i}")).collect::<Vec<_>>()
    );
    client.close().unwrap();
    server.stop();
}

/// A peer that does not read: the Sender's queue stops at its bound, and
/// everything arrives once the peer reads.
fn backpressure_with_a_slow_reader(s: Setup) {
    const CAPACITY: usize = 256 * 1024;
    let server_record = Record::default();
    let config = SessionConfig::default()
        .send_queue_capacity(CAPACITY)
        .outbox_high_water(256 * 1024);
    let server = serve(s, config, Recorder::new(&server_record));
    let mut peer = Raw::connect(s, &server);
    server_record.wait_until("connected", WAIT, |seen| !seen.is_empty());
    let sender = server_record.senders().remove(0);

    let frame = Frame::message(vec![0xab; 64 * 1024]);
    let mut accepted = 0usize;
    let deadline = Instant::now() + WAIT;
    loop {
        match sender.try_send(frame.clone()) {
            Ok(()) => accepted += 1,
            Err(SendError::Full(back)) => {
                assert_eq!(back, frame, "the refused frame comes back");
                // Full may be momentary while the socket still drains; full
                // twice in a row after a pause means the peer's buffers are full.
                std::thread::sleep(Duration::from_millis(100));
                if matches!(sender.try_send(frame.clone()), Err(SendError::Full(_))) {
                    break;
                }
                accepted += 1;
            }
            Err(other) => panic!("{other}"),
        }
        assert!(Instant::now() < deadline, "the queue never filled");
        assert!(accepted < 100_000, "the queue is not bounded");
    }
    assert!(sender.queued_bytes() <= CAPACITY + 64 * 1024 + 64);

    // The peer now reads everything: every accepted frame arrives whole.
    let mut assembler = Assembler::new(Limits::default());
    let mut buffer = vec![0u8; 256 * 1024];
    let mut frames = 0usize;
    peer.set_read_timeout(Duration::from_secs(5));
    while frames < accepted {
        let read = peer.read(&mut buffer).expect("the rest arrives");
        assert!(read > 0, "closed early after {frames} of {accepted} frames");
        let mut rest = &buffer[..read];
        loop {
            let assembled = assembler.decode(rest).unwrap();
            rest = &rest[assembled.consumed..];
            match assembled.frame {
                Some(received) => {
                    assert_eq!(received, frame);
                    frames += 1;
                }
                None => break,
            }
        }
    }
    drop(peer);
    server.stop();
}

/// No input for the idle timeout closes the connection and says so.
fn idle_timeout(s: Setup) {
    let server_record = Record::default();
    let config = SessionConfig::default().idle_timeout(Some(Duration::from_millis(300)));
    let server = serve(s, config, Recorder::new(&server_record));
    let client_record = Record::default();
    let started = Instant::now();
    let client = connect(
        s,
        &server,
        Recorder::new(&client_record),
        SessionConfig::default(),
    );
    let seen = server_record.wait_until("idle timeout", WAIT, ended);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        seen.last(),
        Some(&Seen::Disconnected("idle timeout".into()))
    );
    client.join().unwrap();
    assert_eq!(client_record.disconnects(), ["peer closed the connection"]);
    server.stop();
}

/// Shutdown lets a frame being received finish, then closes every connection.
fn graceful_shutdown(s: Setup) {
    let server_record = Record::default();
    let mut handler = Recorder::new(&server_record);
    handler.reply = Some(Frame::message("ack"));
    let server = serve(s, SessionConfig::default(), handler);
    let client_record = Record::default();
    let client = connect(
        s,
        &server,
        Recorder::new(&client_record),
        SessionConfig::default(),
    );
    let mut raw = Raw::connect(s, &server);
    let wire = numbered("half", 7).encode_to_vec().unwrap();
    raw.write_all(&wire[..wire.len() / 2]).unwrap();
    server_record.wait_until("both connected", WAIT, |seen| {
        seen.iter().filter(|seen| **seen == Seen::Connected).count() == 2
    });
    let deadline = Instant::now() + WAIT;
    while server_record.files_started() == 0 {
        assert!(Instant::now() < deadline, "the half frame never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }

    let stopping = std::thread::spawn(move || server.stop());
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !stopping.is_finished(),
        "shutdown waits for the frame in progress"
    );
    raw.write_all(&wire[wire.len() / 2..]).unwrap();
    stopping.join().unwrap();

    assert_eq!(texts(&server_record), ["half-7"]);
    let mut reply = Vec::new();
    raw.set_read_timeout(Duration::from_secs(5));
    raw.read_to_end(&mut reply).unwrap();
    assert_eq!(
        reply,
        Frame::message("ack").encode_to_vec().unwrap(),
        "the reply is flushed before closing"
    );
    client.join().unwrap();
    assert_eq!(client_record.disconnects(), ["peer closed the connection"]);
    assert_eq!(
        server_record.disconnects(),
        ["closed locally", "closed locally"]
    );
}

/// A malformed frame closes only its connection, with its typed reason.
fn malformed_frame_closes_only_that_connection(s: Setup) {
    let server_record = Record::default();
    let mut handler = Recorder::new(&server_record);
    handler.reply = Some(Frame::message("ack"));
    let server = serve(s, SessionConfig::default(), handler);
    let client_record = Record::default();
    let client = connect(
        s,
        &server,
        Recorder::new(&client_record),
        SessionConfig::default(),
    );
    client
        .sender()
        .send_blocking(Frame::message("before"))
        .unwrap();
    client_record.wait_until("first ack", WAIT, |seen| seen.len() >= 2);

    let mut bad = Raw::connect(s, &server);
    bad.write_all(&[0x05, 0x01, 0, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    server_record.wait_until("the bad connection's end", WAIT, |seen| {
        seen.iter()
            .any(|seen| matches!(seen, Seen::Disconnected(_)))
    });
    assert_eq!(
        server_record.disconnects(),
        ["protocol error: status bit is 0 in first byte 0x05 of a frame at offset 0"]
    );
    let mut rest = Vec::new();
    bad.set_read_timeout(Duration::from_secs(5));
    let _ = bad.read_to_end(&mut rest);
    assert!(rest.is_empty(), "nothing is sent to the bad peer");

    client
        .sender()
        .send_blocking(Frame::message("after"))
        .unwrap();
    client_record.wait_until("second ack", WAIT, |seen| seen.len() >= 3);
    assert_eq!(texts(&client_record), ["ack", "ack"]);
    client.close().unwrap();
    server.stop();
}

/// A large file streamed from disk and spooled to disk, verified by hash.
fn large_file_to_disk(s: Setup) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let source = dir.join("source.bin");
    let content: Vec<u8> = (0..48u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(&source, &content).unwrap();

    let server_record = Record::default();
    let mut handler = Recorder::new(&server_record);
    handler.spool_dir = Some(dir.join("spool"));
    let server = serve(s, SessionConfig::default(), handler);
    let client = connect(s, &server, Recorder::default(), SessionConfig::default());
    client
        .sender()
        .send_blocking(
            FrameBuilder::new(Status::DEFAULT)
                .add_file(tej_net::file::from_path("large.bin", &source).unwrap())
                .message("large")
                .build(),
        )
        .unwrap();
    server_record.wait_until("the large file", WAIT, |seen| seen.len() >= 2);
    let received = server_record.received();
    assert_eq!(received[0].files[0].size, content.len() as u64);
    assert_eq!(received[0].files[0].sha256, hex_sha256(&content));
    client.close().unwrap();
    server.stop();
}

/// Instantiates every scenario for every runtime, and the scenarios that
/// involve both sides for each cross-runtime pair.
macro_rules! conformance {
    ($($module:ident: $server:ident, $client:ident, $net:ident;)*) => {
        $(
            mod $module {
                use super::*;

                const S: Setup = Setup {
                    server: Runtime::$server,
                    client: Runtime::$client,
                    net: Net::$net,
                };

                #[test]
                fn callback_order() {
                    super::callback_order(S);
                }
                #[test]
                fn ping() {
                    super::ping(S);
                }
                #[test]
                fn full_duplex() {
                    super::full_duplex(S);
                }
                #[test]
                fn server_push_from_another_thread() {
                    super::server_push_from_another_thread(S);
                }
                #[test]
                fn backpressure_with_a_slow_reader() {
                    super::backpressure_with_a_slow_reader(S);
                }
                #[test]
                fn idle_timeout() {
                    super::idle_timeout(S);
                }
                #[test]
                fn graceful_shutdown() {
                    super::graceful_shutdown(S);
                }
                #[test]
                fn malformed_frame_closes_only_that_connection() {
                    super::malformed_frame_closes_only_that_connection(S);
                }
                #[test]
                fn large_file_to_disk() {
                    super::large_file_to_disk(S);
                }
            }
        )*
    };
}

conformance! {
    tokio: Tokio, Tokio, Tcp;
    async_std: AsyncStd, AsyncStd, Tcp;
    smol: Smol, Smol, Tcp;
    mio: Mio, Mio, Tcp;
    async_std_server_tokio_client: AsyncStd, Tokio, Tcp;
    tokio_server_async_std_client: Tokio, AsyncStd, Tcp;
    mio_server_tokio_client: Mio, Tokio, Tcp;
    async_std_server_mio_client: AsyncStd, Mio, Tcp;
    smol_server_mio_client: Smol, Mio, Tcp;
    tokio_server_smol_client: Tokio, Smol, Tcp;

    unix_tokio: Tokio, Tokio, Unix;
    unix_async_std: AsyncStd, AsyncStd, Unix;
    unix_smol: Smol, Smol, Unix;
    unix_mio: Mio, Mio, Unix;
    unix_mio_server_smol_client: Mio, Smol, Unix;

    tls_tokio: Tokio, Tokio, Tls;
    tls_async_std: AsyncStd, AsyncStd, Tls;
    tls_smol: Smol, Smol, Tls;
    tls_mio: Mio, Mio, Tls;
    tls_tokio_server_mio_client: Tokio, Mio, Tls;
    tls_mio_server_async_std_client: Mio, AsyncStd, Tls;
    tls_async_std_server_smol_client: AsyncStd, Smol, Tls;
    tls_smol_server_tokio_client: Smol, Tokio, Tls;
}
