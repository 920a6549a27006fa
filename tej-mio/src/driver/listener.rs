//! The accepting side of a driver: its socket, the handler factory, the
//! connection cap and the rest after an accept error.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use tej_core::accept::{self, ConnectionCap, ConnectionSlot};
use tej_core::SessionConfig;

pub(super) struct Listener<F> {
    pub(super) socket: TcpListener,
    pub(super) config: SessionConfig,
    pub(super) factory: F,
    pub(super) cap: ConnectionCap,
    token: Token,
    /// Registered with the poll (not resting after an error).
    registered: bool,
    /// Connections may be waiting: accept without waiting for an event.
    pub(super) ready: bool,
    /// Resting after an accept error until then.
    paused_until: Option<Duration>,
}

/// What one accept gave.
pub(super) enum Accepted {
    /// A connection to serve, with its place under the cap.
    Connection(TcpStream, SocketAddr, ConnectionSlot),
    /// A connection refused at the cap (already closed), or one that
    /// failed before it was accepted: accept the next.
    Skipped,
    /// Nothing more to accept now.
    Done,
}

impl<F> Listener<F> {
    pub(super) fn new(
        registry: &Registry,
        mut socket: TcpListener,
        token: Token,
        config: SessionConfig,
        factory: F,
    ) -> io::Result<Listener<F>> {
        registry.register(&mut socket, token, Interest::READABLE)?;
        Ok(Listener {
            socket,
            config,
            factory,
            cap: ConnectionCap::default(),
            token,
            registered: true,
            ready: true,
            paused_until: None,
        })
    }

    /// Accepts one connection; after an error that is not about one
    /// connection (such as running out of descriptors), rests until `now`
    /// plus the backoff, deregistered, so the loop neither stops nor spins.
    pub(super) fn accept(&mut self, registry: &Registry, now: Duration) -> Accepted {
        if !self.registered {
            return Accepted::Done;
        }
        match self.socket.accept() {
            Ok((stream, peer)) => match self.cap.admit(&peer) {
                Some(slot) => Accepted::Connection(stream, peer, slot),
                None => Accepted::Skipped,
            },
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Accepted::Done,
            Err(error) => match accept::after_accept_error(&error) {
                None => Accepted::Skipped,
                Some(pause) => {
                    if let Err(error) = registry.deregister(&mut self.socket) {
                        tracing::debug!(%error, "could not deregister the listener");
                    }
                    self.registered = false;
                    self.paused_until = Some(now.saturating_add(pause));
                    Accepted::Done
                }
            },
        }
    }

    /// When the rest after an accept error ends, if resting.
    pub(super) fn paused_until(&self) -> Option<Duration> {
        self.paused_until
    }

    /// Registers the listener again once its rest is over.
    pub(super) fn resume(&mut self, registry: &Registry, now: Duration) {
        if self.paused_until.is_none_or(|until| now < until) {
            return;
        }
        self.paused_until = None;
        match registry.register(&mut self.socket, self.token, Interest::READABLE) {
            Ok(()) => {
                self.registered = true;
                self.ready = true;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot register the listener again; pausing");
                self.paused_until = Some(now.saturating_add(accept::ACCEPT_ERROR_BACKOFF));
            }
        }
    }

    /// Stops listening.
    pub(super) fn close(mut self, registry: &Registry) {
        if self.registered {
            if let Err(error) = registry.deregister(&mut self.socket) {
                tracing::debug!(%error, "could not deregister the listener");
            }
        }
    }
}
