//! `tej serve`: a server that prints every connection and frame it sees.
//!
//! Its arguments ([`ServeArgs`]), the server ([`run`]) and how the binary
//! runs it ([`exec`]), side by side as cargo keeps each command in a file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use tej_core::{
    Connection, ConnectionInfo, DisconnectReason, FileTarget, Frame, FrameTimeout, Handler,
    SessionConfig,
};
use tej_net::accept::DEFAULT_MAX_CONNECTIONS;

use super::metrics::Metrics;
use super::report::{Event, FileSink, Printer, TlsReport};
use super::{parse_count, parse_seconds, parse_size, LimitArgs};
use crate::runtime::{self, Endpoint, Runtime, ServerOptions};

/// `--min-rate` when `--frame-timeout` is given alone: 64 KiB/s.
pub const DEFAULT_MIN_RATE: u64 = 64 << 10;

/// `tej serve`: accept TEJ connections and print what arrives.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on, such as 0.0.0.0:4000 (port 0 picks a free
    /// port, printed first), or unix:PATH for a Unix domain socket (a
    /// stale socket file left there is replaced; removed on exit)
    #[arg(long, value_name = "ADDR")]
    pub bind: String,
    /// Runtime to serve on
    #[arg(long, value_enum, default_value_t = Runtime::Tokio)]
    pub runtime: Runtime,
    /// Serve TLS with this certificate chain (PEM, leaf first)
    #[arg(long, value_name = "PEM", requires = "tls_key", help_heading = "TLS")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert
    #[arg(long, value_name = "PEM", requires = "tls_cert", help_heading = "TLS")]
    pub tls_key: Option<PathBuf>,
    /// Require every client to present a certificate signed by a CA in
    /// this PEM file
    #[arg(long, value_name = "PEM", requires = "tls_cert", help_heading = "TLS")]
    pub tls_client_ca: Option<PathBuf>,
    /// Save received files here (created if missing), each under a
    /// sanitised name that cannot leave the directory and never replaces
    /// a file. A frame's files take their names only once the whole frame
    /// has arrived (until then: hidden .NAME.part files, removed if the
    /// frame is cut). Without it, files are hashed and discarded
    #[arg(long, value_name = "DIR")]
    pub save_dir: Option<PathBuf>,
    /// Answer each received frame (not pings) with this message
    #[arg(long, value_name = "TEXT")]
    pub reply: Option<String>,
    /// Close a connection that receives nothing for this many seconds
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub idle_timeout: Option<Duration>,
    /// Expect a PROXY protocol header (v1 or v2, as HAProxy's
    /// send-proxy/send-proxy-v2 write it) first on every connection, before
    /// TLS: the client it names is the peer reported; a connection without
    /// a valid one is closed unserved, and health checks are not reported.
    /// Only for a server reachable through the balancer alone
    #[arg(long)]
    pub proxy_protocol: bool,
    /// Print one JSON object per line on stdout and nothing else:
    /// listening, metrics, connected, received, ping, disconnected
    #[arg(long)]
    pub json: bool,
    /// Serve Prometheus metrics on GET /metrics at this address, such as
    /// 127.0.0.1:9100 (port 0 picks a free port, printed after listening):
    /// connections accepted, open and refused at the cap, handshake and
    /// PROXY failures, frames and bytes each way, disconnects by kind
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// What a peer may announce before it is disconnected
    #[command(flatten, next_help_heading = "Limits")]
    pub limits: LimitArgs,
    /// Serve at most N connections at once; one more is accepted and
    /// closed at once (nothing read), until a connection ends
    #[arg(
        long,
        value_name = "N",
        value_parser = parse_count,
        default_value_t = DEFAULT_MAX_CONNECTIONS,
        help_heading = "Limits"
    )]
    pub max_connections: usize,
    /// Close a connection whose frame is not whole SECS after its first
    /// byte, plus the time its bytes earn at --min-rate: a peer that
    /// trickles a frame is cut, a fast one is not [default: off]
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, help_heading = "Limits")]
    pub frame_timeout: Option<Duration>,
    /// With --frame-timeout: the average rate a frame must keep up, in
    /// bytes per second (K, M, G suffixes); each byte received earns the
    /// frame 1/BYTES_PER_S seconds more; 0 earns nothing (every frame must
    /// be whole within --frame-timeout) [default: 64K]
    #[arg(
        long,
        value_name = "BYTES_PER_S",
        value_parser = parse_size,
        requires = "frame_timeout",
        help_heading = "Limits"
    )]
    pub min_rate: Option<u64>,
    /// On Ctrl-C or SIGTERM: how long connections may take to finish the
    /// frame under way before what remains is cut (0 cuts at once; mio's
    /// loop drains without a deadline)
    #[arg(long, value_name = "SECS", value_parser = parse_drain_timeout, default_value = "30")]
    pub drain_timeout: Duration,
}

/// `--drain-timeout`: seconds, 0 included.
fn parse_drain_timeout(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    parse_seconds(text)
}

impl ServeArgs {
    /// The frame timeout: `--frame-timeout` with `--min-rate` (or
    /// [`DEFAULT_MIN_RATE`]), `None` without `--frame-timeout`.
    pub fn frame_timeout(&self) -> Option<FrameTimeout> {
        self.frame_timeout
            .map(|base| FrameTimeout::new(base, self.min_rate.unwrap_or(DEFAULT_MIN_RATE)))
    }

    /// Each connection's configuration: the limits and timeouts given.
    pub fn session_config(&self) -> SessionConfig {
        SessionConfig::default()
            .limits(self.limits.limits())
            .idle_timeout(self.idle_timeout)
            .frame_timeout(self.frame_timeout())
    }

    /// The server's own options: the connection cap, and TLS from the
    /// PEM files given.
    ///
    /// # Errors
    ///
    /// A one-line reason when a TLS file cannot be used.
    pub fn server_options(&self) -> anyhow::Result<ServerOptions> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::server_config(
                cert,
                key,
                self.tls_client_ca.as_deref(),
            )?),
            _ => None,
        };
        Ok(ServerOptions {
            max_connections: self.max_connections,
            tls,
            proxy_protocol: self.proxy_protocol,
            drain_timeout: Some(self.drain_timeout),
            observer: None,
        })
    }
}

/// One connection's handler: prints its callbacks, streams its files to
/// the save directory or a hasher, and answers with `--reply`.
struct ServeHandler {
    peer: Option<SocketAddr>,
    files: FileSink,
    reply: Option<String>,
    printer: Printer,
}

impl ServeHandler {
    fn frame(&mut self, conn: &mut Connection<'_>, frame: &Frame) {
        match self.files.report(self.peer, frame) {
            Ok(report) => self.printer.print(&Event::frame(report)),
            Err(error) => {
                tracing::error!(peer = ?self.peer, %error, "cannot read back a saved file; closing");
                conn.close();
            }
        }
    }
}

impl Handler for ServeHandler {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        self.peer = conn.peer_addr();
        self.printer.print(&Event::Connected {
            peer: self.peer.map(|peer| peer.to_string()),
            proxy: conn.proxy_addr().map(|proxy| proxy.to_string()),
            tls: conn.info().tls.as_deref().map(TlsReport::of),
        });
    }

    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        self.frame(conn, &frame);
        if let Some(reply) = &self.reply {
            if let Err(error) = conn.send(Frame::message(reply.clone())) {
                tracing::warn!(peer = ?self.peer, %error, "could not queue the reply");
            }
        }
    }

    fn ping_received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        self.frame(conn, &frame);
    }

    fn disconnected(&mut self, reason: DisconnectReason) {
        self.printer.print(&Event::disconnected(self.peer, &reason));
    }

    fn file_target(&mut self, _name: &str, _size: u64, index: usize) -> FileTarget {
        self.files.target(index)
    }
}

/// Runs the server until `stop` receives (or its sender is dropped), then
/// shuts down gracefully: each connection finishes the frame it is
/// receiving, flushes what it queued and closes.
///
/// # Errors
///
/// A one-line reason when the server cannot start.
pub fn run(args: &ServeArgs, stop: &Receiver<()>) -> anyhow::Result<()> {
    let bind: Endpoint = args.bind.parse().map_err(anyhow::Error::msg)?;
    let mut options = args.server_options()?;
    let metrics = match args.metrics {
        Some(addr) => {
            let listener = std::net::TcpListener::bind(addr)
                .map_err(|error| anyhow::anyhow!("cannot serve metrics on {addr}: {error}"))?;
            let at = listener.local_addr()?;
            let metrics = Arc::new(Metrics::new());
            options.observer = Some(Arc::clone(&metrics) as Arc<dyn tej_net::Observer>);
            Some((listener, at, metrics))
        }
        None => None,
    };
    if let Some(cert) = &args.tls_cert {
        if let Some(warning) = crate::tls::server_warning(cert)? {
            eprintln!("tej serve: warning: {warning}");
        }
    }
    // Absolute, so that every `saved_as` reported is.
    let save_dir = match &args.save_dir {
        Some(dir) => Some(
            std::fs::create_dir_all(dir)
                .and_then(|()| dir.canonicalize())
                .map_err(|error| anyhow::anyhow!("cannot create {}: {error}", dir.display()))?,
        ),
        None => None,
    };
    let printer = Printer { json: args.json };
    let reply = args.reply.clone();
    let spool = save_dir.clone();
    let tls = options.tls.is_some();
    let server = runtime::start_server_with(
        args.runtime,
        bind.clone(),
        args.session_config(),
        options,
        move |_: &ConnectionInfo| ServeHandler {
            peer: None,
            files: FileSink::new(spool.clone()),
            reply: reply.clone(),
            printer,
        },
    )
    .map_err(|error| anyhow::anyhow!("cannot listen on {bind}: {error}"))?;
    printer.print(&Event::Listening {
        addr: server.endpoint().to_string(),
    });
    if let Some((listener, at, metrics)) = metrics {
        super::metrics::serve(listener, metrics)?;
        printer.print(&Event::Metrics {
            addr: at.to_string(),
        });
    }
    tracing::info!(
        addr = %server.endpoint(),
        tls,
        proxy_protocol = args.proxy_protocol,
        runtime = %args.runtime,
        save_dir = ?save_dir,
        max_connections = args.max_connections,
        frame_timeout = ?args.frame_timeout(),
        "serving"
    );
    // A closed channel means whoever could stop us is gone: stop as well.
    let _ = stop.recv();
    tracing::info!("shutting down: finishing the frames in progress");
    server.stop();
    if let Endpoint::Unix(path) = &bind {
        // Ours: bound above, where a live server's socket fails.
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("stopped");
    Ok(())
}

/// `tej serve` as the binary runs it: logs at info level, stops gracefully
/// on the first Ctrl-C (at once on the second), prints why it failed.
pub fn exec(args: &ServeArgs) -> ExitCode {
    super::init_logging(tracing::Level::INFO);
    let (stop, stopped) = std::sync::mpsc::channel();
    let signals = std::sync::atomic::AtomicUsize::new(0);
    let installed = ctrlc::set_handler(move || {
        if signals.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            eprintln!("tej serve: stopping (Ctrl-C again to stop at once)");
            let _ = stop.send(());
        } else {
            std::process::exit(130);
        }
    });
    if let Err(error) = installed {
        eprintln!("tej serve: cannot handle Ctrl-C: {error}");
        return ExitCode::FAILURE;
    }
    match run(args, &stopped) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("tej serve: {reason:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, Command};

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let matches = ServeArgs::augment_args(Command::new("serve"))
            .try_get_matches_from(["serve", "--bind", "127.0.0.1:0"].iter().chain(args))?;
        <ServeArgs as clap::FromArgMatches>::from_arg_matches(&matches)
    }

    #[test]
    fn defaults_cap_connections_and_time_no_frame() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.max_connections, DEFAULT_MAX_CONNECTIONS);
        let options = args.server_options().unwrap();
        assert_eq!(options.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert!(options.tls.is_none());
        assert!(!options.proxy_protocol);
        assert!(
            parse(&["--proxy-protocol"])
                .unwrap()
                .server_options()
                .unwrap()
                .proxy_protocol
        );
        assert_eq!(args.frame_timeout(), None);
        assert_eq!(args.session_config().frame_timeout, None);
    }

    #[test]
    fn frame_timeout_and_cap_reach_the_server() {
        let args = parse(&[
            "--max-connections",
            "4",
            "--frame-timeout",
            "1.5",
            "--min-rate",
            "1M",
        ])
        .unwrap();
        assert_eq!(args.server_options().unwrap().max_connections, 4);
        let expected = FrameTimeout::new(Duration::from_millis(1500), 1 << 20);
        assert_eq!(args.session_config().frame_timeout, Some(expected));

        let alone = parse(&["--frame-timeout", "30"]).unwrap();
        assert_eq!(
            alone.frame_timeout(),
            Some(FrameTimeout::new(Duration::from_secs(30), DEFAULT_MIN_RATE))
        );
    }

    #[test]
    fn min_rate_needs_a_frame_timeout() {
        assert!(parse(&["--min-rate", "1M"]).is_err());
        assert!(parse(&["--max-connections", "0"]).is_err());
        assert!(parse(&["--frame-timeout", "0"]).is_err());
    }
}
