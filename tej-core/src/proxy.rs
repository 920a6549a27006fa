//! The PROXY protocol header (v1 and v2), read before the TEJ session starts.
//!
//! Behind an L4 load balancer (HAProxy `send-proxy`/`send-proxy-v2`, nginx,
//! Envoy, cloud NLBs) every connection opens with a PROXY header carrying the
//! real client's address. [`ProxyDecoder`] reads it sans-IO, without
//! allocating, with a bound on its size, and, above all, **without ever
//! over-reading**: the bytes after the header are the TEJ session's and must
//! stay in the socket. [`ProxyDecoder::wanted`] says how many bytes the
//! caller may read next; it never reaches past the end of the header, so the
//! adapter reads straight from the socket into a small buffer and hands what
//! it got to [`ProxyDecoder::push`] (any length from 1 to `wanted()`).
//!
//! - **v1** is an ASCII line, `PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n`,
//!   at most [`V1_MAX_LEN`] (107) bytes. Its end is only known when the CRLF
//!   arrives, so `wanted()` asks for the fewest bytes a valid line could still
//!   need (the shortest address, port and CRLF that can follow what was
//!   read): a typical line takes a handful of reads.
//! - **v2** is binary: the 12-byte [`V2_SIGNATURE`], a version/command byte,
//!   a family/protocol byte and a big-endian `u16` length, then the
//!   addresses and TLVs. `wanted()` asks for the 16-byte fixed part, then
//!   exactly the rest. In a `PROXY` header the TLVs are checked for
//!   structure and skipped without being stored, and a `PP2_TYPE_CRC32C` TLV,
//!   when present, is verified; a `LOCAL` block is discarded unread, as the
//!   spec says.
//!
//! The first byte decides: `P` is v1, `\r` is v2, anything else fails at
//! once with [`ProxyError::NotProxy`]. Errors are sticky.
//!
//! [`ProxyCommand::Local`] (v2 `LOCAL`: the balancer's health checks and its
//! own connections) carries no client: **use the real connection's
//! addresses**. So do v1 `UNKNOWN` and v2 `PROXY` over `UNSPEC` or UNIX
//! sockets, whose [`ProxyHeader::addresses`] are absent.
//!
//! # The adapter's read loop
//!
//! ```
//! use std::io::Read;
//! use tej_core::proxy::{ProxyCommand, ProxyDecoder, ProxyError};
//!
//! # fn main() -> Result<(), ProxyError> {
//! // A socket holding a v1 header, then the first bytes of a TEJ frame.
//! let mut wire = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n".to_vec();
//! wire.extend_from_slice(&[0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]);
//! let mut socket = std::io::Cursor::new(wire);
//!
//! let mut decoder = ProxyDecoder::default();
//! let mut buf = [0u8; 256];
//! let header = loop {
//!     // Never read more than the decoder wants: the rest is the session's.
//!     let want = decoder.wanted().min(buf.len());
//!     let n = socket.read(&mut buf[..want]).expect("read");
//!     if n == 0 {
//!         // Closed early; `Truncated { received: 0 }` is a bare TCP check.
//!         return Err(decoder.finish().unwrap_err());
//!     }
//!     if let Some(header) = decoder.push(&buf[..n])? {
//!         break header;
//!     }
//! };
//!
//! assert_eq!(header.command, ProxyCommand::Proxied);
//! let peer = header.source().expect("a TCP4 header carries addresses");
//! assert_eq!(peer, "192.168.0.1:56324".parse().unwrap());
//! // Not one byte of the session was consumed.
//! assert_eq!(socket.position() as usize, header.len);
//! # Ok(())
//! # }
//! ```

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::str::FromStr;

/// The 12 bytes every v2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// The longest v1 line, CRLF included (the spec's worst case, TCP6).
pub const V1_MAX_LEN: usize = 107;

/// The fixed part of a v2 header: signature, version/command, family and
/// length.
pub const V2_FIXED_LEN: usize = 16;

/// The longest header the wire can carry: v2's fixed part plus a `u16`
/// length. The most [`ProxyDecoder::new`] accepts as `max_len`.
pub const MAX_LEN: usize = V2_FIXED_LEN + u16::MAX as usize;

/// The default bound on a header's size: room for any address block and a
/// few hundred bytes of TLVs (authority, unique id, TLS details).
pub const DEFAULT_MAX_LEN: usize = 4096;

/// The shortest v1 line: `PROXY UNKNOWN\r\n`.
const V1_MIN_LEN: usize = 15;

/// Address block sizes of the v2 families.
const V2_ADDR_INET: usize = 12;
const V2_ADDR_INET6: usize = 36;
const V2_ADDR_UNIX: usize = 216;

/// `PP2_TYPE_CRC32C`.
const PP2_TYPE_CRC32C: u8 = 0x03;

/// Which version of the protocol a header used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyVersion {
    /// The ASCII line.
    V1,
    /// The binary header.
    V2,
}

/// What the balancer says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyCommand {
    /// v2 `LOCAL`: the balancer's own connection (a health check, most
    /// often), not a relayed client. Use the real connection's addresses.
    Local,
    /// A relayed client (v2 `PROXY`, and every v1 line). Its addresses are in
    /// [`ProxyHeader::addresses`] when the transport is TCP or UDP over IP.
    Proxied,
}

/// The relayed connection's transport, as announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyTransport {
    /// TCP over IPv4 (v1 `TCP4`, v2 `0x11`).
    Tcp4,
    /// TCP over IPv6 (v1 `TCP6`, v2 `0x21`).
    Tcp6,
    /// UDP over IPv4 (v2 `0x12`).
    Udp4,
    /// UDP over IPv6 (v2 `0x22`).
    Udp6,
    /// A UNIX stream socket (v2 `0x31`); the paths are not kept.
    UnixStream,
    /// A UNIX datagram socket (v2 `0x32`); the paths are not kept.
    UnixDatagram,
    /// Unknown or not given: v1 `UNKNOWN`, v2 `UNSPEC`, and every v2 `LOCAL`
    /// (whose family the spec says to discard).
    Unspecified,
}

/// The relayed connection's two ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProxyAddresses {
    /// The client: what a server reports as its peer.
    pub source: SocketAddr,
    /// The address the client connected to (the balancer's frontend).
    pub destination: SocketAddr,
}

/// A complete, valid PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProxyHeader {
    /// v1 or v2.
    pub version: ProxyVersion,
    /// `Local` (use the real connection's addresses) or `Proxied`.
    pub command: ProxyCommand,
    /// The announced transport.
    pub transport: ProxyTransport,
    /// The client and the address it connected to, for `Proxied` headers
    /// over IPv4 or IPv6; absent for `Local`, `UNKNOWN`, `UNSPEC` and UNIX.
    pub addresses: Option<ProxyAddresses>,
    /// The header's length in bytes: what was consumed from the socket.
    pub len: usize,
}

impl ProxyHeader {
    /// The client's address, when the header carries one.
    pub fn source(&self) -> Option<SocketAddr> {
        self.addresses.map(|a| a.source)
    }

    /// The address the client connected to, when the header carries one.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.addresses.map(|a| a.destination)
    }
}

/// What a connection's PROXY header, or its failure, means for the
/// connection: the policy every adapter's server applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Serve it: `peer` is the session's peer (the client the header
    /// names, or the real peer for a header without addresses: v1
    /// `UNKNOWN`, v2 `UNSPEC`), `proxy` the balancer's own address when the
    /// header named a client.
    Serve {
        /// The client.
        peer: Option<SocketAddr>,
        /// The balancer, when the header named a client.
        proxy: Option<SocketAddr>,
    },
    /// A health check: the balancer's own connection (v2 `LOCAL`) or a
    /// connection closed before its first byte. Close it quietly; it is
    /// not an error.
    HealthCheck(&'static str),
    /// No valid header: close it, and make no handler (anyone could
    /// otherwise claim any address).
    Refuse(ProxyError),
}

impl Admission {
    /// The admission of a connection from `real_peer` (the balancer) whose
    /// header reading ended with `read`: [`ProxyDecoder::push`]'s header or
    /// error, or [`ProxyDecoder::finish`]'s at end of stream.
    pub fn of(read: Result<&ProxyHeader, ProxyError>, real_peer: Option<SocketAddr>) -> Admission {
        match read {
            Ok(header) => match (header.command, header.source()) {
                (ProxyCommand::Local, _) => Admission::HealthCheck(
                    "PROXY LOCAL: the balancer's own connection (a health check)",
                ),
                (ProxyCommand::Proxied, Some(source)) => Admission::Serve {
                    peer: Some(source),
                    proxy: real_peer,
                },
                (ProxyCommand::Proxied, None) => Admission::Serve {
                    peer: real_peer,
                    proxy: None,
                },
            },
            Err(ProxyError::Truncated { received: 0 }) => {
                Admission::HealthCheck("closed before a PROXY header (a TCP health check)")
            }
            Err(error) => Admission::Refuse(error),
        }
    }
}

/// A field of a v1 line, for error reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum V1Field {
    /// The client's address.
    SourceAddress,
    /// The address the client connected to.
    DestinationAddress,
    /// The client's port.
    SourcePort,
    /// The port the client connected to.
    DestinationPort,
}

impl core::fmt::Display for V1Field {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            V1Field::SourceAddress => "source address",
            V1Field::DestinationAddress => "destination address",
            V1Field::SourcePort => "source port",
            V1Field::DestinationPort => "destination port",
        })
    }
}

/// Why bytes are not a valid PROXY header (or why the decoder refused them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyError {
    /// The bytes are neither a v1 `PROXY ` line nor the v2 signature.
    NotProxy {
        /// Position of the first byte that does not match.
        offset: usize,
        /// That byte.
        byte: u8,
    },
    /// No CRLF within the v1 bound (107 bytes, or a smaller `max_len`).
    V1TooLong {
        /// The bound.
        max: usize,
    },
    /// The v1 protocol is not `TCP4`, `TCP6` or `UNKNOWN`.
    V1BadProtocol,
    /// A v1 address is missing, malformed, or of the wrong family.
    V1BadAddress {
        /// Which address.
        field: V1Field,
    },
    /// A v1 port is missing, not decimal, or above 65535.
    V1BadPort {
        /// Which port.
        field: V1Field,
    },
    /// A v1 line with a CR not followed by LF, a bare LF, or anything
    /// between the destination port and the CRLF.
    V1BadLineEnd,
    /// The v2 length announces more than `max_len` bytes in all.
    V2TooLong {
        /// The announced total length, fixed part included.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The v2 version nibble is not 2.
    V2Version {
        /// The version nibble.
        version: u8,
    },
    /// The v2 command nibble is neither `LOCAL` (0) nor `PROXY` (1).
    V2Command {
        /// The command nibble.
        command: u8,
    },
    /// The v2 family/protocol byte of a `PROXY` header is not one the spec
    /// defines.
    V2Family {
        /// The byte.
        family: u8,
    },
    /// The v2 length is shorter than the family's address block.
    V2AddressTooShort {
        /// The family/protocol byte.
        family: u8,
        /// The announced length.
        len: usize,
        /// The family's address block size.
        needed: usize,
    },
    /// A v2 TLV overruns the header, or its header is cut short, or a CRC32c
    /// TLV is not 4 bytes long.
    V2BadTlv {
        /// Position of the TLV's type byte.
        offset: usize,
    },
    /// The `PP2_TYPE_CRC32C` TLV does not match the header.
    V2Checksum {
        /// The value in the TLV.
        expected: u32,
        /// The checksum of the header.
        computed: u32,
    },
    /// The stream ended before the header did. `received == 0` is a bare
    /// connect-and-close (a TCP health check), not a malformed header.
    Truncated {
        /// Bytes received.
        received: usize,
    },
    /// The caller pushed more bytes than [`ProxyDecoder::wanted`] allowed
    /// (a bug in the caller: those bytes may belong to the session).
    Overfed {
        /// Bytes pushed.
        pushed: usize,
        /// Bytes wanted.
        wanted: usize,
    },
}

impl core::error::Error for ProxyError {}

impl core::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ProxyError::NotProxy { offset, byte } => write!(f, "not a PROXY protocol header (byte {offset} is {byte:#04x})"),
            ProxyError::V1TooLong { max } => write!(f, "PROXY v1 line longer than {max} bytes"),
            ProxyError::V1BadProtocol => write!(f, "PROXY v1 line has an unknown protocol (expected TCP4, TCP6 or UNKNOWN)"),
            ProxyError::V1BadAddress { field } => write!(f, "PROXY v1 line has a missing or malformed {field}"),
            ProxyError::V1BadPort { field } => write!(f, "PROXY v1 line has a missing or malformed {field}"),
            ProxyError::V1BadLineEnd => write!(f, "PROXY v1 line does not end with CRLF where it should"),
            ProxyError::V2TooLong { len, max } => write!(f, "PROXY v2 header of {len} bytes exceeds the limit of {max}"),
            ProxyError::V2Version { version } => write!(f, "unsupported PROXY v2 version {version}"),
            ProxyError::V2Command { command } => write!(f, "unsupported PROXY v2 command {command:#x}"),
            ProxyError::V2Family { family } => write!(f, "unsupported PROXY v2 address family/protocol {family:#04x}"),
            ProxyError::V2AddressTooShort { family, len, needed } => write!(f, "PROXY v2 address block of {len} bytes is too short for family {family:#04x} (needs {needed})"),
            ProxyError::V2BadTlv { offset } => write!(f, "malformed PROXY v2 TLV at byte {offset}"),
            ProxyError::V2Checksum { expected, computed } => write!(f, "PROXY v2 CRC32c mismatch (header says {expected:#010x}, computed {computed:#010x})"),
            ProxyError::Truncated { received } => write!(f, "connection closed after {received} bytes of a PROXY header"),
            ProxyError::Overfed { pushed, wanted } => write!(f, "pushed {pushed} bytes to the PROXY decoder, which wanted {wanted}"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Nothing read yet.
    Start,
    /// A v1 line is in `buf[..consumed]`.
    V1,
    /// A v2 header: the fixed part goes to `buf[..16]`, then the kept
    /// address bytes to `buf[16..]`.
    V2,
    Done(ProxyHeader),
    Failed(ProxyError),
}

/// The v2 parse state beyond the fixed part.
#[derive(Debug, Clone, Copy, Default)]
struct V2 {
    /// 16 + announced length, once the fixed part is read.
    total: usize,
    /// Command nibble and family byte.
    local: bool,
    family: u8,
    /// Address block size of the family (0 for `LOCAL`/`UNSPEC`).
    addr_len: usize,
    /// TLV being read: its type, its header bytes so far, where it started,
    /// and how many value bytes are left.
    tlv_type: u8,
    tlv_len_hi: u8,
    tlv_header: u8,
    tlv_start: usize,
    tlv_left: usize,
    /// Whether the current TLV is a CRC32c one; the value seen so far.
    in_crc: bool,
    crc_value: u32,
    crc_seen: bool,
    /// Running CRC32c (not yet inverted) with the CRC field zeroed.
    crc: u32,
}

/// A resumable, allocation-free PROXY header reader that never asks for a
/// byte past the header. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct ProxyDecoder {
    max_len: usize,
    consumed: usize,
    state: State,
    /// The v1 line, or the v2 fixed part followed by at most 36 address
    /// bytes.
    buf: [u8; V1_MAX_LEN],
    v2: V2,
}

impl Default for ProxyDecoder {
    fn default() -> Self {
        ProxyDecoder::new(DEFAULT_MAX_LEN)
    }
}

impl ProxyDecoder {
    /// A decoder refusing headers longer than `max_len` bytes in all,
    /// clamped to `16..=`[`MAX_LEN`]. A v1 line is also bound by
    /// [`V1_MAX_LEN`].
    pub fn new(max_len: usize) -> Self {
        ProxyDecoder {
            max_len: max_len.clamp(V2_FIXED_LEN, MAX_LEN),
            consumed: 0,
            state: State::Start,
            buf: [0; V1_MAX_LEN],
            v2: V2::default(),
        }
    }

    /// The bound on the header's size in force (after clamping).
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// How many bytes have been pushed so far.
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// The most bytes the caller may read and [`push`](Self::push) next:
    /// never past the end of the header. 0 once the header is complete or
    /// the decoder has failed.
    pub fn wanted(&self) -> usize {
        match self.state {
            // v1 needs at least 15 bytes, v2 at least 16.
            State::Start => V1_MIN_LEN,
            State::V1 => {
                let limit = self.v1_limit();
                match scan_v1(&self.buf[..self.consumed]) {
                    Ok(Scan::Incomplete(min)) => min.min(limit - self.consumed).max(1),
                    // `push` never leaves a complete or failed line in `V1`.
                    _ => 0,
                }
            }
            State::V2 if self.consumed < V2_FIXED_LEN => V2_FIXED_LEN - self.consumed,
            State::V2 => self.v2.total - self.consumed,
            State::Done(_) | State::Failed(_) => 0,
        }
    }

    /// The header, once complete.
    pub fn header(&self) -> Option<&ProxyHeader> {
        match &self.state {
            State::Done(header) => Some(header),
            _ => None,
        }
    }

    /// Feeds up to [`wanted`](Self::wanted) bytes. `Ok(Some(header))` once
    /// the header is complete (and again on every later empty push), `Ok(None)`
    /// while more is needed, and the same error forever after a failure.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Option<ProxyHeader>, ProxyError> {
        match self.state {
            State::Failed(error) => return Err(error),
            State::Done(header) if bytes.is_empty() => return Ok(Some(header)),
            _ => {}
        }
        let wanted = self.wanted();
        if bytes.len() > wanted {
            return self.fail(ProxyError::Overfed {
                pushed: bytes.len(),
                wanted,
            });
        }
        let Some(&first) = bytes.first() else {
            return Ok(None);
        };
        if let State::Start = self.state {
            self.state = match first {
                b'P' => State::V1,
                0x0D => State::V2,
                byte => return self.fail(ProxyError::NotProxy { offset: 0, byte }),
            };
        }
        let result = match self.state {
            State::V1 => self.push_v1(bytes),
            _ => self.push_v2(bytes),
        };
        match result {
            Ok(Some(header)) => {
                self.state = State::Done(header);
                Ok(Some(header))
            }
            Ok(None) => Ok(None),
            Err(error) => self.fail(error),
        }
    }

    /// What the stream's end means now: the header if complete, the sticky
    /// error if failed, [`ProxyError::Truncated`] otherwise.
    pub fn finish(&self) -> Result<ProxyHeader, ProxyError> {
        match self.state {
            State::Done(header) => Ok(header),
            State::Failed(error) => Err(error),
            _ => Err(ProxyError::Truncated {
                received: self.consumed,
            }),
        }
    }

    fn fail<T>(&mut self, error: ProxyError) -> Result<T, ProxyError> {
        self.state = State::Failed(error);
        Err(error)
    }

    fn v1_limit(&self) -> usize {
        self.max_len.min(V1_MAX_LEN)
    }

    fn push_v1(&mut self, bytes: &[u8]) -> Result<Option<ProxyHeader>, ProxyError> {
        // `bytes.len() <= wanted() <= limit - consumed`: it fits.
        let end = self.consumed + bytes.len();
        self.buf[self.consumed..end].copy_from_slice(bytes);
        self.consumed = end;
        match scan_v1(&self.buf[..end])? {
            Scan::Complete(header) => Ok(Some(header)),
            Scan::Incomplete(_) if end >= self.v1_limit() => Err(ProxyError::V1TooLong {
                max: self.v1_limit(),
            }),
            Scan::Incomplete(_) => Ok(None),
        }
    }

    fn push_v2(&mut self, bytes: &[u8]) -> Result<Option<ProxyHeader>, ProxyError> {
        for &byte in bytes {
            let at = self.consumed;
            self.consumed += 1;
            if at < V2_FIXED_LEN {
                self.buf[at] = byte;
                self.v2.crc = crc32c_byte(if at == 0 { !0 } else { self.v2.crc }, byte);
                self.fixed_byte(at, byte)?;
            } else {
                self.body_byte(at, byte)?;
            }
            if self.consumed == self.v2.total {
                return self.finish_v2().map(Some);
            }
        }
        Ok(None)
    }

    fn fixed_byte(&mut self, at: usize, byte: u8) -> Result<(), ProxyError> {
        match at {
            0..12 if byte != V2_SIGNATURE[at] => Err(ProxyError::NotProxy { offset: at, byte }),
            0..12 => Ok(()),
            12 => {
                let (version, command) = (byte >> 4, byte & 0x0F);
                if version != 2 {
                    return Err(ProxyError::V2Version { version });
                }
                if command > 1 {
                    return Err(ProxyError::V2Command { command });
                }
                self.v2.local = command == 0;
                Ok(())
            }
            13 => {
                self.v2.family = byte;
                if self.v2.local {
                    return Ok(());
                }
                self.v2.addr_len = match byte {
                    0x00 => 0,
                    0x11 | 0x12 => V2_ADDR_INET,
                    0x21 | 0x22 => V2_ADDR_INET6,
                    0x31 | 0x32 => V2_ADDR_UNIX,
                    family => return Err(ProxyError::V2Family { family }),
                };
                Ok(())
            }
            14 => Ok(()),
            _ => {
                let len = usize::from(u16::from_be_bytes([self.buf[14], byte]));
                let total = V2_FIXED_LEN + len;
                if total > self.max_len {
                    return Err(ProxyError::V2TooLong {
                        len: total,
                        max: self.max_len,
                    });
                }
                if len < self.v2.addr_len {
                    return Err(ProxyError::V2AddressTooShort {
                        family: self.v2.family,
                        len,
                        needed: self.v2.addr_len,
                    });
                }
                self.v2.total = total;
                Ok(())
            }
        }
    }

    fn body_byte(&mut self, at: usize, byte: u8) -> Result<(), ProxyError> {
        let v2 = &mut self.v2;
        if v2.local {
            // The spec: discard the whole block, family included.
            return Ok(());
        }
        let offset = at - V2_FIXED_LEN;
        if offset < v2.addr_len {
            v2.crc = crc32c_byte(v2.crc, byte);
            // UNIX paths are not kept; IP addresses fit in `buf`.
            if v2.addr_len <= V2_ADDR_INET6 {
                self.buf[at] = byte;
            }
            return Ok(());
        }
        if v2.tlv_left > 0 {
            v2.tlv_left -= 1;
            if v2.in_crc {
                v2.crc_value = (v2.crc_value << 8) | u32::from(byte);
                v2.crc = crc32c_byte(v2.crc, 0);
            } else {
                v2.crc = crc32c_byte(v2.crc, byte);
            }
            return Ok(());
        }
        v2.crc = crc32c_byte(v2.crc, byte);
        match v2.tlv_header {
            0 => {
                v2.tlv_start = at;
                v2.tlv_type = byte;
                v2.tlv_header = 1;
            }
            1 => {
                v2.tlv_len_hi = byte;
                v2.tlv_header = 2;
            }
            _ => {
                v2.tlv_header = 0;
                let len = usize::from(u16::from_be_bytes([v2.tlv_len_hi, byte]));
                let bad = ProxyError::V2BadTlv {
                    offset: v2.tlv_start,
                };
                if len > v2.total - self.consumed {
                    return Err(bad);
                }
                v2.in_crc = v2.tlv_type == PP2_TYPE_CRC32C;
                if v2.in_crc {
                    if len != 4 {
                        return Err(bad);
                    }
                    v2.crc_seen = true;
                    v2.crc_value = 0;
                }
                v2.tlv_left = len;
            }
        }
        Ok(())
    }

    fn finish_v2(&mut self) -> Result<ProxyHeader, ProxyError> {
        let v2 = self.v2;
        let mut header = ProxyHeader {
            version: ProxyVersion::V2,
            command: ProxyCommand::Local,
            transport: ProxyTransport::Unspecified,
            addresses: None,
            len: v2.total,
        };
        if v2.local {
            return Ok(header);
        }
        if v2.tlv_header != 0 {
            return Err(ProxyError::V2BadTlv {
                offset: v2.tlv_start,
            });
        }
        if v2.crc_seen {
            let computed = !v2.crc;
            if computed != v2.crc_value {
                return Err(ProxyError::V2Checksum {
                    expected: v2.crc_value,
                    computed,
                });
            }
        }
        header.command = ProxyCommand::Proxied;
        let a = &self.buf[V2_FIXED_LEN..];
        let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
        // Each address family: its transport and the length of its IP
        // addresses, which come first (source, destination), then the ports.
        let (transport, ip_len) = match v2.family {
            0x11 => (ProxyTransport::Tcp4, 4),
            0x12 => (ProxyTransport::Udp4, 4),
            0x21 => (ProxyTransport::Tcp6, 16),
            0x22 => (ProxyTransport::Udp6, 16),
            0x31 => (ProxyTransport::UnixStream, 0),
            0x32 => (ProxyTransport::UnixDatagram, 0),
            _ => (ProxyTransport::Unspecified, 0),
        };
        let ip = |i: usize| match ip_len {
            4 => IpAddr::V4(Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3])),
            _ => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&a[i..i + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            }
        };
        let addresses = (ip_len > 0).then(|| ProxyAddresses {
            source: SocketAddr::new(ip(0), port(2 * ip_len)),
            destination: SocketAddr::new(ip(ip_len), port(2 * ip_len + 2)),
        });
        header.transport = transport;
        header.addresses = addresses;
        Ok(header)
    }
}

/// One step of CRC32c (Castagnoli, reflected), as `PP2_TYPE_CRC32C` uses.
fn crc32c_byte(mut crc: u32, byte: u8) -> u32 {
    crc ^= u32::from(byte);
    for _ in 0..8 {
        crc = if crc & 1 == 1 {
            (crc >> 1) ^ 0x82F6_3B78
        } else {
            crc >> 1
        };
    }
    crc
}

/// What a v1 prefix is.
enum Scan {
    /// A valid prefix; a valid line needs at least this many more bytes.
    Incomplete(usize),
    /// A whole valid line.
    Complete(ProxyHeader),
}

/// The v1 address fields' bounds and character sets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

const FIELDS: [V1Field; 4] = [
    V1Field::SourceAddress,
    V1Field::DestinationAddress,
    V1Field::SourcePort,
    V1Field::DestinationPort,
];

impl Family {
    /// Shortest and longest text of field `i`.
    fn bounds(self, i: usize) -> (usize, usize) {
        match (self, i) {
            (_, 2 | 3) => (1, 5),
            // `0.0.0.0` to `255.255.255.255`.
            (Family::V4, _) => (7, 15),
            // `::` to `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`.
            (Family::V6, _) => (2, 45),
        }
    }

    fn allows(self, i: usize, c: u8) -> bool {
        match (self, i) {
            (_, 2 | 3) => c.is_ascii_digit(),
            (Family::V4, _) => c.is_ascii_digit() || c == b'.',
            (Family::V6, _) => c.is_ascii_hexdigit() || c == b':' || c == b'.',
        }
    }

    /// Fewest bytes after field `i` has `len` bytes: the rest of it, the
    /// later fields with their spaces, and the CRLF.
    fn min_remaining(self, i: usize, len: usize) -> usize {
        let rest: usize = (i + 1..4).map(|j| 1 + self.bounds(j).0).sum();
        self.bounds(i).0.saturating_sub(len) + rest + 2
    }

    fn bad(i: usize) -> ProxyError {
        let field = FIELDS[i];
        if i < 2 {
            ProxyError::V1BadAddress { field }
        } else {
            ProxyError::V1BadPort { field }
        }
    }
}

fn parse_ip(family: Family, text: &[u8]) -> Option<IpAddr> {
    let text = core::str::from_utf8(text).ok()?;
    match family {
        Family::V4 => Ipv4Addr::from_str(text).ok().map(IpAddr::V4),
        Family::V6 => Ipv6Addr::from_str(text).ok().map(IpAddr::V6),
    }
}

fn parse_port(text: &[u8]) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = text.iter().fold(0u32, |n, &c| n * 10 + u32::from(c - b'0'));
    u16::try_from(n).ok()
}

/// Checks a v1 prefix (or whole line) and bounds what is still to come.
fn scan_v1(line: &[u8]) -> Result<Scan, ProxyError> {
    const PREFIX: &[u8] = b"PROXY ";
    for (offset, (&byte, &expected)) in line.iter().zip(PREFIX).enumerate() {
        if byte != expected {
            return Err(ProxyError::NotProxy { offset, byte });
        }
    }
    if line.len() < PREFIX.len() {
        return Ok(Scan::Incomplete(V1_MIN_LEN - line.len()));
    }
    let rest = &line[PREFIX.len()..];
    let proto_len = rest
        .iter()
        .position(|&c| c == b' ' || c == b'\r' || c == b'\n')
        .unwrap_or(rest.len());
    let (proto, after) = rest.split_at(proto_len);
    let family = match (proto, after.first()) {
        (b"UNKNOWN", Some(_)) => return scan_unknown(line, after),
        (b"TCP4", Some(b' ')) => Family::V4,
        (b"TCP6", Some(b' ')) => Family::V6,
        (_, Some(_)) => return Err(ProxyError::V1BadProtocol),
        (_, None) => {
            // A partial protocol: the shortest line it can still start.
            return if b"UNKNOWN".starts_with(proto) && !proto.is_empty() {
                Ok(Scan::Incomplete(7 - proto.len() + 2))
            } else if proto.is_empty() {
                Ok(Scan::Incomplete(9))
            } else if b"TCP4".starts_with(proto) || b"TCP6".starts_with(proto) {
                let v4 = 4 - proto.len() + 1 + Family::V4.min_remaining(0, 0);
                let v6 = 4 - proto.len() + 1 + Family::V6.min_remaining(0, 0);
                Ok(Scan::Incomplete(if proto.len() == 4 && proto[3] == b'4' {
                    v4
                } else {
                    v6
                }))
            } else {
                Err(ProxyError::V1BadProtocol)
            };
        }
    };
    scan_fields(family, &after[1..])
}

/// After `PROXY UNKNOWN`: anything up to the CRLF (the spec says to ignore
/// it), but a CR must be followed by LF and a LF preceded by CR.
fn scan_unknown(line: &[u8], after: &[u8]) -> Result<Scan, ProxyError> {
    match after.iter().position(|&c| c == b'\r' || c == b'\n') {
        None => Ok(Scan::Incomplete(2)),
        Some(i) if after[i] == b'\n' => Err(ProxyError::V1BadLineEnd),
        Some(i) if i + 1 == after.len() => Ok(Scan::Incomplete(1)),
        Some(i) if after[i + 1] == b'\n' && i + 2 == after.len() => {
            Ok(Scan::Complete(ProxyHeader {
                version: ProxyVersion::V1,
                command: ProxyCommand::Proxied,
                transport: ProxyTransport::Unspecified,
                addresses: None,
                len: line.len(),
            }))
        }
        Some(_) => Err(ProxyError::V1BadLineEnd),
    }
}

/// The four fields of a `TCP4`/`TCP6` line and its CRLF.
fn scan_fields(family: Family, fields: &[u8]) -> Result<Scan, ProxyError> {
    let line_len = 11 + fields.len();
    let mut field = 0usize;
    let mut start = 0usize;
    let mut ips = [None; 2];
    let mut ports = [0u16; 2];
    for (i, &c) in fields.iter().enumerate() {
        let text = &fields[start..i];
        if c == b' ' || c == b'\r' {
            // The field ends here: the right one, the right separator, valid.
            match (field, c) {
                (0..=2, b' ') | (3, b'\r') => {}
                (3, _) => return Err(ProxyError::V1BadLineEnd),
                // A CR before the last field: the next one is missing.
                _ => return Err(Family::bad(field + 1)),
            }
            if field < 2 {
                ips[field] = Some(parse_ip(family, text).ok_or(Family::bad(field))?);
            } else {
                ports[field - 2] = parse_port(text).ok_or(Family::bad(field))?;
            }
            if c == b'\r' {
                return match fields.get(i + 1) {
                    None => Ok(Scan::Incomplete(1)),
                    Some(b'\n') if i + 2 == fields.len() => {
                        let (Some(source), Some(destination)) = (ips[0], ips[1]) else {
                            return Err(ProxyError::V1BadLineEnd);
                        };
                        Ok(Scan::Complete(ProxyHeader {
                            version: ProxyVersion::V1,
                            command: ProxyCommand::Proxied,
                            transport: match family {
                                Family::V4 => ProxyTransport::Tcp4,
                                Family::V6 => ProxyTransport::Tcp6,
                            },
                            addresses: Some(ProxyAddresses {
                                source: SocketAddr::new(source, ports[0]),
                                destination: SocketAddr::new(destination, ports[1]),
                            }),
                            len: line_len,
                        }))
                    }
                    Some(_) => Err(ProxyError::V1BadLineEnd),
                };
            }
            field += 1;
            start = i + 1;
            continue;
        }
        if field == 3 && c == b'\n' {
            return Err(ProxyError::V1BadLineEnd);
        }
        if !family.allows(field, c) || text.len() >= family.bounds(field).1 {
            return Err(Family::bad(field));
        }
    }
    Ok(Scan::Incomplete(
        family.min_remaining(field, fields.len() - start),
    ))
}
