//! TEJ on async-std: [`Server`] and [`Client`] whose sockets are
//! async-std's and whose connection tasks go to `async_std::task::spawn`.
//! The crate root re-exports both.

use ::async_std::net::{TcpListener, TcpStream};

/// async-std as a `tej-net` runtime: tasks go to `async_std::task::spawn`,
/// sockets are async-std's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AsyncStd;

crate::runtime::futures_io_runtime! {
    runtime: AsyncStd, "async-std",
    tcp: TcpListener, TcpStream,
    unix: ::async_std::os::unix::net::UnixListener, ::async_std::os::unix::net::UnixStream,
    to_socket_addrs: ::async_std::net::ToSocketAddrs,
    // Dropping the handle detaches the task.
    spawn(task) { drop(::async_std::task::spawn(task)) }
    tcp_listener(listener) { Ok(TcpListener::from(listener)) }
    unix_listener(listener) { Ok(::async_std::os::unix::net::UnixListener::from(listener)) }
}
