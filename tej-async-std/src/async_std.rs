//! TEJ on async-std: [`Server`] and [`Client`] whose sockets are
//! async-std's and whose connection tasks go to `async_std::task::spawn`.
//! The crate root re-exports both.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use ::async_std::net::{TcpListener, TcpStream};

/// async-std as a `tej-net` runtime: tasks go to `async_std::task::spawn`,
/// sockets are async-std's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AsyncStd;

crate::runtime::futures_io_runtime! {
    runtime: AsyncStd, "async-std",
    tcp: TcpListener, TcpStream => HalfClose<TcpStream>,
    unix: ::async_std::os::unix::net::UnixListener, ::async_std::os::unix::net::UnixStream
        => HalfClose<::async_std::os::unix::net::UnixStream>,
    to_socket_addrs: ::async_std::net::ToSocketAddrs,
    // Dropping the handle detaches the task.
    spawn(task) { drop(::async_std::task::spawn(task)) }
    tcp_listener(listener) { Ok(TcpListener::from(listener)) }
    unix_listener(listener) { Ok(::async_std::os::unix::net::UnixListener::from(listener)) }
}

/// An async-std socket whose `poll_close` shuts its writing half down,
/// which async-std's own `poll_close` does not (it only flushes): the peer
/// then sees the end of the stream and closes its side, which the drive's
/// close waits for before it drops the socket (see `tej_net::drive`).
/// What [`AsyncStd`]'s listeners accept and its clients connect; it
/// dereferences to the socket.
#[derive(Debug)]
pub struct HalfClose<S>(S);

impl<S> From<S> for HalfClose<S> {
    fn from(stream: S) -> Self {
        HalfClose(stream)
    }
}

impl<S> std::ops::Deref for HalfClose<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.0
    }
}

/// A socket of async-std's whose writing half can be shut down.
pub trait ShutdownWrite {
    /// Shuts the writing half down.
    ///
    /// # Errors
    ///
    /// The operating system's.
    fn shutdown_write(&self) -> io::Result<()>;
}

impl ShutdownWrite for TcpStream {
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

#[cfg(unix)]
impl ShutdownWrite for ::async_std::os::unix::net::UnixStream {
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

impl<S: futures_io::AsyncRead + Unpin> futures_io::AsyncRead for HalfClose<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: futures_io::AsyncWrite + ShutdownWrite + Unpin> futures_io::AsyncWrite for HalfClose<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(Pin::new(&mut self.0).poll_flush(cx))?;
        match self.0.shutdown_write() {
            Err(error) if error.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            result => Poll::Ready(result),
        }
    }
}
