//! The PROXY step as adapters run it: a header read a piece at a time,
//! never past its end, and the admission as the `io::Error` kinds a
//! handshake step reports.

use std::io::{ErrorKind, Read};
use std::net::SocketAddr;

use tej_net::proxy::{is_health_check, is_proxy_error, Addresses, HeaderRead};

const BALANCER: &str = "10.0.0.2:40000";

/// Reads a header from `wire` in reads of at most `chunk` bytes; returns
/// the answer and the bytes left unread.
fn read_header(wire: &[u8], chunk: usize) -> (std::io::Result<Addresses>, Vec<u8>) {
    let balancer: SocketAddr = BALANCER.parse().unwrap();
    let mut stream = wire;
    let mut read = HeaderRead::new(4096, Some(balancer));
    // A header is at most 4096 bytes, so a read that never answers fails
    // the test rather than hang it.
    for _ in 0..=4096 {
        let buf = read.buf();
        let limit = buf.len().min(chunk);
        let n = stream.read(&mut buf[..limit]).unwrap();
        if let Some(result) = read.filled(n) {
            return (result, stream.to_vec());
        }
    }
    panic!("the header read never answered");
}

#[test]
fn a_proxied_client_is_served_and_the_session_bytes_stay_unread() {
    let mut wire = b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n".to_vec();
    wire.extend_from_slice(&[0x80, 0x01, 0x00]);
    for chunk in [1, 3, 7, 256] {
        let (result, rest) = read_header(&wire, chunk);
        let (peer, proxy) = result.unwrap();
        assert_eq!(peer, Some("192.0.2.1:56324".parse().unwrap()));
        assert_eq!(proxy, Some(BALANCER.parse().unwrap()));
        assert_eq!(rest, [0x80, 0x01, 0x00], "chunk {chunk}");
    }
}

#[test]
fn health_checks_are_told_apart_from_refusals() {
    let mut local = b"\r\n\r\n\x00\r\nQUIT\n".to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    let error = read_header(&local, 256).0.unwrap_err();
    assert!(is_health_check(&error));
    assert!(!is_proxy_error(&error));
    assert_eq!(error.kind(), ErrorKind::ConnectionAborted);
    assert!(!error.to_string().is_empty(), "says what it was");

    let bare = read_header(b"", 256).0.unwrap_err();
    assert!(is_health_check(&bare), "closed before a byte: a TCP check");

    let garbage = read_header(b"GET / HTTP/1.1\r\n\r\n", 256).0.unwrap_err();
    assert!(!is_health_check(&garbage));
    assert!(is_proxy_error(&garbage));
    assert_eq!(garbage.kind(), ErrorKind::InvalidData);

    let cut = read_header(b"PROXY TCP4 192.0", 256).0.unwrap_err();
    assert!(!is_health_check(&cut));
    assert!(is_proxy_error(&cut));
    assert_eq!(cut.kind(), ErrorKind::UnexpectedEof);
    // Another error is neither.
    let other = std::io::Error::from(ErrorKind::ConnectionReset);
    assert!(!is_proxy_error(&other) && !is_health_check(&other));
}
