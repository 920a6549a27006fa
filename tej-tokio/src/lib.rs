//! TEJ on Tokio: a [`Server`], a [`Client`], a cross-task [`Sender`], and a
//! [`TejCodec`] for `Framed` streams, over any transport: TCP, Unix domain
//! sockets, TLS (feature `tls`), or any Tokio byte stream of your own.
//!
//! All protocol logic lives in [`tej_core`]'s [`Session`];
//! this crate moves bytes between a stream and a session, arms its timers
//! and wakes it when a [`Sender`] queues a frame. The same [`Handler`] runs
//! unchanged on `tej-async-std` and `tej-mio`.
//!
//! - A [`Server`] takes its connections from a [`Listener`] (Tokio's
//!   `TcpListener` by [`Server::bind`], `UnixListener` by
//!   `Server::bind_unix`, or yours by [`Server::from_listener`]) and runs
//!   an [`Acceptor`] handshake on each in the connection's own task
//!   ([`Plain`]: none; TLS by `Server::with_tls`; yours by
//!   [`Server::with_acceptor`]), within the session's
//!   [`handshake_timeout`](SessionConfig::handshake_timeout) and under the
//!   connection cap. A connection's handler is made only after its
//!   handshake succeeded.
//! - A [`Client`] connects over TCP ([`Client::connect`]), a Unix socket
//!   (`Client::connect_unix`), TLS (`Client::connect_tls`), or runs over a
//!   stream you connected ([`Client::from_stream`]).
//! - [`run_session`] drives one session over any stream, for a loop of
//!   your own.
//! - One [`ShutdownHandle`] (the core's, shared by every adapter) stops a
//!   server or a connection gracefully.
//!
//! When a session ends its stream is flushed and shut down: over TLS, the
//! peer gets a close_notify.
//!
//! The reference implementation's server and client, translated:
//!
//! ```no_run
//! use tej_tokio::{Client, Connection, Frame, FrameBuilder, Handler, Server, Status};
//!
//! /// Greets on connect and prints what arrives.
//! struct Printer;
//!
//! impl Handler for Printer {
//!     fn connected(&mut self, conn: &mut Connection<'_>) {
//!         let _ = conn.send(Frame::message("Hello"));
//!     }
//!
//!     fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
//!         for file in &frame.files {
//!             println!("file {} ({} bytes)", file.name, file.len());
//!         }
//!         if let Some(message) = &frame.message {
//!             println!("message: {}", String::from_utf8_lossy(message));
//!         }
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let server = Server::bind("127.0.0.1:8000").await?;
//!     let shutdown = server.shutdown_handle();
//!     let serving = tokio::spawn(server.serve(|| Printer));
//!
//!     let client = Client::connect("127.0.0.1:8000", Printer).await?;
//!     let frame = FrameBuilder::new(Status::DEFAULT)
//!         .file("file.txt", &b"hello world\n"[..])
//!         .message("Sending from client")
//!         .build();
//!     client.sender().send(frame).await.expect("connection open");
//!     client.close();
//!     client.join().await?;
//!
//!     shutdown.shutdown();
//!     serving.await?;
//!     Ok(())
//! }
//! ```
//!
//! # TLS
//!
//! With feature `tls`, rustls (ring provider) through tokio-rustls; both
//! are re-exported in module `tls`. The server below asks no client
//! certificate; give its configuration a client verifier
//! (`WebPkiClientVerifier`) to require one, and the client's
//! `with_client_auth_cert` to present one.
//!
//! ```no_run
//! # #[cfg(feature = "tls")]
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use tej_tokio::tls::rustls::crypto::ring;
//! use tej_tokio::tls::rustls::pki_types::pem::PemObject;
//! use tej_tokio::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
//! use tej_tokio::tls::rustls::{ClientConfig, RootCertStore, ServerConfig};
//! use tej_tokio::{Client, Frame, Handler, Server, SessionConfig};
//!
//! struct Quiet;
//! impl Handler for Quiet {}
//!
//! // The server: its certificate chain and key.
//! let chain = CertificateDer::pem_file_iter("server.pem")?.collect::<Result<Vec<_>, _>>()?;
//! let key = PrivateKeyDer::from_pem_file("server.key")?;
//! let server_tls = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
//!     .with_safe_default_protocol_versions()?
//!     .with_no_client_auth()
//!     .with_single_cert(chain, key)?;
//! let server = Server::bind("127.0.0.1:8443").await?.with_tls(Arc::new(server_tls));
//! let shutdown = server.shutdown_handle();
//! let serving = tokio::spawn(server.serve(|| Quiet));
//!
//! // The client: the CA it trusts, and the name the certificate must bear.
//! let mut roots = RootCertStore::empty();
//! for ca in CertificateDer::pem_file_iter("ca.pem")? {
//!     roots.add(ca?)?;
//! }
//! let client_tls = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
//!     .with_safe_default_protocol_versions()?
//!     .with_root_certificates(roots)
//!     .with_no_client_auth();
//! let client = Client::connect_tls(
//!     "127.0.0.1:8443",
//!     ServerName::try_from("localhost")?,
//!     Arc::new(client_tls),
//!     Quiet,
//!     SessionConfig::default(),
//! )
//! .await?; // An untrusted server fails here, with the reason.
//! client.sender().send(Frame::message("over TLS")).await?;
//! client.close();
//! client.join().await?;
//!
//! shutdown.shutdown();
//! serving.await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Unix domain sockets
//!
//! ```no_run
//! # #[cfg(unix)]
//! # async fn example() -> std::io::Result<()> {
//! use tej_tokio::{Client, Frame, Handler, Server, SessionConfig};
//!
//! struct Quiet;
//! impl Handler for Quiet {}
//!
//! let path = "/tmp/tej.sock";
//! // A socket file left by an earlier run is replaced; a live server's is not.
//! let server = Server::bind_unix(path).await?;
//! let shutdown = server.shutdown_handle();
//! let serving = tokio::spawn(server.serve(|| Quiet));
//!
//! let client = Client::connect_unix(path, Quiet, SessionConfig::default()).await?;
//! client.sender().send(Frame::message("over a Unix socket")).await.expect("open");
//! client.close();
//! client.join().await?;
//!
//! shutdown.shutdown();
//! serving.await?;
//! # Ok(())
//! # }
//! ```
//!
//! # A listener and an acceptor of your own
//!
//! A [`Listener`] hands the server its connections; an [`Acceptor`] runs
//! a handshake on each before its session. Both are `tej-net`'s traits,
//! implemented for the [`Tokio`] runtime:
//!
//! ```
//! use std::io;
//! use std::net::SocketAddr;
//! use tej_tokio::{Acceptor, Listener, Tokio};
//! use tokio::io::{AsyncRead, AsyncReadExt, DuplexStream};
//! use tokio::sync::mpsc;
//!
//! /// Serves the in-memory streams sent down a channel.
//! struct Channel(mpsc::Receiver<DuplexStream>);
//!
//! impl Listener<Tokio> for Channel {
//!     type Io = DuplexStream;
//!     type Addr = &'static str;
//!
//!     async fn accept(&mut self) -> io::Result<(DuplexStream, Option<SocketAddr>)> {
//!         match self.0.recv().await {
//!             Some(stream) => Ok((stream, None)),
//!             // Every sender is gone: nothing more will come.
//!             None => std::future::pending().await,
//!         }
//!     }
//!
//!     fn local_addr(&self) -> io::Result<&'static str> {
//!         Ok("in memory")
//!     }
//! }
//!
//! /// Admits a peer only if it first says the password.
//! struct Password(&'static [u8]);
//!
//! impl<S: AsyncRead + Unpin + Send + 'static> Acceptor<Tokio, S> for Password {
//!     type Stream = S;
//!
//!     async fn accept(&self, mut stream: S) -> io::Result<S> {
//!         let mut said = vec![0; self.0.len()];
//!         stream.read_exact(&mut said).await?;
//!         if said == self.0 {
//!             Ok(stream)
//!         } else {
//!             Err(io::Error::new(io::ErrorKind::PermissionDenied, "wrong password"))
//!         }
//!     }
//! }
//!
//! let (_streams, incoming) = mpsc::channel(8);
//! let server = tej_tokio::Server::from_listener(Channel(incoming))
//!     .with_acceptor(Password(b"open sesame\n"));
//! assert_eq!(server.local_addr().unwrap(), "in memory");
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod codec;
mod runtime;
#[cfg(feature = "tls")]
pub mod tls;

pub use codec::{CodecError, TejCodec};
pub use runtime::{Timer, Tokio};
pub use tej_net::common::asynch::*;

/// A TEJ server on Tokio: `tej-net`'s [`Server`](tej_net::Server) on
/// [`Tokio`], over any [`Listener`] (Tokio's `TcpListener` by default) and
/// any [`Acceptor`] ([`Plain`] by default).
pub type Server<L = tokio::net::TcpListener, A = Plain> = tej_net::Server<Tokio, L, A>;

/// A TEJ connection made by this side on Tokio: `tej-net`'s
/// [`Client`](tej_net::Client) on [`Tokio`].
pub type Client = tej_net::Client<Tokio>;

/// Runs `session` over `stream`, any Tokio byte stream, until the
/// connection ends: `tej-net`'s [`run_session`](tej_net::run_session) on
/// [`Tokio`], whose docs say what it guarantees. On Tokio's multi-thread
/// runtime, steps that do blocking file I/O run in `block_in_place`.
pub async fn run_session<S, H>(
    stream: S,
    session: Session<H>,
    shutdown: ShutdownHandle,
) -> DisconnectReason
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    H: Handler,
{
    tej_net::run_session::<Tokio, S, H>(stream, session, shutdown).await
}

pub use tej_net;
pub use tej_net::common::*;

/// The README's examples, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
