//! Proves the interop harness itself (the Python reference implementation
//! driven by `tests/interop/reference_peer.py`, and the Rust support in
//! `tests/support/python.rs`) without any Rust TEJ code: the reference talks
//! to itself and to hand-built bytes on a plain `TcpStream`.
//!
//! Each test skips (printing `SKIP: ...`) when no Python with `tej-protoc`
//! can be provisioned, unless `TEJ_REQUIRE_INTEROP=1`.

use tej_test_support::python;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use python::{file_json, generated_file, hex, sha256_hex, ReferencePeer, DEFAULT_TIMEOUT};
use serde_json::{json, Value};

/// Builds a v1 frame by hand, exactly as the SPEC's table describes it.
fn frame(status: u8, version: u8, files: &[(&str, &[u8])], message: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | status, version];
    out.extend_from_slice(&(files.len() as u64).to_be_bytes());
    for (name, data) in files {
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(data.len() as u64).to_be_bytes());
        out.extend_from_slice(data);
    }
    out.extend_from_slice(&(message.len() as u64).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The reference as a server with `args`, and its port; `None` after a
/// `SKIP` line where it cannot be provisioned.
fn reference_server(args: &[&str]) -> Option<(ReferencePeer, u16)> {
    let python = python::reference_python()?;
    Some(ReferencePeer::server(&python, args))
}

/// The reference's connection ended, then the reference itself, with
/// exit status 0.
fn expect_clean_end(peer: &mut ReferencePeer) {
    peer.expect_event("disconnected", DEFAULT_TIMEOUT);
    peer.expect_event("done", DEFAULT_TIMEOUT);
    peer.expect_success(DEFAULT_TIMEOUT);
}

/// The reference as a server that exits once its one connection ends, and
/// that connection.
fn connected_reference_server() -> Option<(ReferencePeer, TcpStream)> {
    let (server, port) = reference_server(&["--exit-on-disconnect"])?;
    Some((server, connect(port)))
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the reference server");
    stream
        .set_read_timeout(Some(DEFAULT_TIMEOUT))
        .expect("set read timeout");
    stream
}

fn assert_frame(ev: &Value, kind: &str, status: u64, version: u64, files: Value, message: &[u8]) {
    assert_eq!(ev["event"], kind, "{ev}");
    assert_eq!(ev["status"], status, "{ev}");
    assert_eq!(ev["version"], version, "{ev}");
    assert_eq!(ev["files"], files, "{ev}");
    assert_eq!(ev["message_len"], message.len(), "{ev}");
    if message.is_empty() {
        assert_eq!(ev["message_hex"], Value::Null, "{ev}");
        assert_eq!(ev["message_sha256"], Value::Null, "{ev}");
    } else {
        assert_eq!(ev["message_hex"], hex(message), "{ev}");
        assert_eq!(ev["message_sha256"], sha256_hex(message), "{ev}");
    }
}

#[test]
fn generator_matches_the_documented_function() {
    assert_eq!(generated_file(4, 7), [0x07, 0x26, 0x45, 0x64]);
    assert_eq!(generated_file(0, 9), Vec::<u8>::new());
    let big = generated_file(1000, 255);
    assert_eq!(big.len(), 1000);
    assert_eq!(big[999], ((999u64 * 31 + 255) & 0xff) as u8);
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn reference_client_to_reference_server() {
    let Some(py) = python::reference_python() else {
        return;
    };
    let (mut server, port) = ReferencePeer::server(
        &py,
        [
            "--exit-on-disconnect",
            "--reply-to-each",
            r#"{"status":9,"message":"ack"}"#,
        ],
    );

    let all_bytes: Vec<u8> = (0..=255).collect();
    let first = json!({
        "status": 0,
        "message": "Hello",
        "files": [
            {"name": "a.bin", "size": 1_048_576, "seed": 7},
            {"name": "odd.bin", "size": 1000, "seed": 255},
            {"name": "bytes.bin", "data_hex": hex(&all_bytes)},
        ],
    });
    let third = json!({"status": 127, "version": 0, "message_hex": "00ff80"});
    let mut client = ReferencePeer::client(
        &py,
        port,
        [
            "--send-on-connect".to_string(),
            first.to_string(),
            "--send-on-connect".to_string(),
            r#"{"ping":true}"#.to_string(),
            "--send-on-connect".to_string(),
            third.to_string(),
            "--exit-after-frames".to_string(),
            "2".to_string(),
        ],
    );

    server.expect_event("connected", DEFAULT_TIMEOUT);
    let ev = server.expect_event("received", DEFAULT_TIMEOUT);
    let files = json!([
        file_json("a.bin", &generated_file(1_048_576, 7)),
        file_json("odd.bin", &generated_file(1000, 255)),
        file_json("bytes.bin", &all_bytes),
    ]);
    assert_frame(&ev, "received", 0, 1, files, b"Hello");
    let ev = server.expect_event("ping", DEFAULT_TIMEOUT);
    assert_frame(&ev, "ping", 2, 1, json!([]), b"");
    let ev = server.expect_event("received", DEFAULT_TIMEOUT);
    assert_frame(&ev, "received", 127, 0, json!([]), &[0x00, 0xff, 0x80]);
    assert_eq!(
        server.expect_event("disconnected", DEFAULT_TIMEOUT)["conn"],
        1
    );
    server.expect_event("done", DEFAULT_TIMEOUT);
    server.expect_success(DEFAULT_TIMEOUT);

    client.expect_event("connected", DEFAULT_TIMEOUT);
    for _ in 0..2 {
        let ev = client.expect_event("received", DEFAULT_TIMEOUT);
        assert_frame(&ev, "received", 9, 1, json!([]), b"ack");
    }
    expect_clean_end(&mut client);
}

#[test]
fn reference_server_decodes_hand_built_bytes() {
    let Some((mut server, mut stream)) = connected_reference_server() else {
        return;
    };

    let empty: [u8; 18] = [0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(frame(0, 1, &[], b""), empty);
    let hello = frame(0, 1, &[], b"Hello");
    assert_eq!(
        hex(&hello),
        "800100000000000000000000000000000005".to_owned() + "48656c6c6f"
    );
    let data = generated_file(70_000, 3);
    let mut wire = Vec::new();
    wire.extend_from_slice(&empty);
    wire.extend_from_slice(&hello);
    wire.extend_from_slice(&frame(2, 1, &[], b""));
    wire.extend_from_slice(&frame(100, 7, &[("x.bin", &data), ("e", b"")], b"\x00"));
    // Byte by byte for the first frames: the reference must reassemble.
    for b in &wire[..40] {
        stream.write_all(&[*b]).expect("write");
    }
    stream.write_all(&wire[40..]).expect("write");

    server.expect_event("connected", DEFAULT_TIMEOUT);
    let ev = server.expect_event("received", DEFAULT_TIMEOUT);
    assert_frame(&ev, "received", 0, 1, json!([]), b"");
    let ev = server.expect_event("received", DEFAULT_TIMEOUT);
    assert_frame(&ev, "received", 0, 1, json!([]), b"Hello");
    let ev = server.expect_event("ping", DEFAULT_TIMEOUT);
    assert_frame(&ev, "ping", 2, 1, json!([]), b"");
    let ev = server.expect_event("received", DEFAULT_TIMEOUT);
    let files = json!([file_json("x.bin", &data), file_json("e", b"")]);
    assert_frame(&ev, "received", 100, 7, files, b"\x00");

    drop(stream);
    expect_clean_end(&mut server);
}

#[test]
fn reference_server_drops_a_frame_without_the_status_bit() {
    let Some((mut server, mut stream)) = connected_reference_server() else {
        return;
    };
    let mut bad = frame(0, 1, &[], b"Hello");
    bad[0] = 0x00;
    stream.write_all(&bad).expect("write");

    server.expect_event("connected", DEFAULT_TIMEOUT);
    server.expect_event("disconnected", DEFAULT_TIMEOUT);
    server.expect_event("done", DEFAULT_TIMEOUT);
    // The reference closed the connection: we read EOF or a reset.
    let mut buf = [0u8; 16];
    match stream.read(&mut buf) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("unexpected {n} bytes from the reference"),
    }
}

#[test]
fn reference_server_sends_exact_bytes() {
    let Some((mut server, port)) = reference_server(&[
        "--send-on-connect",
        r#"{"message":"Hi"}"#,
        "--send-on-connect",
        r#"{"ping":true}"#,
        "--send-on-connect",
        r#"{"status":3,"files":[{"name":"f","size":5,"seed":1}]}"#,
        "--exit-after-frames",
        "1",
    ]) else {
        return;
    };
    let mut stream = connect(port);
    server.expect_event("connected", DEFAULT_TIMEOUT);
    stream.write_all(&frame(0, 1, &[], b"bye")).expect("write");

    // The server sends its three frames, then half-closes after our frame.
    let mut got = Vec::new();
    stream
        .read_to_end(&mut got)
        .expect("read until the reference closes");
    let mut expected = frame(0, 1, &[], b"Hi");
    expected.extend_from_slice(&frame(2, 1, &[], b""));
    expected.extend_from_slice(&frame(3, 1, &[("f", &generated_file(5, 1))], b""));
    assert_eq!(hex(&got), hex(&expected));

    let ev = server.expect_event("received", DEFAULT_TIMEOUT);
    assert_frame(&ev, "received", 0, 1, json!([]), b"bye");
    stream.shutdown(Shutdown::Both).expect("shutdown");
    expect_clean_end(&mut server);
}

#[test]
fn reference_peer_stops_at_its_deadline() {
    let Some((mut server, _port)) = reference_server(&["--deadline", "1"]) else {
        return;
    };
    server.expect_event("deadline", Duration::from_secs(15));
    let status = server
        .wait_exit(Duration::from_secs(15))
        .expect("the reference exits at its deadline");
    assert_eq!(status.code(), Some(3));
}
