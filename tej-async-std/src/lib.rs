//! TEJ on async-std and smol: a server, a client, a cross-task
//! [`Sender`], and [`run_session`] for any `futures-io` stream, over TCP,
//! Unix sockets, TLS (rustls) or a stream of your own.
//!
//! All protocol logic lives in [`tej_core`]'s [`Session`];
//! this crate moves bytes between a stream and a session, arms its timers
//! and wakes it when a [`Sender`] queues a frame. The API is the one of
//! `tej-tokio`, name for name, and the same [`Handler`] runs unchanged on
//! `tej-tokio` and `tej-mio`.
//!
//! # Features and faces
//!
//! | feature | gives |
//! | --- | --- |
//! | `async-std` (default) | [`async_std::Server`] and [`async_std::Client`] on async-std (also at the crate root): its sockets, tasks spawned with `async_std::task::spawn` |
//! | `smol` | [`smol::Server`] and [`smol::Client`] on smol: `async-net`'s sockets (`smol::net`), tasks spawned with `smol::spawn` |
//! | `tls` | `Server::with_tls`, `Client::connect_tls` and the `tls` module, re-exporting `rustls` (ring provider) and `futures-rustls` |
//!
//! The features are additive: each runtime's types live under its own
//! path, and the root's `Server` and `Client` are async-std's whenever
//! they exist. For smol alone, depend on
//! `tej-async-std = { version = "0.1", default-features = false, features = ["smol"] }`
//! (add `"tls"` for TLS): async-std is then not in the dependency tree.
//!
//! Both faces are aliases of one implementation, `tej-net`'s
//! [`Server`](tej_net::Server) and [`Client`](tej_net::Client), on the
//! runtime markers [`AsyncStd`] and [`Smol`] (`tej_net::runtime::Runtime`
//! implementations: how to spawn a task, which sockets and timer to use,
//! how to poll a `futures-io` stream). A server accepts from any
//! [`Listener`] (TCP or Unix of either runtime, or your own) and passes
//! each connection through an [`Acceptor`] (plain, TLS, or your own) in
//! the connection's own task, within
//! [`SessionConfig::handshake_timeout`], before it makes the connection's
//! handler. [`run_session`] runs one connection over any `futures-io`
//! stream on either executor.
//!
//! Graceful shutdown uses [`ShutdownHandle`], the one type every TEJ
//! adapter shares.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    feature = "async-std",
    doc = r#"
# On async-std

```no_run
use tej_async_std::{Client, Connection, Frame, FrameBuilder, Handler, Server, Status};

/// Greets on connect and prints what arrives.
struct Printer;

impl Handler for Printer {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        let _ = conn.send(Frame::message("Hello"));
    }

    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        for file in &frame.files {
            println!("file {} ({} bytes)", file.name, file.len());
        }
        if let Some(message) = &frame.message {
            println!("message: {}", String::from_utf8_lossy(message));
        }
    }
}

fn main() -> std::io::Result<()> {
    async_std::task::block_on(async {
        let server = Server::bind("127.0.0.1:8000").await?;
        let shutdown = server.shutdown_handle();
        let serving = async_std::task::spawn(server.serve(|| Printer));

        let client = tej_async_std::Client::connect("127.0.0.1:8000", Printer).await?;
        let frame = FrameBuilder::new(Status::DEFAULT)
            .file("file.txt", &b"hello world\n"[..])
            .message("Sending from client")
            .build();
        client.sender().send(frame).await.expect("connection open");
        client.close();
        client.join().await?;

        shutdown.shutdown();
        serving.await;
        Ok(())
    })
}
```
"#
)]
#![cfg_attr(
    all(feature = "async-std", feature = "tls"),
    doc = r#"
# TLS on async-std

The server presents `server.pem`; the client trusts `ca.pem`, which signed
it. Both configurations are built with the ring provider given explicitly,
so no process-wide default provider is needed.

```no_run
use std::sync::Arc;

use tej_async_std::tls::rustls::pki_types::pem::PemObject;
use tej_async_std::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tej_async_std::tls::rustls::{self, crypto::ring, ClientConfig, RootCertStore, ServerConfig};
use tej_async_std::{Client, Frame, Handler, Server, SessionConfig};

struct Quiet;
impl Handler for Quiet {}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let provider = Arc::new(ring::default_provider());
    let certs = CertificateDer::pem_file_iter("server.pem")?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file("server.key")?;
    let server_tls = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter("ca.pem")? {
        roots.add(cert?)?;
    }
    let client_tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();

    async_std::task::block_on(async {
        let server = Server::bind("127.0.0.1:8443").await?.with_tls(Arc::new(server_tls));
        let shutdown = server.shutdown_handle();
        let serving = async_std::task::spawn(server.serve(|| Quiet));

        let name = ServerName::try_from("localhost")?;
        let config = SessionConfig::default();
        let client =
            Client::connect_tls("127.0.0.1:8443", name, Arc::new(client_tls), Quiet, config)
                .await?;
        client.sender().send(Frame::message("over TLS")).await?;
        client.close();
        client.join().await?; // close_notify sent

        shutdown.shutdown();
        serving.await;
        Ok(())
    })
}
```

For client certificates, build the server's configuration with
`with_client_cert_verifier(WebPkiClientVerifier::builder_with_provider(roots, provider).build()?)`
and the client's with `with_client_auth_cert(certs, key)?`.
"#
)]
#![cfg_attr(
    all(feature = "smol", feature = "tls"),
    doc = r#"
# TLS on smol

The same configurations; the faces are `tej_async_std::smol::{Server, Client}`:

```no_run
use std::sync::Arc;

use tej_async_std::smol::{Client, Server};
use tej_async_std::tls::rustls::pki_types::ServerName;
use tej_async_std::tls::rustls::{ClientConfig, ServerConfig};
use tej_async_std::{Frame, Handler, SessionConfig};

struct Quiet;
impl Handler for Quiet {}

async fn tls(server_tls: ServerConfig, client_tls: ClientConfig) -> std::io::Result<()> {
    let server = Server::bind("127.0.0.1:8443").await?.with_tls(Arc::new(server_tls));
    smol::spawn(server.serve(|| Quiet)).detach();

    let name = ServerName::try_from("localhost").expect("a DNS name");
    let config = SessionConfig::default();
    let client =
        Client::connect_tls("127.0.0.1:8443", name, Arc::new(client_tls), Quiet, config).await?;
    client.sender().send(Frame::message("over TLS")).await.expect("open");
    // Dropping the client closes it gracefully, close_notify included.
    Ok(())
}
```
"#
)]
//! # One connection by hand
//!
//! On any executor, drive a connection yourself with [`run_session`]:
//!
//! ```no_run
//! use tej_async_std::{run_session, Handler, SessionConfig, ShutdownHandle};
//! use tej_async_std::tej_core::Session;
//!
//! struct Quiet;
//! impl Handler for Quiet {}
//!
//! fn main() -> std::io::Result<()> {
//!     smol::block_on(async {
//!         let stream = smol::net::TcpStream::connect("127.0.0.1:8000").await?;
//!         let session = Session::new(Quiet, SessionConfig::default());
//!         let sender = session.sender();
//!         let shutdown = ShutdownHandle::new();
//!         let connection = smol::spawn(run_session(stream, session, shutdown.clone()));
//!         sender.send(tej_async_std::Frame::message("hi")).await.expect("open");
//!         sender.close();
//!         connection.await;
//!         Ok(())
//!     })
//! }
//! ```

#[cfg(feature = "async-std")]
pub mod async_std;
pub mod runtime;
#[cfg(feature = "smol")]
pub mod smol;

/// TLS with rustls: the crates this adapter uses, re-exported so that
/// configurations are built with the same versions.
///
/// Only the ring provider is compiled in: build configurations with
/// `ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))`
/// (and the same for `ClientConfig`).
#[cfg(feature = "tls")]
pub mod tls {
    pub use futures_rustls;
    pub use rustls;
}

/// The async-std faces at the root: only with the `async-std` feature, and
/// always async-std's (smol's are under [`smol`]).
#[cfg(feature = "async-std")]
pub use crate::async_std::{Client, Server};
pub use tej_net::common::asynch::*;

#[cfg(feature = "async-std")]
pub use crate::async_std::AsyncStd;
#[cfg(feature = "smol")]
pub use crate::smol::Smol;

/// Runs `session` over `stream`, any `futures-io` byte stream, until the
/// connection ends: `tej-net`'s [`run_session`](tej_net::run_session),
/// whose docs say what it guarantees. Its timers are `async-io`'s, which
/// async-std and smol both drive, so it runs on either executor.
#[cfg(any(feature = "async-std", feature = "smol"))]
pub async fn run_session<S, H>(
    stream: S,
    session: Session<H>,
    shutdown: ShutdownHandle,
) -> DisconnectReason
where
    S: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin,
    H: Handler,
{
    #[cfg(feature = "async-std")]
    type Either = crate::async_std::AsyncStd;
    #[cfg(not(feature = "async-std"))]
    type Either = crate::smol::Smol;
    tej_net::run_session::<Either, S, H>(stream, session, shutdown).await
}

pub use tej_net;
pub use tej_net::common::*;

/// The README's examples, compiled as doctests so that they stay true.
#[cfg(all(doctest, feature = "async-std", feature = "smol", feature = "tls"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
