//! TEJ on async-std: [`Server`] and [`Client`] whose sockets are
//! async-std's and whose connection tasks go to `async_std::task::spawn`.
//! The crate root re-exports both.

use ::async_std::net::{TcpListener, TcpStream};
use tej_net::Plain;

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

crate::runtime::futures_io_runtime! {
    runtime: AsyncStd,
    tcp: TcpListener, TcpStream,
    unix: ::async_std::os::unix::net::UnixListener, ::async_std::os::unix::net::UnixStream,
    to_socket_addrs: ::async_std::net::ToSocketAddrs,
    // Dropping the handle detaches the task.
    spawn(task) { drop(::async_std::task::spawn(task)) }
    tcp_listener(listener) { Ok(TcpListener::from(listener)) }
    unix_listener(listener) { Ok(::async_std::os::unix::net::UnixListener::from(listener)) }
}
