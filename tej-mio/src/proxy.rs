//! The PROXY protocol (v1 and v2) in the mio loop: a [`ProxyStream`] reads
//! the header that a load balancer (HAProxy `send-proxy`/`send-proxy-v2`,
//! nginx, Envoy) writes first on each connection, as the first part of its
//! [`Stream::handshake`], and a [`ProxyListener`] makes every connection a
//! listener accepts one. [`Server::with_proxy_protocol`](crate::Server::with_proxy_protocol)
//! puts one under everything else (under TLS: the header comes first on
//! the wire).
//!
//! The header is read with [`tej_net::proxy::HeaderRead`]: exactly its
//! bytes, never one of the session's, at most
//! [`DEFAULT_MAX_LEN`] of them, within the
//! driver's [`handshake_timeout`](crate::SessionConfig::handshake_timeout).
//! The client it names is the stream's [`Stream::peer_addr`], the balancer
//! its [`Stream::proxy_addr`]; a stream without a valid header fails its
//! handshake, so no handler is ever made for it.

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use tej_core::proxy::DEFAULT_MAX_LEN;
use tej_net::proxy::HeaderRead;

use crate::{Listener, Stream};

/// A stream that opens with a PROXY protocol header: read in
/// [`handshake`](Stream::handshake), before the inner stream's own
/// handshake (TLS over a `ProxyStream` reads the header first).
pub struct ProxyStream<S> {
    inner: S,
    /// `Some` until the header is read (boxed: gone once read).
    header: Option<Box<HeaderRead>>,
    /// The accepted connection's own peer: the balancer.
    real_peer: Option<SocketAddr>,
    /// The client the header named, if it named one.
    source: Option<SocketAddr>,
}

impl<S> fmt::Debug for ProxyStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyStream")
            .field("header_read", &self.header.is_none())
            .field("real_peer", &self.real_peer)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl<S: Stream> ProxyStream<S> {
    /// `inner`, accepted from `real_peer` (the balancer), whose header is
    /// still to be read; headers over `max_len` bytes are refused.
    pub fn new(inner: S, real_peer: Option<SocketAddr>, max_len: usize) -> ProxyStream<S> {
        ProxyStream {
            inner,
            header: Some(Box::new(HeaderRead::new(max_len, real_peer))),
            real_peer,
            source: None,
        }
    }

    /// The stream it wraps.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Reads what the header still needs, never more (an `Interrupted`
    /// read is the caller's to retry, as any other).
    fn read_header(&mut self) -> io::Result<()> {
        let Some(header) = &mut self.header else {
            return Ok(());
        };
        let (peer, proxy) = loop {
            let n = self.inner.read(header.buf())?;
            if let Some(result) = header.filled(n) {
                break result?;
            }
        };
        // v1 UNKNOWN and v2 UNSPEC carry no client: the real peer stands.
        self.source = proxy.and(peer);
        self.header = None;
        Ok(())
    }
}

impl<S: Stream> Read for ProxyStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_header()?;
        self.inner.read(buf)
    }
}

impl<S: Stream> Write for ProxyStream<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.inner.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

source_via!(ProxyStream<S>, inner, S: Stream);

impl<S: Stream> Stream for ProxyStream<S> {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.inner.shutdown_write()
    }

    /// Reads the header, then runs the inner stream's handshake.
    fn handshake(&mut self) -> io::Result<()> {
        self.read_header()?;
        self.inner.handshake()
    }

    fn is_handshaking(&self) -> bool {
        self.header.is_some() || self.inner.is_handshaking()
    }

    fn wants_write(&self) -> bool {
        self.inner.wants_write()
    }

    /// The client the header named; the connection's own peer before the
    /// header is read or when it named none.
    fn peer_addr(&self) -> Option<SocketAddr> {
        self.source.or(self.real_peer)
    }

    /// The balancer, once a header named a client.
    fn proxy_addr(&self) -> Option<SocketAddr> {
        self.source.and(self.real_peer)
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local_addr()
    }

    fn describe(&self, info: &mut tej_core::ConnectionInfo) {
        self.inner.describe(info);
    }

    /// The inner stream's: the header is read to its exact length, so no
    /// read of the session's comes from a buffer of this stream's own.
    fn short_io_drains(&self) -> bool {
        self.inner.short_io_drains()
    }
}

/// A [`Listener`] whose connections open with a PROXY header: each
/// accepted stream becomes a [`ProxyStream`].
pub struct ProxyListener<L> {
    inner: L,
}

impl<L> fmt::Debug for ProxyListener<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyListener")
            .field("max_len", &DEFAULT_MAX_LEN)
            .finish_non_exhaustive()
    }
}

impl<L: Listener> ProxyListener<L> {
    /// PROXY headers of at most
    /// [`DEFAULT_MAX_LEN`] bytes on every
    /// connection `inner` accepts.
    pub fn new(inner: L) -> ProxyListener<L> {
        ProxyListener { inner }
    }

    /// The listener it wraps.
    pub fn get_ref(&self) -> &L {
        &self.inner
    }
}

source_via!(ProxyListener<L>, inner, L: Listener);

impl<L: Listener> Listener for ProxyListener<L> {
    type Stream = ProxyStream<L::Stream>;

    /// Accepts a connection; its header is read in the event loop. The
    /// peer returned is the balancer's: the client is known only once the
    /// header is read (see [`ProxyStream`]).
    fn accept(&mut self) -> io::Result<(ProxyStream<L::Stream>, Option<SocketAddr>)> {
        let (stream, peer) = self.inner.accept()?;
        Ok((ProxyStream::new(stream, peer, DEFAULT_MAX_LEN), peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn local_path(&self) -> Option<PathBuf> {
        self.inner.local_path()
    }
}
