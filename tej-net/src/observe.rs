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

/// Logs why a connection ended before its session, in its PROXY header
/// (`in_header`) or in its handshake, and tells `observer`: a health check
/// (see [`crate::proxy::is_health_check`]) quietly, anything else as the
/// failure it is.
pub fn handshake_ended(
    observer: Option<&dyn Observer>,
    peer: Option<SocketAddr>,
    error: &io::Error,
    in_header: bool,
) {
    if crate::proxy::is_health_check(error) {
        tracing::debug!(%error, "health check; connection closed");
        if let Some(observer) = observer {
            observer.health_check(peer);
        }
    } else if in_header {
        tracing::info!(%error, "PROXY header refused; connection closed");
        if let Some(observer) = observer {
            observer.proxy_failed(peer, error);
        }
    } else {
        tracing::info!(%error, "handshake failed; connection closed");
        if let Some(observer) = observer {
            observer.handshake_failed(peer, error);
        }
    }
}

/// Logs that a connection's session started (its handler made) and tells
/// `observer`.
pub fn opened(observer: Option<&dyn Observer>, info: &ConnectionInfo) {
    if let Some(observer) = observer {
        observer.connected(info);
    }
    tracing::info!("connected");
}

/// Logs why a connection's session ended and tells `observer`.
pub fn closed(observer: Option<&dyn Observer>, info: &ConnectionInfo, reason: &DisconnectReason) {
    tracing::info!(%reason, "disconnected");
    if let Some(observer) = observer {
        observer.disconnected(info, reason);
    }
}

/// The span of one connection, `connection`: its peer, local address,
/// transport and `runtime` (the transport, and a peer a PROXY header names, are recorded
/// once the handshake is done).
pub fn connection_span(info: &ConnectionInfo, runtime: &'static str) -> tracing::Span {
    tracing::info_span!(
        "connection",
        peer = info.peer.map(tracing::field::display),
        local = info.local.map(tracing::field::display),
        proxy = tracing::field::Empty,
        transport = info.transport_name(),
        runtime,
    )
}

/// Records in `span` what the handshake told: the transport (TLS now
/// known) and a peer a PROXY header named, with its balancer.
pub fn record_handshake(span: &tracing::Span, info: &ConnectionInfo) {
    span.record("transport", info.transport_name());
    if let Some(proxy) = info.proxy {
        span.record("proxy", tracing::field::display(proxy));
        if let Some(peer) = info.peer {
            span.record("peer", tracing::field::display(peer));
        }
    }
    if let Some(tls) = &info.tls {
        tracing::debug!(version = %tls.version, cipher = %tls.cipher, sni = ?tls.sni, "TLS handshake done");
    }
}

/// Reports a session's traffic to an observer as it grows: what an
/// adapter's loop keeps per connection.
#[derive(Debug, Default)]
pub struct TrafficReport {
    /// What the observer has been told.
    reported: Traffic,
    /// What the debug lines have counted.
    logged: Traffic,
}

impl TrafficReport {
    /// Tells `observer` (if any) what moved since the last call, if
    /// anything did, and logs it at debug level: frames, never bytes one by
    /// one.
    pub fn report(&mut self, now: Traffic, info: &ConnectionInfo, observer: Option<&dyn Observer>) {
        if observer.is_none() && !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let moved = now.since(self.reported);
        if moved.is_empty() {
            return;
        }
        self.reported = now;
        if let Some(line) = self.line(now) {
            tracing::debug!(
                frames_in = line.frames_in,
                bytes_in = line.bytes_in,
                frames_out = line.frames_out,
                bytes_out = line.bytes_out,
                "frames"
            );
        }
        if let Some(observer) = observer {
            observer.traffic(info, moved);
        }
    }

    /// What a debug line says at `now`: nothing until a frame has moved,
    /// then everything since the last line, so the lines' bytes add up to
    /// the bytes moved however many wake-ups a frame took.
    fn line(&mut self, now: Traffic) -> Option<Traffic> {
        let since = now.since(self.logged);
        if since.frames_in == 0 && since.frames_out == 0 {
            return None;
        }
        self.logged = now;
        Some(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(frames_in: u64, bytes_in: u64) -> Traffic {
        let mut traffic = Traffic::default();
        traffic.frames_in = frames_in;
        traffic.bytes_in = bytes_in;
        traffic
    }

    #[test]
    fn a_line_counts_the_bytes_of_wake_ups_that_completed_no_frame() {
        let mut report = TrafficReport::default();
        assert_eq!(report.line(traffic(0, 1000)), None);
        assert_eq!(report.line(traffic(0, 5000)), None);
        assert_eq!(report.line(traffic(1, 9000)), Some(traffic(1, 9000)));
        assert_eq!(report.line(traffic(1, 9500)), None);
        assert_eq!(report.line(traffic(2, 9600)), Some(traffic(1, 600)));
    }
}
