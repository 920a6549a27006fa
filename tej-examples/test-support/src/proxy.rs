//! PROXY protocol headers as a load balancer writes them before a
//! connection's first byte.

use std::net::SocketAddr;

/// The v2 signature.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// A v1 header over TCP4.
pub fn v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    format!(
        "PROXY TCP4 {} {} {} {}\r\n",
        source.ip(),
        destination.ip(),
        source.port(),
        destination.port()
    )
    .into_bytes()
}

/// A v2 header over TCP4 (`local`: a `LOCAL` one, as a health check sends).
pub fn v2(source: SocketAddr, destination: SocketAddr, local: bool) -> Vec<u8> {
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

/// The client a balancer names in its headers (TEST-NET-3).
pub fn client_address() -> SocketAddr {
    "203.0.113.7:40001".parse().unwrap()
}

/// Preambles a PROXY server must refuse before any handler: no header (a
/// TEJ frame first), a v1 header with a bad address, HTTP, a v2 signature
/// with version 3.
pub fn invalid_preambles(frame: &[u8]) -> [Vec<u8>; 4] {
    [
        frame.to_vec(),
        b"PROXY TCP4 not-an-address 10.0.0.1 1 2\r\n".to_vec(),
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c".to_vec(),
    ]
}
