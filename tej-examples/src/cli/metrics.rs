//! `tej serve --metrics ADDR`: the server's [`Observer`] as Prometheus
//! counters (`prometheus-client`), served as text on `GET /metrics` by a
//! small HTTP responder on a thread of its own.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tej_core::{ConnectionInfo, DisconnectReason, Traffic};
use tej_net::Observer;

use super::report::reason_kind;

/// The `kind` label of a disconnect: `peer_closed`, `protocol`, ...
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: String,
}

/// A server's counters, named `tej_*` (see [`Metrics::new`] for the list).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    accepted: Counter,
    open: Gauge,
    refused: Counter,
    handshake_failures: Counter,
    proxy_failures: Counter,
    health_checks: Counter,
    frames_in: Counter,
    frames_out: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
    disconnects: Family<Kind, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// The counters, registered: connections accepted, open, refused at
    /// the cap; handshake and PROXY header failures; health checks; frames
    /// and bytes received and sent; disconnects by kind.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tej");
        let metrics = Metrics {
            accepted: Counter::default(),
            open: Gauge::default(),
            refused: Counter::default(),
            handshake_failures: Counter::default(),
            proxy_failures: Counter::default(),
            health_checks: Counter::default(),
            frames_in: Counter::default(),
            frames_out: Counter::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            disconnects: Family::default(),
            registry: Registry::default(),
        };
        let counters: [(&str, &str, &Counter); 9] = [
            (
                "connections_accepted",
                "Connections accepted under the cap",
                &metrics.accepted,
            ),
            (
                "connections_refused",
                "Connections closed at once at the connection cap",
                &metrics.refused,
            ),
            (
                "handshake_failures",
                "TLS handshakes that failed or timed out",
                &metrics.handshake_failures,
            ),
            (
                "proxy_failures",
                "Connections without a valid PROXY protocol header in time",
                &metrics.proxy_failures,
            ),
            (
                "health_checks",
                "Load balancer health checks closed quietly",
                &metrics.health_checks,
            ),
            (
                "frames_received",
                "Whole frames received, pings included",
                &metrics.frames_in,
            ),
            (
                "frames_sent",
                "Frames queued to be sent, pings included",
                &metrics.frames_out,
            ),
            (
                "received_bytes",
                "Bytes received by sessions",
                &metrics.bytes_in,
            ),
            (
                "sent_bytes",
                "Bytes written by sessions",
                &metrics.bytes_out,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "connections_open",
            "Sessions running now (handshakes done)",
            metrics.open.clone(),
        );
        registry.register(
            "disconnects",
            "Sessions ended, by kind of reason",
            metrics.disconnects.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The counters in Prometheus's text format (OpenMetrics).
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

impl Observer for Metrics {
    fn accepted(&self, _peer: Option<SocketAddr>) {
        self.accepted.inc();
    }

    fn refused(&self, _peer: Option<SocketAddr>) {
        self.refused.inc();
    }

    fn proxy_failed(&self, _peer: Option<SocketAddr>, _error: &io::Error) {
        self.proxy_failures.inc();
    }

    fn handshake_failed(&self, _peer: Option<SocketAddr>, _error: &io::Error) {
        self.handshake_failures.inc();
    }

    fn health_check(&self, _peer: Option<SocketAddr>) {
        self.health_checks.inc();
    }

    fn connected(&self, _info: &ConnectionInfo) {
        self.open.inc();
    }

    fn traffic(&self, _info: &ConnectionInfo, moved: Traffic) {
        self.frames_in.inc_by(moved.frames_in);
        self.frames_out.inc_by(moved.frames_out);
        self.bytes_in.inc_by(moved.bytes_in);
        self.bytes_out.inc_by(moved.bytes_out);
    }

    fn disconnected(&self, _info: &ConnectionInfo, reason: &DisconnectReason) {
        self.open.dec();
        self.disconnects
            .get_or_create(&Kind {
                kind: reason_kind(reason).to_owned(),
            })
            .inc();
    }
}

/// The longest request read; `GET /metrics` needs far less.
const MAX_REQUEST: usize = 8 * 1024;

/// Serves `metrics` on `GET /metrics` at `listener`'s address, one request
/// per connection, on a thread of its own for the life of the process.
///
/// # Errors
///
/// The error of starting the thread.
pub fn serve(listener: TcpListener, metrics: Arc<Metrics>) -> io::Result<()> {
    // One scrape at a time is plenty; a slow scraper waits its turn.
    let lock = Mutex::new(());
    std::thread::Builder::new()
        .name("tej-metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let _one = lock.lock().unwrap_or_else(PoisonError::into_inner);
                if let Err(error) = respond(stream, &metrics) {
                    tracing::debug!(%error, "a metrics request failed");
                }
            }
        })?;
    Ok(())
}

/// Reads one request's head and answers it.
fn respond(mut stream: TcpStream, metrics: &Metrics) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let (method, path) = (words.next(), words.next());
    let (status, content_type, body) = match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render(),
        ),
        (Some(b"GET"), _) => ("404 Not Found", "text/plain", "GET /metrics\n".to_owned()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics\n".to_owned(),
        ),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_openmetrics_text() {
        let metrics = Metrics::new();
        metrics.accepted(None);
        metrics.connected(&ConnectionInfo::default());
        let mut moved = Traffic::default();
        moved.frames_in = 2;
        moved.bytes_in = 100;
        metrics.traffic(&ConnectionInfo::default(), moved);
        metrics.disconnected(&ConnectionInfo::default(), &DisconnectReason::PeerClosed);
        let text = metrics.render();
        for line in [
            "tej_connections_accepted_total 1",
            "tej_connections_open 0",
            "tej_frames_received_total 2",
            "tej_received_bytes_total 100",
            "tej_disconnects_total{kind=\"peer_closed\"} 1",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }
}
