//! A hook for metrics: what a server tells an [`Observer`] about its
//! connections, from accept to disconnect. No metrics library here; the
//! application counts what it wants with what it likes (`tej serve
//! --metrics` implements it with `prometheus-client`).

use std::io;
use std::net::SocketAddr;

use tej_core::{ConnectionInfo, DisconnectReason, Traffic};

/// Told what a server's connections do, from the connection's own task
/// (or the mio loop), so every method must be quick and must not block:
/// add to counters.
///
/// Each accepted connection is told once [`accepted`](Self::accepted),
/// then either once one of [`proxy_failed`](Self::proxy_failed),
/// [`handshake_failed`](Self::handshake_failed) or
/// [`health_check`](Self::health_check), or
/// [`connected`](Self::connected), any number of
/// [`traffic`](Self::traffic) and once
/// [`disconnected`](Self::disconnected). A connection refused at the cap
/// is told only [`refused`](Self::refused). Every method does nothing by
/// default.
pub trait Observer: Send + Sync + 'static {
    /// A connection was accepted under the cap; its PROXY header and
    /// handshake come next.
    fn accepted(&self, peer: Option<SocketAddr>) {
        let _ = peer;
    }

    /// A connection was accepted over the connection cap and closed at once.
    fn refused(&self, peer: Option<SocketAddr>) {
        let _ = peer;
    }

    /// A connection's PROXY protocol header was missing, malformed or
    /// late; the connection was closed.
    fn proxy_failed(&self, peer: Option<SocketAddr>, error: &io::Error) {
        let _ = (peer, error);
    }

    /// A connection's handshake (TLS) failed or timed out; the connection
    /// was closed.
    fn handshake_failed(&self, peer: Option<SocketAddr>, error: &io::Error) {
        let _ = (peer, error);
    }

    /// A load balancer's health check (closed before its first byte, or a
    /// PROXY v2 `LOCAL` connection) was closed quietly.
    fn health_check(&self, peer: Option<SocketAddr>) {
        let _ = peer;
    }

    /// A connection's session started (its handler was made).
    fn connected(&self, info: &ConnectionInfo) {
        let _ = info;
    }

    /// Frames and bytes a session moved since it last reported, at most
    /// once per wake-up of its task, never per byte.
    fn traffic(&self, info: &ConnectionInfo, moved: Traffic) {
        let _ = (info, moved);
    }

    /// A session ended, for `reason`.
    fn disconnected(&self, info: &ConnectionInfo, reason: &DisconnectReason) {
        let _ = (info, reason);
    }
}

/// Reports a session's traffic to an observer as it grows: what an
/// adapter's loop keeps per connection.
#[derive(Debug, Default)]
pub struct TrafficReport {
    reported: Traffic,
}

impl TrafficReport {
    /// Tells `observer` what moved since the last call, if anything did.
    pub fn report(&mut self, now: Traffic, info: &ConnectionInfo, observer: &dyn Observer) {
        let moved = now.since(self.reported);
        if !moved.is_empty() {
            self.reported = now;
            observer.traffic(info, moved);
        }
    }
}
