//! The PROXY protocol step of a server ([`Server::with_proxy_protocol`](crate::Server::with_proxy_protocol)):
//! the header is read with [`tej_net::proxy::HeaderRead`], never a byte
//! past it, before any other handshake (TLS comes after it on the wire).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use tej_net::proxy::{Addresses, HeaderRead};
use tokio::io::{AsyncRead, ReadBuf};

/// Reads and checks the PROXY header at the start of `stream`, reading
/// exactly the header's bytes, and says where the connection comes from:
/// `(peer, proxy)` for [`Session::with_addresses`](tej_core::Session::with_addresses).
///
/// # Errors
///
/// [`tej_net::proxy::admit`]'s (a health check is told by
/// [`tej_net::proxy::is_health_check`]), or the read's.
pub(crate) async fn read_header<S>(
    stream: &mut S,
    max_len: usize,
    real_peer: Option<SocketAddr>,
) -> io::Result<Addresses>
where
    S: AsyncRead + Unpin,
{
    let mut header = HeaderRead::new(max_len, real_peer);
    loop {
        let n = read(stream, header.buf()).await?;
        if let Some(result) = header.filled(n) {
            return result;
        }
    }
}

/// One read into `buf` (tokio's `io-util` is not a dependency).
async fn read<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut [u8]) -> io::Result<usize> {
    let mut buf = ReadBuf::new(buf);
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_read(cx, &mut buf)).await?;
    Ok(buf.filled().len())
}
