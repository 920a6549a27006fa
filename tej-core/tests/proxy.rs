//! The PROXY protocol header reader: golden headers as HAProxy sends them,
//! every way of feeding them, never a byte past the header, each error, the
//! size bound, and property tests (no panic; encode → decode round-trips).

use std::net::{IpAddr, SocketAddr};

mod common;

use proptest::prelude::*;
use tej_core::proxy::{
    ProxyAddresses, ProxyCommand, ProxyDecoder, ProxyError, ProxyHeader, ProxyTransport,
    ProxyVersion, V1Field, DEFAULT_MAX_LEN, MAX_LEN, V1_MAX_LEN, V2_SIGNATURE,
};

/// The first bytes of a TEJ frame, which must stay in the socket.
const TEJ: &[u8] = &[0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

// ---------------------------------------------------------------------------
// A test-only encoder.

fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82F6_3B78 & mask);
        }
    }
    !crc
}

fn v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let proto = if source.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {proto} {} {} {} {}\r\n",
        source.ip(),
        destination.ip(),
        source.port(),
        destination.port()
    )
    .into_bytes()
}

/// A v2 header: `ver_cmd`, family byte, address block, TLVs; with
/// `crc`, a CRC32c TLV is appended and filled in.
fn v2_raw(ver_cmd: u8, family: u8, addresses: &[u8], tlvs: &[(u8, Vec<u8>)], crc: bool) -> Vec<u8> {
    let mut body = addresses.to_vec();
    for (kind, value) in tlvs {
        body.push(*kind);
        body.extend_from_slice(&(value.len() as u16).to_be_bytes());
        body.extend_from_slice(value);
    }
    if crc {
        body.extend_from_slice(&[0x03, 0, 4, 0, 0, 0, 0]);
    }
    let mut out = V2_SIGNATURE.to_vec();
    out.push(ver_cmd);
    out.push(family);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&body);
    if crc {
        let sum = crc32c(&out);
        let at = out.len() - 4;
        out[at..].copy_from_slice(&sum.to_be_bytes());
    }
    out
}

fn v2_addresses(source: SocketAddr, destination: SocketAddr) -> (u8, Vec<u8>) {
    let mut block = Vec::new();
    let family = match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            block.extend_from_slice(&s.octets());
            block.extend_from_slice(&d.octets());
            0x11
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            block.extend_from_slice(&s.octets());
            block.extend_from_slice(&d.octets());
            0x21
        }
        _ => panic!("mixed families"),
    };
    block.extend_from_slice(&source.port().to_be_bytes());
    block.extend_from_slice(&destination.port().to_be_bytes());
    (family, block)
}

fn v2(source: SocketAddr, destination: SocketAddr, tlvs: &[(u8, Vec<u8>)], crc: bool) -> Vec<u8> {
    let (family, block) = v2_addresses(source, destination);
    v2_raw(0x21, family, &block, tlvs, crc)
}

// ---------------------------------------------------------------------------
// Ways of feeding a decoder, from a "socket" that holds more than the header.

/// Reads in the chunk sizes `wanted()` asks for (capped by `cap`), as an
/// adapter does. Returns the result and how many bytes were taken.
fn read_wanted(
    stream: &[u8],
    max_len: usize,
    cap: usize,
) -> (Result<ProxyHeader, ProxyError>, usize) {
    let mut decoder = ProxyDecoder::new(max_len);
    let mut at = 0;
    loop {
        let wanted = decoder.wanted();
        assert!(wanted > 0, "a pending decoder always wants something");
        let n = wanted.min(cap).min(stream.len() - at);
        if n == 0 {
            assert_eq!(decoder.consumed(), at);
            return (decoder.finish(), at);
        }
        let chunk = &stream[at..at + n];
        at += n;
        match decoder.push(chunk) {
            Ok(Some(header)) => {
                assert_eq!(decoder.wanted(), 0);
                assert_eq!(decoder.consumed(), at);
                assert_eq!(header.len, at);
                return (Ok(header), at);
            }
            Ok(None) => {}
            Err(error) => {
                assert_eq!(decoder.wanted(), 0);
                // Sticky.
                assert_eq!(decoder.push(&[]), Err(error));
                assert_eq!(decoder.finish(), Err(error));
                return (Err(error), at);
            }
        }
    }
}

fn decode(stream: &[u8]) -> (Result<ProxyHeader, ProxyError>, usize) {
    read_wanted(stream, DEFAULT_MAX_LEN, usize::MAX)
}

/// Decodes `header` followed by TEJ bytes in wanted-sized chunks and byte
/// by byte; both agree and neither takes a byte of the session.
fn decode_exact(header: &[u8]) -> ProxyHeader {
    let mut stream = header.to_vec();
    stream.extend_from_slice(TEJ);
    let (whole, taken) = decode(&stream);
    let whole = whole.unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(header)));
    assert_eq!(taken, header.len(), "over- or under-read");
    assert_eq!(whole.len, header.len());
    let (bytewise, taken) = read_wanted(&stream, DEFAULT_MAX_LEN, 1);
    assert_eq!(bytewise, Ok(whole));
    assert_eq!(taken, header.len());
    for cap in [2, 3, 7, 16, 17] {
        assert_eq!(
            read_wanted(&stream, DEFAULT_MAX_LEN, cap),
            (Ok(whole), header.len())
        );
    }
    whole
}

fn decode_err(stream: &[u8]) -> ProxyError {
    decode(stream).0.expect_err("should be refused")
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn proxied(
    version: ProxyVersion,
    transport: ProxyTransport,
    source: &str,
    destination: &str,
    len: usize,
) -> ProxyHeader {
    ProxyHeader {
        version,
        command: ProxyCommand::Proxied,
        transport,
        addresses: Some(ProxyAddresses {
            source: addr(source),
            destination: addr(destination),
        }),
        len,
    }
}

// ---------------------------------------------------------------------------
// Golden headers.

#[test]
fn v1_tcp4_golden() {
    // The spec's example, as HAProxy's `send-proxy` writes it.
    let line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    let header = decode_exact(line);
    assert_eq!(
        header,
        proxied(
            ProxyVersion::V1,
            ProxyTransport::Tcp4,
            "192.168.0.1:56324",
            "192.168.0.11:443",
            47
        )
    );
    assert_eq!(header.source(), Some(addr("192.168.0.1:56324")));
    assert_eq!(header.destination(), Some(addr("192.168.0.11:443")));
}

#[test]
fn v1_tcp6_golden() {
    let line = b"PROXY TCP6 2001:db8::1 2001:db8::ff 51234 8080\r\n";
    assert_eq!(
        decode_exact(line),
        proxied(
            ProxyVersion::V1,
            ProxyTransport::Tcp6,
            "[2001:db8::1]:51234",
            "[2001:db8::ff]:8080",
            line.len()
        )
    );
    // The spec's worst case for TCP6: 104 bytes.
    let worst = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(worst.len(), 104);
    let max = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535";
    assert_eq!(
        decode_exact(worst),
        proxied(ProxyVersion::V1, ProxyTransport::Tcp6, max, max, 104)
    );
    // An IPv4-mapped address, as HAProxy writes for a v4 client on a v6 bind.
    let mapped = b"PROXY TCP6 ::ffff:10.0.0.1 ::1 40000 7000\r\n";
    assert_eq!(
        decode_exact(mapped).source(),
        Some(addr("[::ffff:10.0.0.1]:40000"))
    );
}

#[test]
fn v1_unknown_golden() {
    let unknown = ProxyHeader {
        version: ProxyVersion::V1,
        command: ProxyCommand::Proxied,
        transport: ProxyTransport::Unspecified,
        addresses: None,
        len: 15,
    };
    assert_eq!(decode_exact(b"PROXY UNKNOWN\r\n"), unknown);
    // The spec's worst case: 107 bytes, everything after UNKNOWN ignored.
    let worst = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(worst.len(), V1_MAX_LEN);
    assert_eq!(
        decode_exact(worst),
        ProxyHeader {
            len: 107,
            ..unknown
        }
    );
}

#[test]
fn v2_tcp4_golden() {
    // `send-proxy-v2`, no TLVs: 28 bytes.
    let header: &[u8] = &[
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, // signature
        0x21, 0x11, 0x00, 0x0C, // v2 PROXY, TCP over IPv4, 12 bytes
        0xC0, 0xA8, 0x00, 0x01, // 192.168.0.1
        0xC0, 0xA8, 0x00, 0x0B, // 192.168.0.11
        0xDC, 0x04, 0x01, 0xBB, // 56324, 443
    ];
    assert_eq!(
        decode_exact(header),
        proxied(
            ProxyVersion::V2,
            ProxyTransport::Tcp4,
            "192.168.0.1:56324",
            "192.168.0.11:443",
            28
        )
    );
    assert_eq!(
        header,
        &v2(
            addr("192.168.0.1:56324"),
            addr("192.168.0.11:443"),
            &[],
            false
        )[..]
    );
}

#[test]
fn v2_tcp6_golden() {
    let mut header = V2_SIGNATURE.to_vec();
    header.extend_from_slice(&[0x21, 0x21, 0x00, 0x24]);
    header.extend_from_slice(&[
        0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
    ]);
    header.extend_from_slice(&[
        0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
    ]);
    header.extend_from_slice(&[0xC8, 0x22, 0x1F, 0x90]);
    assert_eq!(header.len(), 52);
    assert_eq!(
        decode_exact(&header),
        proxied(
            ProxyVersion::V2,
            ProxyTransport::Tcp6,
            "[2001:db8::1]:51234",
            "[2001:db8::2]:8080",
            52
        )
    );
}

/// TLVs HAProxy may add: ALPN, authority, unique id, SSL with sub-TLVs,
/// netns, NOOP padding, and (with `proxy-v2-options crc32c`) the checksum.
fn haproxy_tlvs() -> Vec<(u8, Vec<u8>)> {
    let mut ssl = vec![0x01, 0x00, 0x00, 0x00, 0x00]; // client: SSL; verify: 0
    ssl.extend_from_slice(&[0x21, 0x00, 0x07]);
    ssl.extend_from_slice(b"TLSv1.3");
    vec![
        (0x01, b"h2".to_vec()),
        (0x02, b"tej.example.com".to_vec()),
        (0x05, b"4A2B3C".to_vec()),
        (0x20, ssl),
        (0x30, b"blue".to_vec()),
        (0x04, vec![0; 3]),
        (0xE0, Vec::new()),
    ]
}

#[test]
fn v2_with_tlvs_golden() {
    let (s4, d4) = (addr("10.1.2.3:40000"), addr("10.9.8.7:7000"));
    let (s6, d6) = (addr("[fe80::1]:1"), addr("[::1]:65535"));
    for crc in [false, true] {
        let header = v2(s4, d4, &haproxy_tlvs(), crc);
        assert_eq!(
            decode_exact(&header),
            proxied(
                ProxyVersion::V2,
                ProxyTransport::Tcp4,
                "10.1.2.3:40000",
                "10.9.8.7:7000",
                header.len()
            )
        );
        let header = v2(s6, d6, &haproxy_tlvs(), crc);
        assert_eq!(
            decode_exact(&header).addresses,
            Some(ProxyAddresses {
                source: s6,
                destination: d6
            })
        );
    }
    // A CRC TLV alone, then one in the middle of others.
    let header = v2(s4, d4, &[], true);
    assert_eq!(header.len(), 28 + 7);
    decode_exact(&header);
}

#[test]
fn crc32c_check_value() {
    // The Castagnoli check value; the test encoder is trustworthy.
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn v2_local_golden() {
    // What HAProxy's health checks send with `send-proxy-v2`: LOCAL, UNSPEC,
    // no addresses.
    let check: &[u8] = &[
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0x00,
        0x00,
    ];
    let local = ProxyHeader {
        version: ProxyVersion::V2,
        command: ProxyCommand::Local,
        transport: ProxyTransport::Unspecified,
        addresses: None,
        len: 16,
    };
    assert_eq!(decode_exact(check), local);
    // LOCAL discards the block, family included: an address block and TLVs
    // (even malformed ones) are skipped.
    let with_block = v2_raw(0x20, 0x11, &[1; 12], &haproxy_tlvs(), true);
    assert_eq!(
        decode_exact(&with_block),
        ProxyHeader {
            len: with_block.len(),
            ..local
        }
    );
    let odd = v2_raw(0x20, 0x77, &[0xFF; 5], &[], false);
    assert_eq!(decode_exact(&odd), ProxyHeader { len: 21, ..local });
}

#[test]
fn v2_unix_and_unspec_and_udp() {
    let mut paths = [0u8; 216];
    paths[..13].copy_from_slice(b"/run/tej.sock");
    paths[108..121].copy_from_slice(b"/run/lb.sock\0");
    for (family, transport) in [
        (0x31, ProxyTransport::UnixStream),
        (0x32, ProxyTransport::UnixDatagram),
    ] {
        for tlvs in [Vec::new(), haproxy_tlvs()] {
            let header = v2_raw(0x21, family, &paths, &tlvs, !tlvs.is_empty());
            let decoded = decode_exact(&header);
            assert_eq!(decoded.command, ProxyCommand::Proxied);
            assert_eq!(decoded.transport, transport);
            assert_eq!(decoded.addresses, None);
            assert_eq!(decoded.len, header.len());
        }
    }
    let unspec = v2_raw(0x21, 0x00, &[], &haproxy_tlvs(), true);
    let decoded = decode_exact(&unspec);
    assert_eq!(
        (decoded.command, decoded.transport, decoded.addresses),
        (ProxyCommand::Proxied, ProxyTransport::Unspecified, None)
    );

    for (s, d, family, transport) in [
        ("1.2.3.4:53", "5.6.7.8:5353", 0x12, ProxyTransport::Udp4),
        ("[::2]:53", "[::3]:5353", 0x22, ProxyTransport::Udp6),
    ] {
        let (s, d) = (addr(s), addr(d));
        let (_, block) = v2_addresses(s, d);
        let udp = decode_exact(&v2_raw(0x21, family, &block, &[], false));
        assert_eq!(
            (udp.transport, udp.source(), udp.destination()),
            (transport, Some(s), Some(d))
        );
    }
}

// ---------------------------------------------------------------------------
// Reading discipline.

#[test]
fn wanted_sizes() {
    let decoder = ProxyDecoder::default();
    assert_eq!(
        decoder.wanted(),
        15,
        "the shortest header (PROXY UNKNOWN\\r\\n)"
    );

    // v2: the fixed part, then exactly the rest.
    let header = v2(addr("1.1.1.1:1"), addr("2.2.2.2:2"), &haproxy_tlvs(), true);
    let mut decoder = ProxyDecoder::default();
    assert_eq!(decoder.push(&header[..15]), Ok(None));
    assert_eq!(decoder.wanted(), 1);
    assert_eq!(decoder.push(&header[15..16]), Ok(None));
    assert_eq!(decoder.wanted(), header.len() - 16);
    assert!(decoder.push(&header[16..]).unwrap().is_some());

    // v1: a few reads for a typical line, each no longer than what is left.
    let line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    let mut decoder = ProxyDecoder::default();
    let mut at = 0;
    let mut reads = 0;
    loop {
        let n = decoder.wanted();
        assert!(at + n <= line.len());
        reads += 1;
        at += n;
        if decoder.push(&line[at - n..at]).unwrap().is_some() {
            break;
        }
    }
    assert_eq!(at, line.len());
    assert!(reads <= 12, "{reads} reads");

    // After a CR, exactly one byte.
    let mut decoder = ProxyDecoder::default();
    decoder.push(b"PROXY UNKNOWN\r").unwrap();
    assert_eq!(decoder.wanted(), 1);
}

#[test]
fn every_prefix_of_a_valid_header_is_pending() {
    let headers = [
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n".to_vec(),
        b"PROXY TCP6 ::1 ::ffff:1.2.3.4 0 65535\r\n".to_vec(),
        b"PROXY UNKNOWN ignored\r\n".to_vec(),
        v2(addr("[::1]:5"), addr("[::2]:6"), &haproxy_tlvs(), true),
    ];
    for header in headers {
        for cut in 0..header.len() {
            let (result, taken) = decode(&header[..cut]);
            assert_eq!(result, Err(ProxyError::Truncated { received: cut }));
            assert_eq!(taken, cut);
        }
    }
}

#[test]
fn empty_pushes_and_after_completion() {
    let mut decoder = ProxyDecoder::default();
    assert_eq!(decoder.push(&[]), Ok(None));
    assert_eq!(decoder.finish(), Err(ProxyError::Truncated { received: 0 }));
    let header = decoder.push(b"PROXY UNKNOWN\r\n").unwrap().unwrap();
    assert_eq!(decoder.header(), Some(&header));
    assert_eq!(decoder.push(&[]), Ok(Some(header)));
    assert_eq!(decoder.finish(), Ok(header));
    assert_eq!(decoder.wanted(), 0);
    // A byte past the header is refused, not swallowed.
    assert_eq!(
        decoder.push(&[0x80]),
        Err(ProxyError::Overfed {
            pushed: 1,
            wanted: 0
        })
    );
}

#[test]
fn overfeeding_is_refused() {
    let mut decoder = ProxyDecoder::default();
    let err = decoder.push(&[b'P'; 16]).unwrap_err();
    assert_eq!(
        err,
        ProxyError::Overfed {
            pushed: 16,
            wanted: 15
        }
    );
    assert_eq!(
        err.to_string(),
        "pushed 16 bytes to the PROXY decoder, which wanted 15"
    );
}

// ---------------------------------------------------------------------------
// Errors.

#[test]
fn not_proxy_fails_on_the_first_byte() {
    // A TEJ client talking straight to a PROXY-protocol server.
    let mut decoder = ProxyDecoder::default();
    let err = decoder.push(&TEJ[..1]).unwrap_err();
    assert_eq!(
        err,
        ProxyError::NotProxy {
            offset: 0,
            byte: 0x80
        }
    );
    assert_eq!(
        err.to_string(),
        "not a PROXY protocol header (byte 0 is 0x80)"
    );
    assert_eq!(
        decode_err(b"GET / HTTP/1.1\r\n"),
        ProxyError::NotProxy {
            offset: 0,
            byte: b'G'
        }
    );
    assert_eq!(
        decode_err(b"PROXZ UNKNOWN\r\n"),
        ProxyError::NotProxy {
            offset: 4,
            byte: b'Z'
        }
    );
    assert_eq!(
        decode_err(b"proxy UNKNOWN\r\n"),
        ProxyError::NotProxy {
            offset: 0,
            byte: b'p'
        }
    );
    let mut bad_sig = V2_SIGNATURE.to_vec();
    bad_sig[7] = b'q';
    bad_sig.extend_from_slice(&[0x21, 0x11, 0, 12]);
    assert_eq!(
        decode_err(&bad_sig),
        ProxyError::NotProxy {
            offset: 7,
            byte: b'q'
        }
    );
}

#[test]
fn v1_errors() {
    use ProxyError::*;
    use V1Field::*;
    let cases: &[(&[u8], ProxyError)] = &[
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", V1BadProtocol),
        (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", V1BadProtocol),
        (b"PROXY TCP41.2.3.4 5.6.7.8 1 2\r\n", V1BadProtocol),
        (b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", V1BadProtocol),
        (b"PROXY UNKNOWNX\r\n", V1BadProtocol),
        (b"PROXY TCP4\r\n", V1BadProtocol),
        (
            b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
            V1BadAddress {
                field: SourceAddress,
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7 1 2\r\n",
            V1BadAddress {
                field: DestinationAddress,
            },
        ),
        (
            b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
            V1BadAddress {
                field: SourceAddress,
            },
        ),
        (
            b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
            V1BadAddress {
                field: SourceAddress,
            },
        ),
        (
            b"PROXY TCP6 ::1 ::g 1 2\r\n",
            V1BadAddress {
                field: DestinationAddress,
            },
        ),
        (
            b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
            V1BadAddress {
                field: SourceAddress,
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
            V1BadAddress {
                field: DestinationAddress,
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4\r\n",
            V1BadAddress {
                field: DestinationAddress,
            },
        ),
        (
            b"PROXY TCP4 111.111.111.1111 5.6.7.8 1 2\r\n",
            V1BadAddress {
                field: SourceAddress,
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            V1BadPort { field: SourcePort },
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 x\r\n",
            V1BadPort {
                field: DestinationPort,
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
            V1BadPort { field: SourcePort },
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n",
            V1BadPort { field: SourcePort },
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8  2\r\n",
            V1BadPort { field: SourcePort },
        ),
        // Over five digits, whatever the value.
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 000080 2\r\n",
            V1BadPort { field: SourcePort },
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 0000443\r\n",
            V1BadPort {
                field: DestinationPort,
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            V1BadPort {
                field: DestinationPort,
            },
        ),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", V1BadLineEnd),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", V1BadLineEnd),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", V1BadLineEnd),
        (b"PROXY UNKNOWN\n", V1BadLineEnd),
        (b"PROXY UNKNOWN \rx\r\n", V1BadLineEnd),
    ];
    for (line, expected) in cases {
        let mut stream = line.to_vec();
        stream.extend_from_slice(TEJ);
        let (result, taken) = decode(&stream);
        assert_eq!(
            result,
            Err(*expected),
            "{:?}",
            String::from_utf8_lossy(line)
        );
        // Never past the line, except that reads are sized for valid lines:
        // one shorter than the shortest valid TCP4 line (32 bytes) may be
        // read a little past before it is refused (and the connection
        // closed, so those bytes are nobody's).
        assert!(
            taken <= line.len().max(32),
            "{:?} read {taken} bytes",
            String::from_utf8_lossy(line)
        );
    }
    assert_eq!(
        V1BadAddress {
            field: DestinationAddress
        }
        .to_string(),
        "PROXY v1 line has a missing or malformed destination address"
    );
    assert_eq!(
        V1BadPort { field: SourcePort }.to_string(),
        "PROXY v1 line has a missing or malformed source port"
    );
}

#[test]
fn v1_too_long() {
    // No CRLF within 107 bytes: refused at byte 107, not later.
    let mut line = b"PROXY UNKNOWN ".to_vec();
    line.resize(200, b'a');
    let (result, taken) = decode(&line);
    assert_eq!(result, Err(ProxyError::V1TooLong { max: 107 }));
    assert_eq!(taken, 107);
    assert_eq!(
        ProxyError::V1TooLong { max: 107 }.to_string(),
        "PROXY v1 line longer than 107 bytes"
    );
    // 108 bytes with the CRLF just past the bound.
    let mut line = b"PROXY UNKNOWN ".to_vec();
    line.resize(106, b'a');
    line.extend_from_slice(b"\r\n");
    assert_eq!(decode_err(&line), ProxyError::V1TooLong { max: 107 });
    // A smaller max_len bounds v1 too.
    let line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    assert_eq!(
        read_wanted(line, 40, usize::MAX),
        (Err(ProxyError::V1TooLong { max: 40 }), 40)
    );
    assert_eq!(read_wanted(line, 47, usize::MAX).0.unwrap().len, 47);
}

#[test]
fn v2_errors() {
    use ProxyError::*;
    let s = addr("1.2.3.4:5");
    let d = addr("6.7.8.9:10");
    let (_, block) = v2_addresses(s, d);
    let mut version = v2_raw(0x11, 0x11, &block, &[], false);
    assert_eq!(decode_err(&version), V2Version { version: 1 });
    version[12] = 0x31;
    assert_eq!(decode_err(&version), V2Version { version: 3 });
    assert_eq!(
        V2Version { version: 3 }.to_string(),
        "unsupported PROXY v2 version 3"
    );
    assert_eq!(
        decode_err(&v2_raw(0x22, 0x11, &block, &[], false)),
        V2Command { command: 2 }
    );
    for family in [0x01, 0x10, 0x13, 0x23, 0x33, 0x41, 0xFF] {
        assert_eq!(
            decode_err(&v2_raw(0x21, family, &block, &[], false)),
            V2Family { family }
        );
    }
    assert_eq!(
        decode_err(&v2_raw(0x21, 0x21, &block, &[], false)),
        V2AddressTooShort {
            family: 0x21,
            len: 12,
            needed: 36
        }
    );
    assert_eq!(
        decode_err(&v2_raw(0x21, 0x11, &block[..11], &[], false)),
        V2AddressTooShort {
            family: 0x11,
            len: 11,
            needed: 12
        }
    );
    assert_eq!(
        decode_err(&v2_raw(0x21, 0x31, &[0; 100], &[], false)),
        V2AddressTooShort {
            family: 0x31,
            len: 100,
            needed: 216
        }
    );
    // A TLV that overruns the header.
    let mut overrun = v2_raw(0x21, 0x11, &block, &[(0x02, b"abcd".to_vec())], false);
    overrun[30] = 5;
    let (result, taken) = decode(&[&overrun[..], TEJ].concat());
    assert_eq!(result, Err(V2BadTlv { offset: 28 }));
    assert!(taken <= overrun.len());
    // Trailing bytes that are not a whole TLV header.
    for tail in [&[0x04][..], &[0x04, 0x00]] {
        let mut cut = v2_raw(0x21, 0x11, &block, &[], false);
        cut.extend_from_slice(tail);
        cut[15] += tail.len() as u8;
        assert_eq!(decode_err(&cut), V2BadTlv { offset: 28 });
    }
    // A CRC TLV of the wrong size, and a wrong checksum.
    assert_eq!(
        decode_err(&v2_raw(0x21, 0x11, &block, &[(0x03, vec![0; 3])], false)),
        V2BadTlv { offset: 28 }
    );
    let mut bad_crc = v2(s, d, &haproxy_tlvs(), true);
    let good = crc32c(&{
        let mut zeroed = bad_crc.clone();
        let at = zeroed.len() - 4;
        zeroed[at..].fill(0);
        zeroed
    });
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    assert_eq!(
        decode_err(&bad_crc),
        V2Checksum {
            expected: good ^ 1,
            computed: good
        }
    );
    // A flipped address byte is caught by the checksum too.
    let mut flipped = v2(s, d, &[], true);
    flipped[17] ^= 0x40;
    assert!(matches!(decode_err(&flipped), V2Checksum { .. }));
}

#[test]
fn size_bound() {
    let s = addr("1.2.3.4:5");
    let d = addr("6.7.8.9:10");
    let big = v2(s, d, &[(0xE1, vec![7; 5000])], false);
    assert_eq!(big.len(), 16 + 12 + 3 + 5000);
    let err = decode_err(&big);
    assert_eq!(
        err,
        ProxyError::V2TooLong {
            len: 5031,
            max: DEFAULT_MAX_LEN
        }
    );
    assert_eq!(
        err.to_string(),
        "PROXY v2 header of 5031 bytes exceeds the limit of 4096"
    );
    // Refused from the fixed part alone: nothing of the body was read.
    assert_eq!(decode(&big).1, 16);
    assert_eq!(read_wanted(&big, 5031, usize::MAX).0.unwrap().len, 5031);
    assert_eq!(
        read_wanted(&big, 5030, usize::MAX).0,
        Err(ProxyError::V2TooLong {
            len: 5031,
            max: 5030
        })
    );

    // The bound is clamped to what the wire can say.
    assert_eq!(ProxyDecoder::new(0).max_len(), 16);
    assert_eq!(ProxyDecoder::new(usize::MAX).max_len(), MAX_LEN);
    assert_eq!(MAX_LEN, 16 + 65535);
    let local_16 = v2_raw(0x20, 0, &[], &[], false);
    assert_eq!(read_wanted(&local_16, 0, usize::MAX).0.unwrap().len, 16);
    // The largest header there is.
    let largest = v2(s, d, &[(0xE2, vec![1; 65535 - 12 - 3 - 7])], true);
    assert_eq!(largest.len(), MAX_LEN);
    let mut stream = largest.clone();
    stream.extend_from_slice(TEJ);
    let (result, taken) = read_wanted(&stream, usize::MAX, 4096);
    assert_eq!(result.unwrap().source(), Some(s));
    assert_eq!(taken, MAX_LEN);
}

#[test]
fn decoder_is_small() {
    // Bounded memory: no buffer sized by the wire.
    assert!(
        std::mem::size_of::<ProxyDecoder>() <= 320,
        "{}",
        std::mem::size_of::<ProxyDecoder>()
    );
}

// ---------------------------------------------------------------------------
// Properties.

/// A source and a destination of one family: `O` the octets of its IP addresses.
fn socket_pair_of<O>() -> impl Strategy<Value = (SocketAddr, SocketAddr)>
where
    O: Arbitrary + Into<IpAddr>,
{
    (any::<O>(), any::<u16>(), any::<O>(), any::<u16>())
        .prop_map(|(s, sp, d, dp)| (SocketAddr::new(s.into(), sp), SocketAddr::new(d.into(), dp)))
}

fn socket_pair() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
    prop_oneof![socket_pair_of::<[u8; 4]>(), socket_pair_of::<[u8; 16]>()]
}

fn tlvs() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    proptest::collection::vec(
        (
            any::<u8>().prop_filter("not CRC", |t| *t != 0x03),
            proptest::collection::vec(any::<u8>(), 0..40),
        ),
        0..5,
    )
}

proptest! {
    #![proptest_config(common::proptest_config(512))]

    #[test]
    fn round_trip(
        (source, destination) in socket_pair(),
        version in 1u8..=2,
        tlvs in tlvs(),
        crc in any::<bool>(),
        trailer in proptest::collection::vec(any::<u8>(), 0..32),
        cap in 1usize..64,
    ) {
        let header = if version == 1 { v1(source, destination) } else { v2(source, destination, &tlvs, crc) };
        let mut stream = header.clone();
        stream.extend_from_slice(&trailer);
        let (result, taken) = read_wanted(&stream, DEFAULT_MAX_LEN, cap);
        let decoded = result.unwrap();
        prop_assert_eq!(taken, header.len());
        prop_assert_eq!(decoded.addresses, Some(ProxyAddresses { source, destination }));
        prop_assert_eq!(decoded.command, ProxyCommand::Proxied);
        prop_assert_eq!(decoded.version, if version == 1 { ProxyVersion::V1 } else { ProxyVersion::V2 });
        let transport = if source.is_ipv4() { ProxyTransport::Tcp4 } else { ProxyTransport::Tcp6 };
        prop_assert_eq!(decoded.transport, transport);
    }

    #[test]
    fn arbitrary_input_never_panics(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        cap in 1usize..40,
        max_len in 0usize..300,
    ) {
        let (result, taken) = read_wanted(&data, max_len, cap);
        prop_assert!(taken <= data.len());
        if let Ok(header) = result {
            prop_assert_eq!(header.len, taken);
        }
    }

    #[test]
    fn mutated_headers_never_panic_nor_overread(
        (source, destination) in socket_pair(),
        version in 1u8..=2,
        tlvs in tlvs(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cap in 1usize..64,
    ) {
        let mut header = if version == 1 { v1(source, destination) } else { v2(source, destination, &tlvs, true) };
        for (index, byte) in flips {
            let i = index.index(header.len());
            header[i] = byte;
        }
        let mut stream = header.clone();
        stream.extend_from_slice(TEJ);
        let (result, taken) = read_wanted(&stream, DEFAULT_MAX_LEN, cap);
        if let Ok(decoded) = result {
            prop_assert_eq!(decoded.len, taken);
        }
    }
}

#[test]
fn admission_serves_proxied_clients_and_quietly_closes_health_checks() {
    use tej_core::proxy::Admission;
    let balancer: std::net::SocketAddr = "10.0.0.2:40000".parse().unwrap();
    let read = |bytes: &[u8]| {
        let mut decoder = ProxyDecoder::default();
        let mut at = 0;
        loop {
            if at == bytes.len() {
                return decoder.finish();
            }
            let take = decoder.wanted().min(bytes.len() - at);
            match decoder.push(&bytes[at..at + take]) {
                Ok(Some(header)) => return Ok(header),
                Ok(None) => at += take,
                Err(error) => return Err(error),
            }
        }
    };
    let tcp4 = read(b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n");
    assert_eq!(
        Admission::of(tcp4.as_ref().map_err(|e| *e), Some(balancer)),
        Admission::Serve {
            peer: Some("192.0.2.1:56324".parse().unwrap()),
            proxy: Some(balancer)
        }
    );
    let unknown = read(b"PROXY UNKNOWN\r\n");
    assert_eq!(
        Admission::of(unknown.as_ref().map_err(|e| *e), Some(balancer)),
        Admission::Serve {
            peer: Some(balancer),
            proxy: None
        }
    );
    let mut local = b"\r\n\r\n\x00\r\nQUIT\n".to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    let local = read(&local);
    let admission = Admission::of(local.as_ref().map_err(|e| *e), Some(balancer));
    assert!(
        matches!(admission, Admission::HealthCheck(_)),
        "{admission:?}"
    );

    let bare = read(b"");
    let admission = Admission::of(bare.as_ref().map_err(|e| *e), Some(balancer));
    assert!(matches!(admission, Admission::HealthCheck(_)));

    let garbage = read(b"GET / HTTP/1.1\r\n\r\n");
    let admission = Admission::of(garbage.as_ref().map_err(|e| *e), Some(balancer));
    assert!(matches!(admission, Admission::Refuse(_)));

    let cut = read(b"PROXY TCP4 192.0");
    let admission = Admission::of(cut.as_ref().map_err(|e| *e), Some(balancer));
    assert!(matches!(
        admission,
        Admission::Refuse(tej_core::ProxyError::Truncated { .. })
    ));
}

/// While the protocol word arrives, `wanted()` reaches exactly the end of
/// the shortest line it can still start: no byte of what follows a short
/// header is read, and no read is smaller than it needs to be.
#[test]
fn v1_wanted_reaches_the_shortest_line_each_prefix_can_start() {
    // "PROXY TCP6 :: :: 0 0\r\n", "PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n",
    // "PROXY UNKNOWN\r\n".
    let cases: &[(&[u8], usize)] = &[
        (b"PROXY ", 15),
        (b"PROXY T", 22),
        (b"PROXY TC", 22),
        (b"PROXY TCP", 22),
        (b"PROXY TCP6", 22),
        (b"PROXY TCP4", 32),
        (b"PROXY U", 15),
        (b"PROXY UNKNOW", 15),
        // Part-way through a later field: only that field's own bytes count
        // toward its shortest ("5.0.0.0", "::1").
        (b"PROXY TCP4 1.2.3.4 5", 32),
        (b"PROXY TCP6 :: 1", 22),
    ];
    for &(prefix, shortest) in cases {
        let mut decoder = ProxyDecoder::new(DEFAULT_MAX_LEN);
        for &byte in prefix {
            assert_eq!(decoder.push(&[byte]), Ok(None));
        }
        assert_eq!(
            decoder.consumed() + decoder.wanted(),
            shortest,
            "{:?}",
            String::from_utf8_lossy(prefix)
        );
    }
}

/// A LF without its CR ends an UNKNOWN line at once, without waiting for
/// another byte.
#[test]
fn v1_unknown_bare_lf_fails_at_once() {
    for line in [&b"PROXY UNKNOWN\n"[..], b"PROXY UNKNOWN ffff::1 x\n"] {
        let mut decoder = ProxyDecoder::new(DEFAULT_MAX_LEN);
        let (last, head) = line.split_last().unwrap();
        for &byte in head {
            assert_eq!(decoder.push(&[byte]), Ok(None));
        }
        assert_eq!(decoder.push(&[*last]), Err(ProxyError::V1BadLineEnd));
    }
}

#[test]
fn v1_a_character_no_address_has_fails_at_once() {
    // The scanner refuses a byte no address or port can hold as it
    // arrives, not when the line ends.
    for (line, bad) in [
        (&b"PROXY TCP4 1.2.3.x"[..], b'x'),
        (b"PROXY TCP6 ::g", b'g'),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 8a", b'a'),
    ] {
        let mut decoder = ProxyDecoder::new(DEFAULT_MAX_LEN);
        let (last, head) = line.split_last().unwrap();
        assert_eq!(*last, bad);
        for &byte in head {
            assert_eq!(
                decoder.push(&[byte]),
                Ok(None),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        assert!(
            decoder.push(&[*last]).is_err(),
            "{:?} not refused at its last byte",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn v1_wanted_stops_at_the_longest_line() {
    // A TCP6 line of the longest hex addresses and ports is 104 bytes with
    // its CRLF: near the 107-byte limit, the decoder asks for the 2 bytes
    // of the CRLF and never for more than the limit leaves.
    let address = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let line = format!("PROXY TCP6 {address} {address} 65535 65535\r\n");
    assert_eq!(line.len(), 104);
    let mut decoder = ProxyDecoder::new(DEFAULT_MAX_LEN);
    let bytes = line.as_bytes();
    for (i, &byte) in bytes[..bytes.len() - 2].iter().enumerate() {
        assert_eq!(decoder.push(&[byte]), Ok(None));
        assert!(
            decoder.consumed() + decoder.wanted() <= 107,
            "after {} bytes",
            i + 1
        );
    }
    assert_eq!(decoder.wanted(), 2);
    assert!(matches!(
        decoder.push(&bytes[bytes.len() - 2..]),
        Ok(Some(_))
    ));
}

#[test]
fn v2_wanted_is_the_rest_of_the_fixed_header() {
    // Past the signature, the decoder asks for the rest of the 16-byte
    // fixed header at once (its length field says what follows).
    let mut decoder = ProxyDecoder::new(DEFAULT_MAX_LEN);
    let mut pushed = 0;
    for &byte in V2_SIGNATURE.iter().chain(&[0x21, 0x11]) {
        assert_eq!(decoder.push(&[byte]), Ok(None));
        pushed += 1;
        if pushed >= 12 {
            assert_eq!(decoder.wanted(), 16 - pushed, "after {pushed} bytes");
        }
    }
}

#[test]
fn v1_never_asks_for_a_byte_past_a_valid_line() {
    // Whatever has arrived, the read hint stops at or before the end of
    // this line: a reader that follows it never takes a byte of what
    // comes after the header.
    for line in [
        &b"PROXY UNKNOWN\r\n"[..],
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n",
        b"PROXY TCP6 :: :: 0 0\r\n",
        b"PROXY TCP6 ::1 fe80::1 443 65535\r\n",
        b"PROXY TCP4 192.168.100.200 10.0.0.1 54321 80\r\n",
    ] {
        let mut decoder = ProxyDecoder::new(DEFAULT_MAX_LEN);
        for (i, &byte) in line.iter().enumerate() {
            let at = decoder.consumed() + decoder.wanted();
            assert!(
                at <= line.len(),
                "{:?}: after {i} bytes it asks up to byte {at}",
                String::from_utf8_lossy(line)
            );
            let pushed = decoder.push(&[byte]);
            if i + 1 < line.len() {
                assert_eq!(pushed, Ok(None));
            } else {
                assert!(matches!(pushed, Ok(Some(_))));
            }
        }
    }
}
