//! Tokio as a [`tej_net::runtime::Runtime`]: its spawner, timer and
//! sockets, and how its byte streams are polled. Everything else (the
//! accept loop, the client, the session's drive) is `tej-net`'s.

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
#[cfg(unix)]
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tej_net::runtime::{PollIo, Resolve, Runtime, Sleep};
use tej_net::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The Tokio runtime, for `tej-net`'s generic [`Server`](crate::Server)
/// and [`Client`](crate::Client). Connections run as tasks of the runtime
/// current where they are spawned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokio;

impl Runtime for Tokio {
    type Sleep = Timer;
    type TcpListener = TcpListener;
    type TcpStream = TcpStream;
    #[cfg(unix)]
    type UnixListener = tokio::net::UnixListener;
    #[cfg(unix)]
    type UnixStream = tokio::net::UnixStream;

    fn spawn<F: Future<Output = ()> + Send + 'static>(task: F) {
        drop(tokio::spawn(task));
    }

    fn sleep() -> Timer {
        Timer(None)
    }

    fn tcp_listener(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        TcpListener::from_std(listener)
    }

    #[cfg(unix)]
    fn unix_listener(
        listener: std::os::unix::net::UnixListener,
    ) -> io::Result<tokio::net::UnixListener> {
        tokio::net::UnixListener::from_std(listener)
    }

    async fn connect_tcp(addr: SocketAddr) -> io::Result<TcpStream> {
        TcpStream::connect(addr).await
    }

    #[cfg(unix)]
    async fn connect_unix(path: PathBuf) -> io::Result<tokio::net::UnixStream> {
        tokio::net::UnixStream::connect(path).await
    }

    fn prepare_tcp(stream: &TcpStream) -> (Option<SocketAddr>, Option<SocketAddr>) {
        no_delay(stream);
        (stream.peer_addr().ok(), stream.local_addr().ok())
    }

    /// On the multi-thread runtime, in `block_in_place`: a disk that
    /// stalls holds up this connection only.
    fn run_blocking<T>(step: impl FnOnce() -> T) -> T {
        let multi_thread = tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
            runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        });
        if multi_thread {
            tokio::task::block_in_place(step)
        } else {
            step()
        }
    }
}

/// Tokio's timer, made on first use.
#[derive(Debug)]
pub struct Timer(Option<Pin<Box<tokio::time::Sleep>>>);

impl Sleep for Timer {
    fn reset(&mut self, deadline: Instant) {
        let deadline = tokio::time::Instant::from_std(deadline);
        match &mut self.0 {
            Some(sleep) => sleep.as_mut().reset(deadline),
            None => self.0 = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.0 {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> PollIo<S> for Tokio {
    fn poll_read(stream: &mut S, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::new(buf);
        match Pin::new(stream).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.filled().len())),
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_write_vectored(
        stream: &mut S,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(stream).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(stream: &mut S, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(stream).poll_flush(cx)
    }

    fn poll_close(stream: &mut S, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(stream).poll_shutdown(cx)
    }
}

impl<A: tokio::net::ToSocketAddrs + Send> Resolve<A> for Tokio {
    async fn resolve(addr: A) -> io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host(addr).await?.collect())
    }
}

impl Listener<Tokio> for TcpListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> io::Result<(TcpStream, Option<SocketAddr>)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        no_delay(&stream);
        Ok((stream, Some(peer)))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }

    fn describe(&self, io: &TcpStream, info: &mut tej_core::ConnectionInfo) {
        info.transport = tej_core::Transport::Tcp;
        info.local = io.local_addr().ok();
    }
}

#[cfg(unix)]
impl Listener<Tokio> for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    /// The socket's address: its path, from
    /// [`as_pathname`](tokio::net::unix::SocketAddr::as_pathname).
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> io::Result<(tokio::net::UnixStream, Option<SocketAddr>)> {
        let (stream, _peer) = tokio::net::UnixListener::accept(self).await?;
        Ok((stream, None))
    }

    fn local_addr(&self) -> io::Result<tokio::net::unix::SocketAddr> {
        tokio::net::UnixListener::local_addr(self)
    }

    fn describe(&self, _io: &tokio::net::UnixStream, info: &mut tej_core::ConnectionInfo) {
        info.transport = tej_core::Transport::Unix;
    }
}

/// Small frames must not wait for Nagle's algorithm; writes are already
/// coalesced.
fn no_delay(stream: &TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not disable Nagle's algorithm");
    }
}
