//! Hostile peers on a TLS port, on every runtime through the facade:
//! garbage before the handshake, a handshake cut part-way, a handshake
//! trickled in under the idle timeout, a plain TEJ frame. None of them
//! reaches a handler; a good TLS client is served before and after.

use tej_test_support::{per_runtime, recorder};

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use recorder::{Record, Recorder, Seen};
use tej_core::{Frame, SessionConfig};
use tej_examples::runtime::{self, Endpoint, RunningServer, Runtime, ServerOptions};
use tej_examples::tls::{self, ClientTls};

const WAIT: Duration = Duration::from_secs(30);
const HANDSHAKE: Duration = Duration::from_millis(1500);
const IDLE: Duration = Duration::from_secs(1);

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/tls")
        .join(name)
}

fn client_tls() -> ClientTls {
    ClientTls {
        config: tls::client_config(Some(&testdata("ca.pem")), None).unwrap(),
        server_name: tls::server_name("localhost").unwrap(),
    }
}

fn serve(runtime: Runtime, record: &Record) -> RunningServer {
    let config = SessionConfig::default()
        .idle_timeout(Some(IDLE))
        .handshake_timeout(HANDSHAKE);
    let options = ServerOptions {
        tls: Some(
            tls::server_config(&testdata("server.pem"), &testdata("server.key"), None).unwrap(),
        ),
        ..ServerOptions::default()
    };
    let handler = Recorder::new(record);
    runtime::start_server_with(
        runtime,
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        config,
        options,
        move || handler.clone(),
    )
    .unwrap()
}

/// A good TLS client: one frame, answered by nothing, closed; the server's
/// handler sees it whole.
fn good_client(runtime: Runtime, server: &RunningServer, record: &Record, text: &str) {
    let before = record.received().len();
    let client = runtime::connect_with(
        runtime,
        server.endpoint(),
        Some(&client_tls()),
        Recorder::default(),
        SessionConfig::default(),
    )
    .unwrap();
    client
        .sender()
        .send_blocking(Frame::message(text.to_string()))
        .unwrap();
    client.close().unwrap();
    record.wait_until(text, WAIT, |seen| {
        seen.iter()
            .filter(|seen| matches!(seen, Seen::Received(_)))
            .count()
            > before
    });
    assert_eq!(record.received().last().unwrap().message_text(), text);
}

/// A real ClientHello, as rustls writes it.
fn client_hello() -> Vec<u8> {
    let tls = client_tls();
    let mut conn = rustls::ClientConnection::new(tls.config, tls.server_name).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    assert!(hello.len() > 100);
    hello
}

/// Reads until the server closes; returns what it sent and how long it took.
fn until_closed(mut stream: TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return (got, started.elapsed()),
            Ok(read) => got.extend_from_slice(&buffer[..read]),
        }
    }
}

fn hostile_peers_never_reach_a_handler(runtime: Runtime) {
    let record = Record::default();
    let server = serve(runtime, &record);
    let Endpoint::Tcp(addr) = server.endpoint().clone() else {
        unreachable!()
    };
    good_client(runtime, &server, &record, "before");

    // Garbage where the ClientHello should be.
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage.write_all(&[0x16; 3]).unwrap();
    garbage
        .write_all(b"\xff\xffGET / HTTP/1.1\r\n\r\n")
        .unwrap();
    let (answer, _) = until_closed(garbage);
    assert!(
        answer.is_empty() || answer[0] == 0x15,
        "at most a TLS alert: {answer:?}"
    );

    // A plain TEJ frame on the TLS port.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain
        .write_all(&Frame::message("in the clear").encode_to_vec().unwrap())
        .unwrap();
    let (answer, _) = until_closed(plain);
    assert!(answer.is_empty() || answer[0] == 0x15, "{answer:?}");

    // Half a ClientHello, then the peer goes away.
    let hello = client_hello();
    let mut cut = TcpStream::connect(addr).unwrap();
    cut.write_all(&hello[..hello.len() / 2]).unwrap();
    drop(cut);

    // The ClientHello a byte every 100 ms: never idle for IDLE, but the
    // handshake cannot finish within HANDSHAKE, which cuts it.
    let slow = TcpStream::connect(addr).unwrap();
    let mut writer = slow.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for byte in &hello {
            if writer.write_all(std::slice::from_ref(byte)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let (answer, took) = until_closed(slow);
    assert!(answer.is_empty() || answer[0] == 0x15, "{answer:?}");
    assert!(
        took >= HANDSHAKE - Duration::from_millis(200) && took < Duration::from_secs(10),
        "cut by the handshake timeout, not the idle timeout: {took:?}"
    );
    trickle.join().unwrap();

    good_client(runtime, &server, &record, "after");
    server.stop();
    let seen = record.snapshot();
    let connected = seen.iter().filter(|seen| **seen == Seen::Connected).count();
    assert_eq!(
        connected, 2,
        "only the two good clients reached a handler: {seen:?}"
    );
    assert_eq!(record.disconnects().len(), 2);
}

per_runtime! {
    check: every_runtime_is_attacked;
    runtimes: [tokio: "tokio", async_std: "async-std", smol: "smol", mio: "mio"];
    tests: {
        hostile_peers_never_reach_a_handler: hostile_peers_never_reach_a_handler();
    }
}
