//! TEJ on a raw [`mio`] event loop, for programs that want no async
//! runtime: a [`Server`], a [`Client`], a cross-thread [`Sender`], and a
//! [`Driver`] to run TEJ connections on a `mio::Poll` of your own.
//!
//! All protocol logic lives in [`tej_core`]'s [`Session`]; this crate moves
//! bytes between non-blocking sockets and sessions, turns their deadlines
//! into the poll's timeout, and wakes the loop when a [`Sender`] on another
//! thread queues a frame. The same [`Handler`] runs unchanged on
//! `tej-tokio` and `tej-async-std`, with the same callback order:
//! `connected` once, `received`/`ping_received` for every frame in arrival
//! order, `disconnected` once.
//!
//! The reference implementation's server and client, translated:
//!
//! ```no_run
//! use tej_mio::{Client, Connection, Frame, FrameBuilder, Handler, Server, Status};
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
//! fn main() -> std::io::Result<()> {
//!     let server = Server::bind("127.0.0.1:8000")?;
//!     let shutdown = server.shutdown_handle();
//!     // `run` blocks: every connection runs on this one thread.
//!     let serving = std::thread::spawn(move || server.run(|| Printer));
//!
//!     // The client runs its own loop on a thread of its own.
//!     let client = Client::connect("127.0.0.1:8000", Printer)?;
//!     let frame = FrameBuilder::new(Status::DEFAULT)
//!         .file("file.txt", &b"hello world\n"[..])
//!         .message("Sending from client")
//!         .build();
//!     client.sender().send_blocking(frame).expect("connection open");
//!     client.close();
//!     client.join()?;
//!
//!     shutdown.shutdown();
//!     serving.join().expect("server thread")?;
//!     Ok(())
//! }
//! ```
//!
//! # Transports
//!
//! [`Server::bind`] and [`Client::connect`] speak plain TCP. A server also
//! runs on a Unix socket ([`Server::bind_unix`]) or on any [`Listener`]
//! ([`Server::from_listener`]), and a client on any connected [`Stream`]
//! ([`Client::from_stream`]). Graceful shutdown, the connection cap and
//! the callbacks are the same on every one.
//!
//! ```no_run
//! # #[cfg(unix)]
//! # fn main() -> std::io::Result<()> {
//! use tej_mio::{Client, Connection, Frame, Handler, Server, SessionConfig, ShutdownHandle};
//!
//! /// Answers every frame with "ok".
//! struct Ack;
//!
//! impl Handler for Ack {
//!     fn received(&mut self, conn: &mut Connection<'_>, _frame: Frame) {
//!         let _ = conn.send(Frame::message("ok"));
//!     }
//! }
//!
//! // The socket file stays after the server ends; binding again replaces
//! // it (a live server's socket is never replaced).
//! let path = std::env::temp_dir().join("tej-example.sock");
//! // One signal of our own stops the server (and could stop others).
//! let shutdown = ShutdownHandle::new();
//! let server = Server::bind_unix(&path)?.with_shutdown(shutdown.clone());
//! let serving = std::thread::spawn(move || server.run(|| Ack));
//!
//! let client = Client::connect_unix(&path, Ack, SessionConfig::default())?;
//! assert_eq!(client.peer_addr(), None); // a Unix socket has no IP address
//! client.sender().send_blocking(Frame::message("over a Unix socket")).expect("open");
//! client.close();
//! client.join()?;
//!
//! shutdown.shutdown();
//! serving.join().expect("server thread")?;
//! # Ok(())
//! # }
//! # #[cfg(not(unix))]
//! # fn main() {}
//! ```
//!
//! # TLS
//!
//! With the feature `tls`, `Server::with_tls` and `Client::connect_tls`
//! run TLS with rustls's own connection types inside the event loop (see
//! the `tls` module: `tls::TlsStream` over any stream,
//! `tls::TlsListener` over any listener); `rustls`
//! is re-exported as `tej_mio::tls::rustls`. Only the ring provider is
//! compiled in: pass it when building a configuration. The handshake runs
//! in the loop and must complete within
//! [`SessionConfig::handshake_timeout`] (10 s by default) from accept; no
//! handler is made or called before it has. Whether a client certificate
//! is required is the `ServerConfig`'s to say (with rustls's
//! `WebPkiClientVerifier`). On close, a `close_notify` is sent.
//!
//! ```no_run
//! # #[cfg(feature = "tls")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use tej_mio::tls::rustls;
//! use rustls::pki_types::pem::PemObject;
//! use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
//! use tej_mio::{Client, Connection, Frame, Handler, Server, SessionConfig};
//!
//! /// Answers every frame with "ok".
//! struct Ack;
//!
//! impl Handler for Ack {
//!     fn received(&mut self, conn: &mut Connection<'_>, _frame: Frame) {
//!         let _ = conn.send(Frame::message("ok"));
//!     }
//! }
//!
//! let provider = Arc::new(rustls::crypto::ring::default_provider());
//!
//! // The server: its certificate chain and key.
//! let chain = CertificateDer::pem_file_iter("server.pem")?.collect::<Result<Vec<_>, _>>()?;
//! let key = PrivateKeyDer::from_pem_file("server.key")?;
//! let server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
//!     .with_safe_default_protocol_versions()?
//!     .with_no_client_auth()
//!     .with_single_cert(chain, key)?;
//! let server = Server::bind("127.0.0.1:8443")?.with_tls(Arc::new(server_tls));
//! let shutdown = server.shutdown_handle();
//! let serving = std::thread::spawn(move || server.run(|| Ack));
//!
//! // The client: trusts the CA that signed the server's certificate.
//! let mut roots = rustls::RootCertStore::empty();
//! for cert in CertificateDer::pem_file_iter("ca.pem")? {
//!     roots.add(cert?)?;
//! }
//! let client_tls = rustls::ClientConfig::builder_with_provider(provider)
//!     .with_safe_default_protocol_versions()?
//!     .with_root_certificates(roots)
//!     .with_no_client_auth();
//! // Blocks until the handshake is done; an untrusted certificate fails
//! // here, with rustls's reason in the error.
//! let client = Client::connect_tls(
//!     "127.0.0.1:8443",
//!     ServerName::try_from("localhost")?,
//!     Arc::new(client_tls),
//!     Ack,
//!     SessionConfig::default(),
//! )?;
//! client.sender().send_blocking(Frame::message("over TLS")).expect("open");
//! client.close();
//! client.join()?;
//!
//! shutdown.shutdown();
//! serving.join().expect("server thread")?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "tls"))]
//! # fn main() {}
//! ```
//!
//! # Threads and sending
//!
//! A [`Server`] runs every connection on the thread that calls
//! [`Server::run`], so its handlers need not be `Send`; a handler that
//! blocks holds up every connection of that server. A [`Client`] runs its
//! connection on a thread of its own. Inside a callback, send with
//! [`Connection::send`]. From other threads, use the [`Sender`]'s
//! [`send_blocking`](Sender::send_blocking) or
//! [`try_send`](Sender::try_send); never `send_blocking` on the loop's own
//! thread (in a callback), where a full queue would wait for the very loop
//! it blocks. `Sender::send` is a future and needs an executor.
//!
//! To run TEJ connections on a `mio::Poll` of your own, next to your own
//! sources and timers, use a [`Driver`]: it is what [`Server`] and
//! [`Client`] run.
//!
//! # How the loop works
//!
//! The drive loop itself is `tej-core`'s [`Drive`](tej_net::drive::Drive),
//! the same one every adapter runs; this crate maps mio onto it.
//!
//! - **Readiness.** mio's readiness is edge-triggered, so the loop keeps,
//!   per connection, whether the socket may be readable and writable; an
//!   event sets them, `WouldBlock` clears them, and a read or write ruled
//!   out by them fails with `WouldBlock` without a system call. On a
//!   stream whose [`Stream::short_io_drains`] says so (TCP and Unix
//!   sockets on epoll and kqueue), a read that returns less than asked
//!   clears readability too, and a short write writability, as tokio
//!   does: that saves one system call per round trip. Once an event has
//!   said the peer closed, reads go on to the end of the stream. The drive
//!   reads into one buffer shared by every connection of the loop, and
//!   writes with `write_vectored`, partial writes included: the unwritten
//!   rest stays queued, in order.
//! - **Interest.** A socket is registered for `READABLE` always and for
//!   `WRITABLE` only while [`Drive::wants_write`](tej_net::drive::Drive::wants_write)
//!   or the stream has bytes of its own to write ([`Stream::wants_write`]:
//!   TLS records); it is re-registered when that changes.
//! - **Handshakes.** A stream that needs one (TLS) runs it first: the
//!   loop calls [`Stream::handshake`] on each of its events until it is
//!   done, and only then makes the handler (for an accepted connection)
//!   and starts the session, so `connected` is the first callback after
//!   the handshake. Each handshake has a timer at
//!   [`SessionConfig::handshake_timeout`] from accept; when it fires, or on
//!   shutdown, the connection is closed without any callback.
//! - **Backpressure.** The session stops taking input at a frame boundary
//!   while too much waits to be written; the drive keeps the bytes it did
//!   not take (at most one read) and offers them again, before reading,
//!   once writing has drained the outbox.
//! - **Fairness.** One connection gets a bounded number of rounds per
//!   turn, and the listener a bounded number of accepts; if it has more to
//!   do it is queued and the poll does not wait.
//! - **Wake-ups.** Each session's [`Sender`] holds a `std::task::Waker`
//!   that marks its connection and calls the poll's [`mio::Waker`]; the
//!   loop then steps the marked connections. The [`ShutdownHandle`]'s
//!   `wait()` future is polled with a waker that calls the same
//!   [`mio::Waker`], so a shutdown from any thread wakes the loop at once.
//! - **Timers.** Idle timeout, ping, frame deadline and close linger come
//!   from [`Drive::poll_timeout`](tej_net::drive::Drive::poll_timeout),
//!   kept in one ordered set of deadlines: the poll waits until the
//!   earliest. Time is the [`Duration`](std::time::Duration) since the loop
//!   started.
//! - **Failures and limits.** An accept error that is not about one
//!   connection (such as running out of file descriptors) is logged with
//!   `tracing` and the listener rests for 100 ms. Beyond
//!   [`Server::with_max_connections`] a new connection is closed at once. A
//!   handler's panic is caught and ends its own connection only.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

/// Implements mio's `Source` for a wrapper by handing every call to the
/// source in its field `$field`: `source_via!(Wrapper<S>, inner, S: Bound)`.
macro_rules! source_via {
    ($wrapper:ty, $field:tt $(, $param:ident: $bound:path)?) => {
        impl$(<$param: $bound>)? mio::event::Source for $wrapper {
            fn register(
                &mut self,
                registry: &mio::Registry,
                token: mio::Token,
                interests: mio::Interest,
            ) -> std::io::Result<()> {
                self.$field.register(registry, token, interests)
            }

            fn reregister(
                &mut self,
                registry: &mio::Registry,
                token: mio::Token,
                interests: mio::Interest,
            ) -> std::io::Result<()> {
                self.$field.reregister(registry, token, interests)
            }

            fn deregister(&mut self, registry: &mio::Registry) -> std::io::Result<()> {
                self.$field.deregister(registry)
            }
        }
    };
}

mod client;
mod driver;
mod event_loop;
pub mod proxy;
mod server;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;

pub use client::Client;
pub use driver::{Driver, Listener, Stream};
pub use server::Server;

pub use mio;
pub use tej_net;
pub use tej_net::common::*;

/// The README's examples, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
