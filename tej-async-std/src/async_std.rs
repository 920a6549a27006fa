//! TEJ on async-std: [`Server`] and [`Client`] whose sockets are
//! async-std's and whose connection tasks go to `async_std::task::spawn`.
//! The crate root re-exports both.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::path::PathBuf;

use ::async_std::net::{TcpListener, TcpStream, ToSocketAddrs};
#[cfg(unix)]
use ::async_std::os::unix::net::{UnixListener, UnixStream};
use tej_net::runtime::{Resolve, Runtime};
use tej_net::Plain;

use crate::runtime::{prepare, Timer};

/// async-std as a `tej-net` runtime: tasks go to `async_std::task::spawn`,
/// sockets are async-std's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AsyncStd;

/// A TEJ server on async-std: `tej-net`'s [`Server`](tej_net::Server) on
/// [`AsyncStd`], over any [`Listener`](tej_net::Listener) (async-std's `TcpListener` by
/// default) and any [`Acceptor`](tej_net::Acceptor) ([`Plain`] by default).
pub type Server<L = TcpListener, A = Plain> = tej_net::Server<AsyncStd, L, A>;

/// A TEJ connection made by this side on async-std: `tej-net`'s
/// [`Client`](tej_net::Client) on [`AsyncStd`].
pub type Client = tej_net::Client<AsyncStd>;

crate::runtime::futures_io_runtime!(
    AsyncStd,
    TcpListener,
    TcpStream,
    ::async_std::os::unix::net::UnixListener,
    ::async_std::os::unix::net::UnixStream
);

impl Runtime for AsyncStd {
    type Sleep = Timer;
    type TcpListener = TcpListener;
    type TcpStream = TcpStream;
    #[cfg(unix)]
    type UnixListener = UnixListener;
    #[cfg(unix)]
    type UnixStream = UnixStream;

    fn spawn<F: Future<Output = ()> + Send + 'static>(task: F) {
        // Dropping the handle detaches the task.
        drop(::async_std::task::spawn(task));
    }

    fn sleep() -> Timer {
        Timer::never()
    }

    fn tcp_listener(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener::from(listener))
    }

    #[cfg(unix)]
    fn unix_listener(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener::from(listener))
    }

    fn connect_tcp(addr: SocketAddr) -> impl Future<Output = io::Result<TcpStream>> + Send {
        TcpStream::connect(addr)
    }

    #[cfg(unix)]
    async fn connect_unix(path: PathBuf) -> io::Result<UnixStream> {
        UnixStream::connect(path).await
    }

    fn prepare_tcp(stream: &TcpStream) -> (Option<SocketAddr>, Option<SocketAddr>) {
        prepare(
            stream.set_nodelay(true),
            stream.peer_addr(),
            stream.local_addr(),
        )
    }
}

impl<A: ToSocketAddrs + Send> Resolve<A> for AsyncStd
where
    A::Iter: Send,
{
    async fn resolve(addr: A) -> io::Result<Vec<SocketAddr>> {
        Ok(addr.to_socket_addrs().await?.collect())
    }
}
