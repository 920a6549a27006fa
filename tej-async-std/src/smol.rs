//! TEJ on smol: [`Server`] and [`Client`] whose sockets are smol's
//! (`async-net`'s) and whose connection tasks go to `smol::spawn`.
//!
//! Pick them with `default-features = false, features = ["smol"]` (add
//! `"tls"` for TLS): async-std is then not in the dependency tree at all.
//!
//! ```no_run
//! use tej_async_std::smol::{Client, Server};
//! use tej_async_std::{Frame, Handler};
//!
//! struct Quiet;
//! impl Handler for Quiet {}
//!
//! fn main() -> std::io::Result<()> {
//!     smol::block_on(async {
//!         let server = Server::bind("127.0.0.1:8000").await?;
//!         let shutdown = server.shutdown_handle();
//!         let serving = smol::spawn(server.serve(|| Quiet));
//!
//!         let client = Client::connect("127.0.0.1:8000", Quiet).await?;
//!         client.sender().send(Frame::message("hi")).await.expect("open");
//!         client.close();
//!         client.join().await?;
//!
//!         shutdown.shutdown();
//!         serving.await;
//!         Ok(())
//!     })
//! }
//! ```

use ::smol::net::{TcpListener, TcpStream};

/// smol as a `tej-net` runtime: tasks go to `smol::spawn` (smol's global
/// executor), sockets are `async-net`'s (`smol::net`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Smol;

crate::runtime::futures_io_runtime! {
    runtime: Smol, "smol",
    // async-net's streams half-close on `poll_close` themselves.
    tcp: TcpListener, TcpStream => TcpStream,
    unix: ::smol::net::unix::UnixListener, ::smol::net::unix::UnixStream
        => ::smol::net::unix::UnixStream,
    to_socket_addrs: ::smol::net::AsyncToSocketAddrs,
    spawn(task) { ::smol::spawn(task).detach() }
    tcp_listener(listener) { TcpListener::try_from(listener) }
    unix_listener(listener) { ::smol::net::unix::UnixListener::try_from(listener) }
}
