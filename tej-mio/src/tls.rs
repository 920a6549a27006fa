//! TLS with [`rustls`]'s own connection types inside the mio loop (feature
//! `tls`): a [`TlsStream`] is a [`Stream`] over any other, and a
//! [`TlsListener`] makes every connection a listener accepts one.
//!
//! The handshake runs inside the event loop, in the stream's reads and
//! writes and in [`Stream::handshake`], which the driver calls until it is
//! done; no [`Handler`](crate::Handler) callback runs before then, and a
//! handshake that takes longer than
//! [`SessionConfig::handshake_timeout`](crate::SessionConfig::handshake_timeout)
//! closes the connection. Memory stays bounded: a write takes no plaintext
//! while earlier records are still waiting for the socket, so at most
//! rustls's 64 KiB of records is buffered per connection. On close the
//! stream sends a TLS `close_notify` before shutting the socket's write side.
//!
//! Build configurations with the ring provider installed explicitly
//! (`ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))`),
//! so no process-wide default provider is needed: see the crate's example.

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

pub use rustls;

use crate::{Listener, Stream};

/// A TLS connection over a [`Stream`]: rustls's [`Connection`] (client or
/// server side) and the socket it talks through. It is itself a
/// [`Stream`], whose [`handshake`](Stream::handshake) runs the TLS handshake.
pub struct TlsStream<S> {
    io: S,
    conn: Connection,
    /// The server name a client side asked for (rustls's client
    /// connection does not keep it).
    sni: Option<String>,
}

impl<S> fmt::Debug for TlsStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field(
                "side",
                &match self.conn {
                    Connection::Client(_) => "client",
                    Connection::Server(_) => "server",
                },
            )
            .field("handshaking", &self.conn.is_handshaking())
            .finish_non_exhaustive()
    }
}

/// A rustls error as an I/O error (`InvalidData`), the rustls error its source.
fn tls_error(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

impl<S: Stream> TlsStream<S> {
    /// A TLS stream over `io` with a connection made elsewhere.
    pub fn new(io: S, conn: impl Into<Connection>) -> TlsStream<S> {
        TlsStream {
            io,
            conn: conn.into(),
            sni: None,
        }
    }

    /// The server side of a TLS connection over `io` (just accepted).
    ///
    /// # Errors
    ///
    /// rustls's, if `config` cannot make a connection (`InvalidData`).
    pub fn server(io: S, config: Arc<ServerConfig>) -> io::Result<TlsStream<S>> {
        let conn = ServerConnection::new(config).map_err(tls_error)?;
        Ok(TlsStream::new(io, conn))
    }

    /// The client side of a TLS connection over `io` (connected or
    /// connecting) to the server called `server_name`, whose certificate
    /// must be valid for that name.
    ///
    /// # Errors
    ///
    /// rustls's, if `config` cannot make a connection (`InvalidData`).
    pub fn client(
        io: S,
        server_name: ServerName<'static>,
        config: Arc<ClientConfig>,
    ) -> io::Result<TlsStream<S>> {
        let sni = tej_net::tls::sni(&server_name);
        let conn = ClientConnection::new(config, server_name).map_err(tls_error)?;
        let mut stream = TlsStream::new(io, conn);
        stream.sni = sni;
        Ok(stream)
    }

    /// The socket.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The socket, mutably: reading or writing it directly corrupts the
    /// TLS stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// The rustls connection: the negotiated protocol, the peer's
    /// certificates, the ALPN protocol and so on.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// What the handshake agreed on, as plain data: the protocol version,
    /// cipher suite, SNI, ALPN and the peer's certificates.
    pub fn tls_info(&self) -> tej_core::TlsInfo {
        match &self.conn {
            Connection::Server(server) => tej_net::tls::tls_info(server, server.server_name()),
            Connection::Client(client) => tej_net::tls::tls_info(client, self.sni.as_deref()),
        }
    }

    /// The socket and the rustls connection.
    pub fn into_parts(self) -> (S, Connection) {
        (self.io, self.conn)
    }

    /// Writes the TLS records rustls holds until none is left (an
    /// `Interrupted` write is the caller's to retry, as any other).
    fn write_pending(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut self.io)? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    /// rustls's own I/O loop ([`Connection::complete_io`]): until the
    /// handshake is done, or else one flight of records each way, until
    /// both directions would block; the bytes read and written. It reads
    /// even while a write would block from rustls 0.23.31 on (before, two
    /// peers with full send buffers each waited for the other).
    fn complete_io(&mut self) -> io::Result<(usize, usize)> {
        self.conn.complete_io(&mut self.io).map_err(|error| {
            // rustls's own end of stream in a handshake is a bare kind.
            if error.kind() != io::ErrorKind::UnexpectedEof || error.get_ref().is_some() {
                return error;
            }
            let why = "the peer closed the connection during the TLS handshake";
            io::Error::new(io::ErrorKind::UnexpectedEof, why)
        })
    }
}

impl<S: Stream> Read for TlsStream<S> {
    /// Reads plaintext: decrypts what rustls holds, or else runs rustls's
    /// I/O loop (advancing a handshake still in progress, writing records
    /// still queued, such as the answer to a key update, before reading
    /// more). `Ok(0)` after the peer's `close_notify`; `UnexpectedEof` if
    /// the socket ended without one.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Whether the last round moved bytes: a socket that takes nothing
        // (a write of 0) must fail the read, not spin it.
        let mut moved = true;
        loop {
            match self.conn.reader().read(buf) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock && !moved => {
                    return Err(io::ErrorKind::WriteZero.into())
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                result => return result,
            }
            moved = self.complete_io()? != (0, 0);
        }
    }
}

impl<S: Stream> Write for TlsStream<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    /// Encrypts some of `bufs` and writes the records to the socket. While
    /// records of an earlier write are still unwritten it takes nothing
    /// and fails with `WouldBlock`, so what waits is at most one write's
    /// records.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.conn.is_handshaking() {
            self.handshake()?;
        }
        self.write_pending()?;
        let taken = self.conn.writer().write_vectored(bufs)?;
        match self.write_pending() {
            // What is left goes out with the next write or flush.
            Err(error) if error.kind() != io::ErrorKind::WouldBlock && taken == 0 => Err(error),
            _ => Ok(taken),
        }
    }

    /// Writes every record rustls holds, then flushes the socket.
    fn flush(&mut self) -> io::Result<()> {
        self.write_pending()?;
        self.io.flush()
    }
}

source_via!(TlsStream<S>, io, S: Stream);

impl<S: Stream> Stream for TlsStream<S> {
    /// Sends `close_notify` (once: rustls queues it once, and never after
    /// a fatal alert), writes what is left, then shuts the socket's write
    /// side.
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.write_pending()?;
        self.io.shutdown_write()
    }

    /// Runs the TLS handshake as far as the socket allows: writes what
    /// rustls has to send and reads what it waits for, until it is done
    /// (`Ok`) or the socket would block (`WouldBlock`); what its end left
    /// queued (the last flight, tickets) goes out as far as the socket
    /// takes it, the rest with the first write.
    fn handshake(&mut self) -> io::Result<()> {
        self.io.handshake()?;
        while self.conn.is_handshaking() {
            // No bytes moved and no error: the socket took nothing.
            if self.complete_io()? == (0, 0) && self.conn.is_handshaking() {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    fn is_handshaking(&self) -> bool {
        self.io.is_handshaking() || self.conn.is_handshaking()
    }

    fn wants_write(&self) -> bool {
        self.conn.wants_write() || self.io.wants_write()
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        self.io.peer_addr()
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        self.io.local_addr()
    }

    fn proxy_addr(&self) -> Option<SocketAddr> {
        self.io.proxy_addr()
    }

    fn describe(&self, info: &mut tej_core::ConnectionInfo) {
        self.io.describe(info);
        info.tls = Some(Box::new(self.tls_info()));
    }
}

/// A [`Listener`] whose connections are TLS: each accepted stream becomes
/// the server side of a [`TlsStream`] with `config` (which decides, among
/// other things, whether client certificates are required).
pub struct TlsListener<L> {
    inner: L,
    config: Arc<ServerConfig>,
}

impl<L> fmt::Debug for TlsListener<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener").finish_non_exhaustive()
    }
}

impl<L: Listener> TlsListener<L> {
    /// TLS with `config` on every connection `inner` accepts.
    pub fn new(inner: L, config: Arc<ServerConfig>) -> TlsListener<L> {
        TlsListener { inner, config }
    }

    /// The listener it wraps.
    pub fn get_ref(&self) -> &L {
        &self.inner
    }
}

source_via!(TlsListener<L>, inner, L: Listener);

impl<L: Listener> Listener for TlsListener<L> {
    type Stream = TlsStream<L::Stream>;

    /// Accepts a connection and starts its server-side TLS state; the
    /// handshake itself runs in the event loop.
    fn accept(&mut self) -> io::Result<(TlsStream<L::Stream>, Option<SocketAddr>)> {
        let (stream, peer) = self.inner.accept()?;
        let stream = TlsStream::server(stream, Arc::clone(&self.config))?;
        Ok((stream, peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn local_path(&self) -> Option<PathBuf> {
        self.inner.local_path()
    }
}
