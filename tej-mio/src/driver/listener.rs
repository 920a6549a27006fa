//! The accepting side of a driver: the public [`Listener`] trait, and the
//! driver's acceptor with its handler factory, the connection cap and the
//! rest after an accept error.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mio::{Interest, Registry, Token};
use tej_core::SessionConfig;
use tej_net::accept::{self, Accept, ConnectionCap};
use tej_net::Observer;

use super::conn::Stream;

/// A non-blocking listener a [`Driver`](crate::Driver) or a
/// [`Server`](crate::Server) accepts connections on: mio's `TcpListener`
/// and `UnixListener`, a `tls::TlsListener` over
/// either (feature `tls`), or one of your own that reports "nothing to
/// accept" as `WouldBlock` and its readiness through its
/// [`Source`](mio::event::Source).
pub trait Listener: mio::event::Source + Send {
    /// The streams it accepts.
    type Stream: Stream + 'static;

    /// Accepts one connection, with the peer's IP address if it has one.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when none is waiting; otherwise the operating
    /// system's error (see
    /// [`is_per_connection_error`](tej_net::accept::is_per_connection_error)
    /// for which ones end only that connection).
    fn accept(&mut self) -> io::Result<(Self::Stream, Option<SocketAddr>)>;

    /// The IP address it listens on.
    ///
    /// # Errors
    ///
    /// The operating system's error; `Unsupported` for a listener without
    /// an IP address (a Unix socket: see [`local_path`](Self::local_path)).
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// The file system path it listens on, for a Unix socket bound to one.
    fn local_path(&self) -> Option<PathBuf> {
        None
    }
}

impl Listener for mio::net::TcpListener {
    type Stream = mio::net::TcpStream;

    /// Accepts a connection with Nagle's algorithm off: small frames must
    /// not wait, and the driver already coalesces its writes.
    fn accept(&mut self) -> io::Result<(mio::net::TcpStream, Option<SocketAddr>)> {
        let (stream, peer) = mio::net::TcpListener::accept(self)?;
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not disable Nagle's algorithm");
        }
        Ok((stream, Some(peer)))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        mio::net::TcpListener::local_addr(self)
    }
}

#[cfg(unix)]
impl Listener for mio::net::UnixListener {
    type Stream = mio::net::UnixStream;

    fn accept(&mut self) -> io::Result<(mio::net::UnixStream, Option<SocketAddr>)> {
        let (stream, _) = mio::net::UnixListener::accept(self)?;
        Ok((stream, None))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        let why = "a Unix socket has no IP address (see local_path)";
        Err(io::Error::new(io::ErrorKind::Unsupported, why))
    }

    fn local_path(&self) -> Option<PathBuf> {
        let addr = mio::net::UnixListener::local_addr(self).ok()?;
        addr.as_pathname().map(PathBuf::from)
    }
}

/// A boxed listener is one: what a server keeps of any kind it was given.
impl<L: Listener + ?Sized> Listener for Box<L> {
    type Stream = L::Stream;

    fn accept(&mut self) -> io::Result<(L::Stream, Option<SocketAddr>)> {
        (**self).accept()
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        (**self).local_addr()
    }

    fn local_path(&self) -> Option<PathBuf> {
        (**self).local_path()
    }
}

/// A listener of any kind, its streams boxed.
pub(crate) type AnyListener = Box<dyn Listener<Stream = Box<dyn Stream>>>;

/// A listener whose streams are boxed, so that it fits in an [`AnyListener`].
pub(crate) struct Erased<L>(pub(crate) L);

source_via!(Erased<L>, 0, L: Listener);

impl<L: Listener> Listener for Erased<L> {
    type Stream = Box<dyn Stream>;

    fn accept(&mut self) -> io::Result<(Box<dyn Stream>, Option<SocketAddr>)> {
        let (stream, peer) = self.0.accept()?;
        Ok((Box::new(stream), peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    fn local_path(&self) -> Option<PathBuf> {
        self.0.local_path()
    }
}

pub(super) struct Acceptor<F> {
    pub(super) socket: AnyListener,
    /// Shared by its connections' sessions.
    pub(super) config: std::sync::Arc<SessionConfig>,
    pub(super) factory: F,
    pub(super) cap: ConnectionCap,
    token: Token,
    /// Connections may be waiting: accept without waiting for an event.
    pub(super) ready: bool,
    /// Resting after an accept error until then, deregistered from the poll.
    pub(super) paused_until: Option<Duration>,
}

impl<F> Acceptor<F> {
    pub(super) fn new(
        registry: &Registry,
        mut socket: AnyListener,
        token: Token,
        config: SessionConfig,
        factory: F,
    ) -> io::Result<Acceptor<F>> {
        registry.register(&mut *socket, token, Interest::READABLE)?;
        Ok(Acceptor {
            socket,
            config: std::sync::Arc::new(config),
            factory,
            cap: ConnectionCap::default(),
            token,
            ready: true,
            paused_until: None,
        })
    }

    /// Accepts one connection under the cap, telling `observer`: `None`
    /// when there is nothing to accept now. After an error that is not
    /// about one connection (such as running out of descriptors), rests
    /// until `now` plus the backoff, deregistered, so the loop neither
    /// stops nor spins.
    pub(super) fn accept(
        &mut self,
        registry: &Registry,
        now: Duration,
        observer: Option<&dyn Observer>,
    ) -> Option<Accept<Box<dyn Stream>>> {
        if self.paused_until.is_some() {
            return None;
        }
        match self.socket.accept() {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => None,
            accepted => match self.cap.on_accept(accepted, observer) {
                Accept::Pause(pause) => {
                    if let Err(error) = registry.deregister(&mut *self.socket) {
                        tracing::debug!(%error, "could not deregister the listener");
                    }
                    self.paused_until = Some(now.saturating_add(pause));
                    None
                }
                next => Some(next),
            },
        }
    }

    /// Registers the listener again once its rest is over.
    pub(super) fn resume(&mut self, registry: &Registry, now: Duration) {
        if self.paused_until.is_none_or(|until| now < until) {
            return;
        }
        self.paused_until = None;
        match registry.register(&mut *self.socket, self.token, Interest::READABLE) {
            Ok(()) => self.ready = true,
            Err(error) => {
                tracing::warn!(%error, "cannot register the listener again; pausing");
                self.paused_until = Some(now.saturating_add(accept::ACCEPT_ERROR_BACKOFF));
            }
        }
    }

    /// Stops listening.
    pub(super) fn close(mut self, registry: &Registry) {
        if self.paused_until.is_none() {
            if let Err(error) = registry.deregister(&mut *self.socket) {
                tracing::debug!(%error, "could not deregister the listener");
            }
        }
    }
}
