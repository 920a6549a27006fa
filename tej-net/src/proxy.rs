//! The PROXY protocol step of a server, written once for every adapter:
//! [`HeaderRead`] reads the header with [`tej_core::proxy::ProxyDecoder`],
//! never a byte past it, and turns the core's [`Admission`] into an
//! `io::Result` a handshake step can return.

use std::io::{self, Error, ErrorKind};
use std::net::SocketAddr;

use tej_core::proxy::{Admission, ProxyDecoder, ProxyError};

/// Where a connection comes from: `(peer, proxy)`, for
/// [`Session::with_addresses`](tej_core::Session::with_addresses).
pub type Addresses = (Option<SocketAddr>, Option<SocketAddr>);

/// A PROXY header being read from a stream, one read at a time.
///
/// Read into [`buf`](Self::buf) (never more than it offers: what follows
/// the header is the session's) and hand the count to
/// [`filled`](Self::filled), until it gives an answer.
///
/// ```
/// use std::io::Read;
/// use tej_net::proxy::HeaderRead;
///
/// let mut wire: &[u8] = b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n\x80\x01";
/// let mut read = HeaderRead::new(4096, None);
/// let addresses = loop {
///     let n = wire.read(read.buf()).unwrap();
///     if let Some(result) = read.filled(n) {
///         break result.unwrap();
///     }
/// };
/// assert_eq!(addresses.0, Some("192.0.2.1:56324".parse().unwrap()));
/// assert_eq!(wire, b"\x80\x01", "the session's bytes stay unread");
/// ```
#[derive(Debug)]
pub struct HeaderRead {
    decoder: ProxyDecoder,
    real_peer: Option<SocketAddr>,
    buf: [u8; 256],
}

impl HeaderRead {
    /// A header of at most `max_len` bytes, on a connection whose socket
    /// peer (the balancer, when there is one) is `real_peer`.
    pub fn new(max_len: usize, real_peer: Option<SocketAddr>) -> HeaderRead {
        HeaderRead {
            decoder: ProxyDecoder::new(max_len),
            real_peer,
            buf: [0; 256],
        }
    }

    /// Where to read next: never past the end of the header.
    pub fn buf(&mut self) -> &mut [u8] {
        let want = self.decoder.wanted().min(self.buf.len());
        &mut self.buf[..want]
    }

    /// Takes the `n` bytes just read into [`buf`](Self::buf) (0 at the end
    /// of the stream); `Some` once the header is read or refused, as
    /// [`admit`]'s answer.
    pub fn filled(&mut self, n: usize) -> Option<io::Result<Addresses>> {
        let pushed = if n == 0 {
            self.decoder.finish().map(Some)
        } else {
            self.decoder.push(&self.buf[..n])
        };
        let read = match pushed {
            Ok(None) => return None,
            Ok(Some(header)) => Ok(header),
            Err(error) => Err(error),
        };
        Some(admit(read.as_ref().map_err(|error| *error), self.real_peer))
    }
}

/// The core's [`Admission`] of a header read (or not), as an adapter's
/// handshake step reports it: `Ok((peer, proxy))` to serve, or an error:
/// `ConnectionAborted` for a health check (tell it by
/// [`is_health_check`]), `UnexpectedEof` for a header cut short,
/// `InvalidData` for one refused.
///
/// # Errors
///
/// As above, for every admission but [`Admission::Serve`].
pub fn admit(
    read: Result<&tej_core::proxy::ProxyHeader, ProxyError>,
    real_peer: Option<SocketAddr>,
) -> io::Result<Addresses> {
    match Admission::of(read, real_peer) {
        Admission::Serve { peer, proxy } => Ok((peer, proxy)),
        Admission::HealthCheck(what) => {
            Err(Error::new(ErrorKind::ConnectionAborted, HealthCheck(what)))
        }
        Admission::Refuse(error @ ProxyError::Truncated { .. }) => {
            Err(Error::new(ErrorKind::UnexpectedEof, error))
        }
        Admission::Refuse(error) => Err(Error::new(ErrorKind::InvalidData, error)),
    }
}

/// The error [`admit`] gives a health check.
#[derive(Debug)]
struct HealthCheck(&'static str);

impl std::fmt::Display for HealthCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for HealthCheck {}

/// Whether `error` is a PROXY header's refusal, from [`admit`] (not a
/// health check's).
pub fn is_proxy_error(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<ProxyError>())
}

/// Whether `error` is a health check's, from [`admit`]: the connection is
/// closed quietly, not reported as a failure.
pub fn is_health_check(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<HealthCheck>())
}
