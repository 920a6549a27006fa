//! The PROXY protocol step of a server ([`Server::with_proxy_protocol`](crate::Server::with_proxy_protocol)):
//! the header is read with [`tej_core::proxy::ProxyDecoder`], never a byte
//! past it, before any other handshake (TLS comes after it on the wire).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use tej_core::proxy::{ProxyCommand, ProxyDecoder, ProxyError};
use tej_core::{Handler, Session};
use tokio::io::{AsyncRead, ReadBuf};

/// Where a connection that passed the PROXY step comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Via {
    /// The client, as the header names it (the real peer for a header
    /// without addresses: v1 `UNKNOWN`, v2 `UNSPEC`).
    pub(crate) peer: Option<SocketAddr>,
    /// The balancer: the accepted connection's own peer, when the header
    /// named a client.
    pub(crate) proxy: Option<SocketAddr>,
}

impl Via {
    /// `session` with this peer (and proxy).
    pub(crate) fn apply<H: Handler>(self, session: Session<H>) -> Session<H> {
        match (self.peer, self.proxy) {
            (Some(peer), Some(proxy)) => session.with_proxied_peer(peer, proxy),
            (Some(peer), None) => session.with_peer(peer),
            _ => session,
        }
    }
}

/// Why a connection was closed quietly in its PROXY step: the balancer's
/// own connection (v2 `LOCAL`) or a bare connect-and-close, both what a
/// health check does. Not an error; the `io::Error` carrying it is of kind
/// `ConnectionAborted`.
#[derive(Debug)]
pub(crate) struct HealthCheck(&'static str);

impl fmt::Display for HealthCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for HealthCheck {}

/// Whether `error` is a [`HealthCheck`] (closed quietly, not a failure).
pub(crate) fn is_health_check(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<HealthCheck>())
}

/// Reads and checks the PROXY header at the start of `stream`, reading
/// exactly the header's bytes, and says where the connection comes from.
///
/// # Errors
///
/// `InvalidData` for a missing or malformed header (its reason), a
/// [`HealthCheck`] for `LOCAL` or a connection closed before its first
/// byte, `UnexpectedEof` for one closed mid-header, or the read's error.
pub(crate) async fn read_header<S>(
    stream: &mut S,
    max_len: usize,
    real_peer: Option<SocketAddr>,
) -> io::Result<Via>
where
    S: AsyncRead + Unpin,
{
    let mut decoder = ProxyDecoder::new(max_len);
    let mut buf = [0u8; 256];
    let header = loop {
        // Never more than the decoder wants: what follows is the session's.
        let want = decoder.wanted().min(buf.len());
        let n = read(stream, &mut buf[..want]).await?;
        let pushed = if n == 0 {
            decoder.finish().map(Some)
        } else {
            decoder.push(&buf[..n])
        };
        match pushed {
            Ok(Some(header)) => break header,
            Ok(None) => {}
            Err(error) => return Err(refusal(error)),
        }
    };
    admit(header.command, header.source(), real_peer)
}

/// What a complete header means for the connection.
pub(crate) fn admit(
    command: ProxyCommand,
    source: Option<SocketAddr>,
    real_peer: Option<SocketAddr>,
) -> io::Result<Via> {
    match (command, source) {
        (ProxyCommand::Local, _) => Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            HealthCheck("PROXY LOCAL: the balancer's own connection (a health check)"),
        )),
        (ProxyCommand::Proxied, Some(source)) => Ok(Via {
            peer: Some(source),
            proxy: real_peer,
        }),
        // UNKNOWN or UNSPEC: the spec says to use the real addresses.
        (ProxyCommand::Proxied, None) => Ok(Via {
            peer: real_peer,
            proxy: None,
        }),
    }
}

/// The `io::Error` of a header the decoder refused.
pub(crate) fn refusal(error: ProxyError) -> io::Error {
    match error {
        ProxyError::Truncated { received: 0 } => io::Error::new(
            io::ErrorKind::ConnectionAborted,
            HealthCheck("closed before a PROXY header (a TCP health check)"),
        ),
        ProxyError::Truncated { .. } => io::Error::new(io::ErrorKind::UnexpectedEof, error),
        _ => io::Error::new(io::ErrorKind::InvalidData, error),
    }
}

/// One read into `buf` (tokio's `io-util` is not a dependency).
async fn read<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut [u8]) -> io::Result<usize> {
    let mut buf = ReadBuf::new(buf);
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_read(cx, &mut buf)).await?;
    Ok(buf.filled().len())
}
