//! Who is on the other end of a connection and how it reached us: plain
//! data an adapter fills in and a handler reads
//! ([`Connection::info`](crate::Connection::info)).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;

/// The kind of stream a connection runs over, under any TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transport {
    /// A stream the adapter cannot name (an in-memory pipe, a listener of
    /// your own).
    #[default]
    Other,
    /// TCP.
    Tcp,
    /// A Unix domain socket.
    Unix,
}

impl Transport {
    /// `"tcp"`, `"unix"` or `"other"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Other => "other",
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a TLS handshake agreed on, as plain data (no rustls types).
#[derive(Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TlsInfo {
    /// The protocol version, as `"TLSv1.3"` or `"TLSv1.2"`.
    pub version: String,
    /// The cipher suite, as IANA names it (`"TLS13_AES_256_GCM_SHA384"`).
    pub cipher: String,
    /// The server name the client asked for (SNI), if it sent one.
    pub sni: Option<String>,
    /// The application protocol agreed by ALPN, if any.
    pub alpn: Option<Vec<u8>>,
    /// The peer's certificate chain, end entity first, in DER; empty when
    /// the peer presented none (a client without a certificate).
    pub peer_certificates: Vec<Vec<u8>>,
}

impl TlsInfo {
    /// TLS details with the given version and cipher suite names, and
    /// nothing else known yet.
    pub fn new(version: impl Into<String>, cipher: impl Into<String>) -> Self {
        TlsInfo {
            version: version.into(),
            cipher: cipher.into(),
            ..TlsInfo::default()
        }
    }
}

/// Certificates are summed up: their DER would fill a log line.
impl fmt::Debug for TlsInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsInfo")
            .field("version", &self.version)
            .field("cipher", &self.cipher)
            .field("sni", &self.sni)
            .field("alpn", &self.alpn)
            .field("peer_certificates", &self.peer_certificates.len())
            .finish()
    }
}

/// A connection's addresses, transport and TLS details, as the adapter
/// knew them when its handshake ended: what a handler factory gets and
/// [`Connection::info`](crate::Connection::info) returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// This side's address, when the stream has an IP address.
    pub local: Option<SocketAddr>,
    /// The peer's address: behind a load balancer that speaks the PROXY
    /// protocol, the client its header named.
    pub peer: Option<SocketAddr>,
    /// The load balancer's address, when a PROXY protocol header named
    /// the peer; `None` for a direct connection.
    pub proxy: Option<SocketAddr>,
    /// The stream under any TLS.
    pub transport: Transport,
    /// What the TLS handshake agreed on; `None` without TLS. (Boxed: a
    /// connection without TLS, and every idle one's task, does not carry
    /// its room.)
    pub tls: Option<Box<TlsInfo>>,
}

impl ConnectionInfo {
    /// Information about a connection over `transport`, nothing else known.
    pub fn new(transport: Transport) -> Self {
        ConnectionInfo {
            transport,
            ..ConnectionInfo::default()
        }
    }

    /// Whether the connection runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The transport as one word: `tcp`, `unix`, `other`, or with TLS
    /// `tls-over-tcp`, `tls-over-unix`, `tls-over-other`.
    pub fn transport_name(&self) -> &'static str {
        match (self.tls.is_some(), self.transport) {
            (false, transport) => transport.as_str(),
            (true, Transport::Tcp) => "tls-over-tcp",
            (true, Transport::Unix) => "tls-over-unix",
            (true, Transport::Other) => "tls-over-other",
        }
    }
}

/// What a session has moved so far: frames and bytes each way, for
/// metrics ([`Session::traffic`](crate::Session::traffic)). Monotonic; an
/// adapter reports the difference between two readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Traffic {
    /// Whole frames received (pings included).
    pub frames_in: u64,
    /// Bytes received and read by the session.
    pub bytes_in: u64,
    /// Frames queued to be written (pings included).
    pub frames_out: u64,
    /// Bytes written to the stream.
    pub bytes_out: u64,
}

impl Traffic {
    /// What moved between `earlier` and `self`.
    pub fn since(self, earlier: Traffic) -> Traffic {
        Traffic {
            frames_in: self.frames_in.saturating_sub(earlier.frames_in),
            bytes_in: self.bytes_in.saturating_sub(earlier.bytes_in),
            frames_out: self.frames_out.saturating_sub(earlier.frames_out),
            bytes_out: self.bytes_out.saturating_sub(earlier.bytes_out),
        }
    }

    /// Whether nothing moved.
    pub fn is_empty(&self) -> bool {
        *self == Traffic::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_names_say_tls_over_what() {
        let mut info = ConnectionInfo::new(Transport::Unix);
        assert_eq!(info.transport_name(), "unix");
        info.tls = Some(Box::new(TlsInfo::new(
            "TLSv1.3",
            "TLS13_AES_128_GCM_SHA256",
        )));
        assert_eq!(info.transport_name(), "tls-over-unix");
        assert!(info.is_tls());
        assert_eq!(ConnectionInfo::default().transport_name(), "other");
    }

    #[test]
    fn debug_counts_certificates_instead_of_dumping_them() {
        let mut tls = TlsInfo::new("TLSv1.2", "x");
        tls.peer_certificates = alloc::vec![alloc::vec![0x30; 2000]];
        let said = alloc::format!("{tls:?}");
        assert!(said.contains("peer_certificates: 1"), "{said}");
        assert!(said.len() < 200, "{said}");
    }
}
