//! `tej serve`: a server that prints every connection and frame it sees.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use tej_core::{Connection, DisconnectReason, FileTarget, Frame, Handler, SessionConfig};

use super::report::{Event, FileSink, Printer};
use super::{parse_seconds, resolve, runtime_parser, LimitArgs};
use crate::runtime::{self, Runtime};

/// `tej serve`: accept TEJ connections and print what arrives.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on, such as 0.0.0.0:4000; port 0 picks a free port
    /// (printed first)
    #[arg(long, value_name = "ADDR")]
    pub bind: String,
    /// Runtime to serve on
    #[arg(long, value_parser = runtime_parser(), default_value_t = Runtime::Tokio)]
    pub runtime: Runtime,
    /// Save received files here (created if missing), each under a
    /// sanitised name that cannot leave the directory and never replaces
    /// a file; without it, files are hashed and discarded
    #[arg(long, value_name = "DIR")]
    pub save_dir: Option<PathBuf>,
    /// Answer each received frame (not pings) with this message
    #[arg(long, value_name = "TEXT")]
    pub reply: Option<String>,
    /// Close a connection that receives nothing for this many seconds
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub idle_timeout: Option<Duration>,
    /// Print one JSON object per line on stdout and nothing else:
    /// listening, connected, received, ping, disconnected
    #[arg(long)]
    pub json: bool,
    /// What a peer may announce before it is disconnected
    #[command(flatten, next_help_heading = "Limits")]
    pub limits: LimitArgs,
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
pub fn run(args: &ServeArgs, stop: &Receiver<()>) -> Result<(), String> {
    let bind = resolve(&args.bind)?;
    // Absolute, so that every `saved_as` reported is.
    let save_dir = match &args.save_dir {
        Some(dir) => Some(
            std::fs::create_dir_all(dir)
                .and_then(|()| dir.canonicalize())
                .map_err(|error| format!("cannot create {}: {error}", dir.display()))?,
        ),
        None => None,
    };
    let printer = Printer { json: args.json };
    let config = SessionConfig::default()
        .limits(args.limits.limits())
        .idle_timeout(args.idle_timeout);
    let reply = args.reply.clone();
    let spool = save_dir.clone();
    let server = runtime::start_server(args.runtime, bind, config, move || ServeHandler {
        peer: None,
        files: FileSink::new(spool.clone()),
        reply: reply.clone(),
        printer,
    })
    .map_err(|error| format!("cannot listen on {bind}: {error}"))?;
    printer.print(&Event::Listening {
        addr: server.addr().to_string(),
    });
    tracing::info!(
        addr = %server.addr(),
        runtime = %args.runtime,
        save_dir = ?save_dir,
        "serving"
    );
    // A closed channel means whoever could stop us is gone: stop as well.
    let _ = stop.recv();
    tracing::info!("shutting down: finishing the frames in progress");
    server.stop();
    tracing::info!("stopped");
    Ok(())
}
