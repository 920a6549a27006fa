//! What the adapters log, under a capturing `tracing` subscriber: a
//! `connection` span per connection (peer, local, transport, runtime) on
//! every runtime, events for connect, disconnect with its reason, handshake
//! failures and refusals at the cap, frames at debug level, and nothing per
//! byte.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tej_core::{Frame, SessionConfig};
use tej_examples::runtime::{self, Runtime, ServerOptions};
use tej_test_support::recorder::{Record, Recorder, Seen};
use tej_test_support::tls as certs;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as Values};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

const WAIT: Duration = Duration::from_secs(30);

/// Fields by name, values as `Display` or `Debug` wrote them.
type Fields = BTreeMap<String, String>;

/// One event as captured: its level, fields (`message` among them) and the
/// fields of the `connection` span it happened in, if any.
#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    fields: Fields,
    span: Option<Fields>,
}

impl Captured {
    fn message(&self) -> &str {
        self.fields.get("message").map_or("", String::as_str)
    }
}

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

/// Keeps every event, with the fields of its `connection` span.
struct Capture;

fn captured() -> &'static Mutex<Vec<Captured>> {
    static CAPTURED: OnceLock<Mutex<Vec<Captured>>> = OnceLock::new();
    CAPTURED.get_or_init(Mutex::default)
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut Visitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Values<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<Fields>() {
                values.record(&mut Visitor(fields));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut Visitor(&mut fields));
        let span = ctx.event_scope(event).and_then(|scope| {
            scope
                .filter(|span| span.name() == "connection")
                .find_map(|span| span.extensions().get::<Fields>().cloned())
        });
        captured().lock().unwrap().push(Captured {
            level: *event.metadata().level(),
            fields,
            span,
        });
    }
}

fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(Capture);
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    });
}

/// The events captured so far that `pick` keeps.
fn events(pick: impl Fn(&Captured) -> bool) -> Vec<Captured> {
    captured()
        .lock()
        .unwrap()
        .iter()
        .filter(|event| pick(event))
        .cloned()
        .collect()
}

/// Waits until an event `pick` keeps has been captured; returns it.
fn wait_for(what: &str, pick: impl Fn(&Captured) -> bool) -> Captured {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(event) = events(&pick).pop() {
            return event;
        }
        assert!(Instant::now() < deadline, "no {what} logged in time");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `event` happened in the span of the connection from `peer`.
fn of(event: &Captured, peer: SocketAddr) -> bool {
    event
        .span
        .as_ref()
        .is_some_and(|span| span.get("peer") == Some(&peer.to_string()))
}

fn runtime_name(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::Tokio => "tokio",
        Runtime::AsyncStd => "async-std",
        Runtime::Smol => "smol",
        Runtime::Mio => "mio",
    }
}

fn localhost() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// A session's life: the span names both addresses, the transport and the
/// runtime; `connected`, the frames at debug level (a 1 MiB frame among
/// them, in a handful of events, not one per read) and `disconnected` with
/// its reason are logged in it. Then a connection refused at the cap (one
/// place, held by a raw connection) is logged with its peer.
fn a_session_in_its_span(runtime: Runtime) {
    install();
    let record = Record::default();
    let mut echo = Recorder::new(&record);
    echo.echo = true;
    let options = ServerOptions {
        max_connections: 1,
        ..ServerOptions::default()
    };
    let server = runtime::start_server_with(
        runtime,
        localhost(),
        SessionConfig::default(),
        options,
        echo.factory(),
    )
    .unwrap();
    let server_addr = server.addr();
    let mut peer = TcpStream::connect(server_addr).unwrap();
    let client = peer.local_addr().unwrap();
    let mut wire = Vec::new();
    let frames = [Frame::message("hello"), Frame::message(vec![b'x'; 1 << 20])];
    for frame in &frames {
        wire.extend(frame.encode_to_vec().unwrap());
    }
    peer.write_all(&wire).unwrap();
    record.wait_until("two frames", WAIT, |seen| {
        seen.iter()
            .filter(|s| matches!(s, Seen::Received(_)))
            .count()
            == 2
    });

    // One more while the place is taken: refused, logged with its peer.
    let mut refused = TcpStream::connect(server_addr).unwrap();
    let refused_addr = refused.local_addr().unwrap();
    refused.set_read_timeout(Some(WAIT)).unwrap();
    let _ = refused.read(&mut [0; 8]);
    let refusal = wait_for("the refusal", |e| {
        e.fields.get("peer") == Some(&format!("Some({refused_addr})"))
    });
    // The first refusal of a streak is a warning (the next are at debug).
    assert_eq!(refusal.level, Level::WARN, "{refusal:?}");
    assert!(
        refusal.message().contains("the most allowed"),
        "{refusal:?}"
    );

    // Closed in order: the peer reads every reply, so nothing is reset.
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    let _ = peer.read_to_end(&mut Vec::new());
    let ended = wait_for("disconnected", |e| {
        of(e, client) && e.message() == "disconnected"
    });
    server.stop();
    assert_eq!(ended.level, Level::INFO);
    assert_eq!(ended.fields["reason"], "peer closed the connection");

    let span = ended.span.unwrap();
    assert_eq!(span["local"], server_addr.to_string());
    assert_eq!(span["transport"], "tcp");
    assert_eq!(span["runtime"], runtime_name(runtime));

    let mine = events(|e| of(e, client));
    let connected: Vec<_> = mine.iter().filter(|e| e.message() == "connected").collect();
    assert_eq!(connected.len(), 1, "{mine:#?}");
    assert_eq!(connected[0].level, Level::INFO);
    let frame_events: Vec<_> = mine.iter().filter(|e| e.message() == "frames").collect();
    assert!(frame_events.iter().all(|e| e.level == Level::DEBUG));
    let count = |name: &str| -> u64 {
        frame_events
            .iter()
            .map(|e| e.fields[name].parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(count("frames_in"), 2, "{frame_events:#?}");
    assert_eq!(count("frames_out"), 2, "{frame_events:#?}");
    assert_eq!(count("bytes_in"), wire.len() as u64);
    // 1 MiB arrives in hundreds of reads; the log has a few lines.
    assert!(mine.len() < 40, "{} events: {mine:#?}", mine.len());
}

/// A TLS handshake that fails is logged in its connection's span, with
/// the error; no `connected` follows.
fn a_failed_handshake_in_its_span(runtime: Runtime) {
    install();
    let options = ServerOptions {
        tls: Some(certs::server()),
        ..ServerOptions::default()
    };
    let record = Record::default();
    let server = runtime::start_server_with(
        runtime,
        localhost(),
        SessionConfig::default(),
        options,
        Recorder::new(&record).factory(),
    )
    .unwrap();
    let mut garbage = TcpStream::connect(server.addr()).unwrap();
    let peer = garbage.local_addr().unwrap();
    garbage.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    garbage.set_read_timeout(Some(WAIT)).unwrap();
    let _ = garbage.read_to_end(&mut Vec::new());
    let failed = wait_for("the handshake failure", |e| {
        of(e, peer) && e.message().starts_with("handshake failed")
    });
    server.stop();
    assert_eq!(failed.level, Level::INFO);
    assert!(!failed.fields["error"].is_empty(), "{failed:?}");
    assert_eq!(failed.span.unwrap()["runtime"], runtime_name(runtime));
    assert!(events(|e| of(e, peer) && e.message() == "connected").is_empty());
    assert_eq!(record.made(), 0);
}

macro_rules! on_every_runtime {
    ($($module:ident: $runtime:ident;)*) => {
        $(
            mod $module {
                #[test]
                fn a_session_in_its_span() {
                    super::a_session_in_its_span(super::Runtime::$runtime);
                }

                #[test]
                fn a_failed_handshake_in_its_span() {
                    super::a_failed_handshake_in_its_span(super::Runtime::$runtime);
                }
            }
        )*
    };
}

on_every_runtime! {
    tokio: Tokio;
    async_std: AsyncStd;
    smol: Smol;
    mio: Mio;
}
