//! The PROXY protocol step of a server ([`Server::with_proxy_protocol`](crate::generic::Server::with_proxy_protocol)):
//! the header is read with [`tej_core::proxy::ProxyDecoder`], never a byte
//! past it, before any other handshake (TLS comes after it on the wire).

use std::io;
use std::net::SocketAddr;

use futures_io::AsyncRead;
use futures_lite::AsyncReadExt;
use tej_core::proxy::{Admission, ProxyDecoder};

/// Reads and checks the PROXY header at the start of `stream`, reading
/// exactly the header's bytes, and says where the connection comes from:
/// `(peer, proxy)` for [`Session::with_addresses`](tej_core::Session::with_addresses),
/// by the core's [`Admission`] policy.
///
/// # Errors
///
/// [`Admission::into_result`]'s (a health check is told by
/// [`tej_core::proxy::is_health_check`]), or the read's.
pub(crate) async fn read_header<S>(
    stream: &mut S,
    max_len: usize,
    real_peer: Option<SocketAddr>,
) -> io::Result<(Option<SocketAddr>, Option<SocketAddr>)>
where
    S: AsyncRead + Unpin,
{
    let mut decoder = ProxyDecoder::new(max_len);
    let mut buf = [0u8; 256];
    let read = loop {
        // Never more than the decoder wants: what follows is the session's.
        let want = decoder.wanted().min(buf.len());
        let n = stream.read(&mut buf[..want]).await?;
        let pushed = if n == 0 {
            decoder.finish().map(Some)
        } else {
            decoder.push(&buf[..n])
        };
        match pushed {
            Ok(Some(header)) => break Ok(header),
            Ok(None) => {}
            Err(error) => break Err(error),
        }
    };
    Admission::of(read.as_ref().map_err(|error| *error), real_peer).into_result()
}
