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

use std::future::Future;
use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::path::PathBuf;

#[cfg(unix)]
use ::smol::net::unix::{UnixListener, UnixStream};
use ::smol::net::{AsyncToSocketAddrs, TcpListener, TcpStream};
use tej_net::runtime::{Resolve, Runtime};
use tej_net::Plain;

use crate::runtime::{prepare, Timer};

/// smol as a `tej-net` runtime: tasks go to `smol::spawn` (smol's global
/// executor), sockets are `async-net`'s (`smol::net`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Smol;

/// A TEJ server on smol: `tej-net`'s [`Server`](tej_net::Server) on
/// [`Smol`], over any [`Listener`](tej_net::Listener) (smol's `TcpListener` by default) and
/// any [`Acceptor`](tej_net::Acceptor) ([`Plain`] by default).
pub type Server<L = TcpListener, A = Plain> = tej_net::Server<Smol, L, A>;

/// A TEJ connection made by this side on smol: `tej-net`'s
/// [`Client`](tej_net::Client) on [`Smol`].
pub type Client = tej_net::Client<Smol>;

crate::runtime::futures_io_runtime!(
    Smol,
    TcpListener,
    TcpStream,
    ::smol::net::unix::UnixListener,
    ::smol::net::unix::UnixStream
);

impl Runtime for Smol {
    type Sleep = Timer;
    type TcpListener = TcpListener;
    type TcpStream = TcpStream;
    #[cfg(unix)]
    type UnixListener = UnixListener;
    #[cfg(unix)]
    type UnixStream = UnixStream;

    fn spawn<F: Future<Output = ()> + Send + 'static>(task: F) {
        ::smol::spawn(task).detach();
    }

    fn sleep() -> Timer {
        Timer::never()
    }

    fn tcp_listener(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        TcpListener::try_from(listener)
    }

    #[cfg(unix)]
    fn unix_listener(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        UnixListener::try_from(listener)
    }

    fn connect_tcp(addr: SocketAddr) -> impl Future<Output = io::Result<TcpStream>> + Send {
        TcpStream::connect(addr)
    }

    #[cfg(unix)]
    fn connect_unix(path: PathBuf) -> impl Future<Output = io::Result<UnixStream>> + Send {
        UnixStream::connect(path)
    }

    fn prepare_tcp(stream: &TcpStream) -> (Option<SocketAddr>, Option<SocketAddr>) {
        prepare(
            stream.set_nodelay(true),
            stream.peer_addr(),
            stream.local_addr(),
        )
    }
}

impl<A: AsyncToSocketAddrs + Send> Resolve<A> for Smol
where
    A::Iter: Send,
{
    async fn resolve(addr: A) -> io::Result<Vec<SocketAddr>> {
        Ok(addr.to_socket_addrs().await?.collect())
    }
}
