//! `tej send`: connect, send files and a message, print the replies.
//!
//! Its arguments ([`SendArgs`]), the client ([`run`]) and how the binary
//! runs it ([`exec`]), side by side as cargo keeps each command in a file.

use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tej_core::{
    Connection, DisconnectReason, File, FileTarget, Frame, FrameBuilder, Handler, SendProgress,
    SessionConfig, Status,
};

use super::parse_seconds;
use super::report::{Event, FileSink, Printer};
use crate::runtime::{self, Endpoint, Runtime};
use crate::tls::{self, ClientTls};

/// `tej send`: send one frame (or several) to a TEJ server.
#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    /// Server address: HOST:PORT, or unix:PATH for a Unix domain socket
    #[arg(value_name = "ADDR")]
    pub addr: String,
    /// Files to attach, streamed from disk, each under its file name
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Runtime to connect with
    #[arg(long, value_enum, default_value_t = Runtime::Tokio)]
    pub runtime: Runtime,
    /// Connect with TLS, verifying the server's certificate against the
    /// system's root certificates, or --ca
    #[arg(long, help_heading = "TLS")]
    pub tls: bool,
    /// With --tls: trust the CA certificates in this PEM file instead of
    /// the system's
    #[arg(long, value_name = "PEM", requires = "tls", help_heading = "TLS")]
    pub ca: Option<PathBuf>,
    /// With --tls: the name the server's certificate must carry [default:
    /// the host of ADDR; required with unix:PATH]
    #[arg(long, value_name = "NAME", requires = "tls", help_heading = "TLS")]
    pub server_name: Option<String>,
    /// With --tls: present this certificate chain (PEM) to a server that
    /// asks for one
    #[arg(long, value_name = "PEM", requires_all = ["tls", "key"], help_heading = "TLS")]
    pub cert: Option<PathBuf>,
    /// With --cert: its private key (PEM)
    #[arg(long, value_name = "PEM", requires = "cert", help_heading = "TLS")]
    pub key: Option<PathBuf>,
    /// Custom status of the frame, 0..=127 (2 is a ping) [default: 0]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=127))]
    pub status: Option<u8>,
    /// Message to send, as UTF-8 text
    #[arg(long, value_name = "TEXT", conflicts_with = "message_file")]
    pub message: Option<String>,
    /// Send this file's bytes as the message (messages are held in memory)
    #[arg(long, value_name = "PATH")]
    pub message_file: Option<PathBuf>,
    /// Send the frame this many times
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub repeat: u64,
    /// Also send a ping (an empty status-2 frame); alone, send only the ping
    #[arg(long)]
    pub ping: bool,
    /// After sending, wait for this many replies (frames that are not pings)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub wait_replies: u64,
    /// Print one JSON object per line on stdout and nothing else, and no
    /// progress bars
    #[arg(long)]
    pub json: bool,
    /// Give up, and fail, if everything is not done within this many seconds
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub timeout: Option<Duration>,
    /// Give up, and fail, once nothing has arrived and nothing could be
    /// sent for this many seconds: a dead server or a silent path. A server
    /// that works longer than this before it answers must send pings. 0
    /// waits for ever (the library's own default: `SessionConfig`'s
    /// `stall_timeout` is off, its idle timeout and pings too)
    #[arg(long, value_name = "SECS", default_value = "45", value_parser = seconds_or_zero)]
    pub stall_timeout: Duration,
}

/// A number of seconds, or 0 for none.
fn seconds_or_zero(text: &str) -> Result<Duration, String> {
    match text.trim() {
        "0" => Ok(Duration::ZERO),
        _ => parse_seconds(text),
    }
}

/// Sends what `args` asks for and prints the replies and a summary.
///
/// With `--timeout`, the work runs on a thread of its own and this returns
/// an error when time is up; that thread may still be blocked, so the
/// caller should exit.
///
/// # Errors
///
/// A one-line reason for any failure: nothing to send, a file that cannot
/// be read, a connection refused or ended early, replies missing, time up.
pub fn run(args: &SendArgs) -> anyhow::Result<()> {
    let Some(timeout) = args.timeout else {
        return send(args);
    };
    let (done, result) = mpsc::channel();
    let worker_args = args.clone();
    std::thread::Builder::new()
        .name("tej-send".into())
        .spawn(move || {
            let _ = done.send(send(&worker_args));
        })
        .map_err(|error| anyhow::anyhow!("cannot start a thread: {error}"))?;
    match result.recv_timeout(timeout) {
        Ok(outcome) => outcome,
        Err(RecvTimeoutError::Timeout) => Err(anyhow::anyhow!(
            "timed out after {:.1} s (--timeout)",
            timeout.as_secs_f64()
        )),
        Err(RecvTimeoutError::Disconnected) => Err(anyhow::anyhow!("the sending thread panicked")),
    }
}

/// `tej send` as the binary runs it: logs warnings only, prints why it
/// failed and exits 1 at once.
pub fn exec(args: &SendArgs) -> ExitCode {
    super::init_logging(tracing::Level::WARN);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("tej send: {reason:#}");
            // `--timeout` may leave the sending thread blocked: do not wait for it.
            std::process::exit(1);
        }
    }
}

/// What the connection's handler reports to the sending thread.
enum Seen {
    Connected(Option<SocketAddr>),
    Frame { event: Event, ping: bool },
    Disconnected(Option<SocketAddr>, DisconnectReason),
}

/// Reports every callback to the sending thread; files in replies are
/// hashed and discarded.
struct SendHandler {
    peer: Option<SocketAddr>,
    files: FileSink,
    seen: Sender<Seen>,
}

impl SendHandler {
    fn frame(&mut self, conn: &mut Connection<'_>, frame: &Frame) {
        match self.files.report(self.peer, frame) {
            Ok(report) => {
                let ping = frame.is_ping();
                let _ = self.seen.send(Seen::Frame {
                    event: Event::frame(report),
                    ping,
                });
            }
            Err(error) => {
                tracing::error!(%error, "cannot report a reply");
                conn.close();
            }
        }
    }
}

impl Handler for SendHandler {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        self.peer = conn.peer_addr();
        let _ = self.seen.send(Seen::Connected(self.peer));
    }

    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        self.frame(conn, &frame);
    }

    fn ping_received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        self.frame(conn, &frame);
    }

    fn disconnected(&mut self, reason: DisconnectReason) {
        let _ = self.seen.send(Seen::Disconnected(self.peer, reason));
    }

    fn file_target(&mut self, _name: &str, _size: u64, index: usize) -> FileTarget {
        self.files.target(index)
    }
}

/// What to send.
struct Plan {
    /// The data frame `--repeat` times, then the ping.
    frames: Vec<Frame>,
    /// The data frame's files: name and size.
    files: Vec<(String, u64)>,
}

fn plan(args: &SendArgs) -> anyhow::Result<Plan> {
    let message = match (&args.message, &args.message_file) {
        (Some(text), _) => Some(text.clone().into_bytes()),
        (None, Some(path)) => Some(
            std::fs::read(path)
                .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?,
        ),
        (None, None) => None,
    };
    let mut files = Vec::with_capacity(args.files.len());
    for path in &args.files {
        files.push(attach(path)?);
    }
    let only_ping = args.ping && args.status.is_none() && message.is_none() && files.is_empty();
    let mut frames = Vec::new();
    let mut sizes = Vec::new();
    if !only_ping {
        let status = Status::new(args.status.unwrap_or(0))?;
        sizes = files
            .iter()
            .map(|file: &File| (file.name.clone(), file.len()))
            .collect();
        let mut builder = FrameBuilder::new(status);
        for file in files {
            builder = builder.add_file(file);
        }
        if let Some(message) = message {
            builder = builder.message(message);
        }
        let frame = builder.build();
        frames.extend((0..args.repeat).map(|_| frame.clone()));
    }
    if args.ping {
        frames.push(Frame::ping());
    }
    Ok(Plan {
        frames,
        files: sizes,
    })
}

/// A file to send, streamed from `path` under its file name.
fn attach(path: &Path) -> anyhow::Result<File> {
    let metadata = std::fs::metadata(path)
        .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
    if !metadata.is_file() {
        return Err(anyhow::anyhow!("{} is not a regular file", path.display()));
    }
    tej_net::file::open(path)
        .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))
}

/// Progress bars, one per file, on a terminal only, moved per byte as the
/// connection writes the file (over every `--repeat` of the frame).
struct Bars {
    multi: MultiProgress,
    bars: Vec<ProgressBar>,
}

impl Bars {
    fn new(files: &[(String, u64)], repeat: u64) -> Bars {
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template(
            "{spinner} {prefix:24!} [{bar:30}] {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bars = files
            .iter()
            .map(|(name, size)| {
                let bar = multi.add(
                    ProgressBar::new(size.saturating_mul(repeat))
                        .with_style(style.clone())
                        .with_prefix(name.clone())
                        .with_message("sending"),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            })
            .collect();
        Bars { multi, bars }
    }

    fn flushing(&self) {
        for bar in &self.bars {
            bar.set_message("closing");
        }
    }

    fn done(&self) {
        for bar in &self.bars {
            bar.finish_with_message("sent");
        }
    }

    fn failed(&self) {
        for bar in &self.bars {
            bar.abandon_with_message("failed");
        }
    }
}

/// How often the progress of the files being sent is looked at.
const PROGRESS_TICK: Duration = Duration::from_millis(20);
/// A file's `--json` progress line comes at least this often while it moves.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Watches the frames' [`SendProgress`] on a thread of its own and moves
/// the bars, or prints `progress` events with `--json`.
struct ProgressReporter {
    tracked: Arc<Mutex<Vec<SendProgress>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One file's progress as last reported.
struct FileProgress {
    name: String,
    total: u64,
    reported: Option<(u64, Instant)>,
}

impl ProgressReporter {
    fn start(
        files: &[(String, u64)],
        repeat: u64,
        bars: Option<Vec<ProgressBar>>,
        json: Option<Printer>,
    ) -> io::Result<ProgressReporter> {
        let tracked = Arc::new(Mutex::new(Vec::<SendProgress>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut state: Vec<FileProgress> = files
            .iter()
            .map(|(name, size)| FileProgress {
                name: name.clone(),
                total: size.saturating_mul(repeat),
                reported: None,
            })
            .collect();
        let thread = std::thread::Builder::new()
            .name("tej-progress".into())
            .spawn({
                let (tracked, stop) = (tracked.clone(), stop.clone());
                move || loop {
                    // Read before the last pass, so that pass sees the final bytes.
                    let last = stop.load(Ordering::Acquire);
                    let sent: Vec<u64> = {
                        let tracked = tracked.lock().unwrap_or_else(PoisonError::into_inner);
                        (0..state.len())
                            .map(|index| {
                                tracked
                                    .iter()
                                    .filter_map(|progress| progress.file_written(index))
                                    .map(|(written, _)| written)
                                    .sum()
                            })
                            .collect()
                    };
                    for (index, (file, bytes)) in state.iter_mut().zip(sent).enumerate() {
                        if let Some(bars) = &bars {
                            bars[index].set_position(bytes);
                        }
                        if let Some(printer) = &json {
                            if file.due(bytes) {
                                file.reported = Some((bytes, Instant::now()));
                                printer.print(&Event::Progress {
                                    file: file.name.clone(),
                                    bytes,
                                    total: file.total,
                                });
                            }
                        }
                    }
                    if last {
                        return;
                    }
                    std::thread::sleep(PROGRESS_TICK);
                }
            })?;
        Ok(ProgressReporter {
            tracked,
            stop,
            thread: Some(thread),
        })
    }

    fn track(&self, progress: SendProgress) {
        self.tracked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(progress);
    }

    /// Reports once more, with what is written by now, and stops.
    fn finish(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ProgressReporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl FileProgress {
    /// Whether a line is due at `bytes`: the first, another sixteenth since
    /// the last, 100 ms since the last while it moved, and the end, once.
    fn due(&self, bytes: u64) -> bool {
        let Some((last, at)) = self.reported else {
            return true;
        };
        if bytes == last {
            return false;
        }
        bytes == self.total
            || bytes - last >= (self.total / 16).max(1)
            || at.elapsed() >= PROGRESS_EVERY
    }
}

/// The sending side's view of its connection, fed by the handler.
struct Watch {
    printer: Printer,
    bars: Option<Bars>,
    replies: u64,
    ended: Option<DisconnectReason>,
}

impl Watch {
    fn print(&self, event: &Event) {
        match &self.bars {
            Some(bars) => bars.multi.suspend(|| self.printer.print(event)),
            None => self.printer.print(event),
        }
    }

    fn take(&mut self, seen: Seen) {
        match seen {
            Seen::Connected(peer) => self.print(&Event::Connected {
                peer: peer.map(|peer| peer.to_string()),
                proxy: None,
                tls: None,
            }),
            Seen::Frame { event, ping } => {
                self.print(&event);
                if !ping {
                    self.replies += 1;
                }
            }
            Seen::Disconnected(peer, reason) => {
                self.print(&Event::disconnected(peer, &reason));
                self.ended = Some(reason);
            }
        }
    }

    /// Takes whatever the handler has reported so far, without waiting.
    fn drain(&mut self, seen: &Receiver<Seen>) {
        while let Ok(event) = seen.try_recv() {
            self.take(event);
        }
    }

    fn ended_reason(&self) -> String {
        self.ended
            .as_ref()
            .map_or_else(|| "the connection ended".to_string(), said)
    }
}

/// Why the connection ended, in words: a TLS alert or certificate error
/// said as such (a server refusing our certificate), others as they are.
fn said(reason: &DisconnectReason) -> String {
    match reason {
        DisconnectReason::Io(error) => {
            tej_net::tls::io_error_reason(error).unwrap_or_else(|| reason.to_string())
        }
        other => other.to_string(),
    }
}

fn send(args: &SendArgs) -> anyhow::Result<()> {
    let Plan {
        frames,
        files: sizes,
    } = plan(args)?;
    let endpoint: Endpoint = args.addr.parse().map_err(anyhow::Error::msg)?;
    let tls = client_tls(args, &endpoint)?;
    let printer = Printer { json: args.json };
    let (seen_tx, seen) = mpsc::channel();
    let handler = SendHandler {
        peer: None,
        files: FileSink::new(None),
        seen: seen_tx,
    };
    let client = runtime::connect_with(
        args.runtime,
        &endpoint,
        tls.as_ref(),
        handler,
        SessionConfig::default()
            .stall_timeout((!args.stall_timeout.is_zero()).then_some(args.stall_timeout)),
    )
    .map_err(|error| anyhow::anyhow!("cannot connect to {endpoint}: {error}"))?;
    let show_bars = !args.json && std::io::stdout().is_terminal() && !sizes.is_empty();
    let mut watch = Watch {
        printer,
        bars: show_bars.then(|| Bars::new(&sizes, args.repeat)),
        replies: 0,
        ended: None,
    };
    let outcome = transfer(args, client, frames, &sizes, &seen, &mut watch);
    if outcome.is_err() {
        if let Some(bars) = &watch.bars {
            bars.failed();
        }
    }
    outcome
}

/// The TLS settings of `--tls`, `--ca`, `--server-name`, `--cert`/`--key`.
fn client_tls(args: &SendArgs, endpoint: &Endpoint) -> anyhow::Result<Option<ClientTls>> {
    if !args.tls {
        return Ok(None);
    }
    let identity = args.cert.as_deref().zip(args.key.as_deref());
    let config = tls::client_config(args.ca.as_deref(), identity)?;
    let name = match (&args.server_name, endpoint) {
        (Some(name), _) => name.clone(),
        (None, Endpoint::Unix(_)) => {
            return Err(anyhow::anyhow!(
            "--tls over a Unix socket needs --server-name (a name the server's certificate is for)"
        ))
        }
        (None, Endpoint::Tcp(_)) => host_of(&args.addr).to_string(),
    };
    Ok(Some(ClientTls {
        config,
        server_name: tls::server_name(&name)?,
    }))
}

/// `example.com` of `example.com:4000`, `::1` of `[::1]:4000`.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _port)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

fn transfer(
    args: &SendArgs,
    client: runtime::RunningClient,
    frames: Vec<Frame>,
    sizes: &[(String, u64)],
    seen: &Receiver<Seen>,
    watch: &mut Watch,
) -> anyhow::Result<()> {
    let sender = client.sender();
    let count = frames.len() as u64;
    let total_bytes: u64 = frames.iter().map(Frame::encoded_len).sum();
    // `connected` runs first on the connection's own thread: report it
    // before anything else.
    if let Ok(first) = seen.recv() {
        watch.take(first);
    }
    let progress = ProgressReporter::start(
        sizes,
        args.repeat,
        watch.bars.as_ref().map(|bars| bars.bars.clone()),
        args.json.then_some(watch.printer),
    )
    .map_err(|error| anyhow::anyhow!("cannot start a thread: {error}"))?;
    let started = Instant::now();
    // The frames with files, to wait for before closing.
    let mut writing = Vec::new();
    for (index, frame) in (1..).zip(frames) {
        let (status, files, bytes) = (frame.status.get(), frame.files.len(), frame.encoded_len());
        let tracked = if files > 0 {
            sender.send_tracked_blocking(frame).map(|tracked| {
                writing.push(tracked.clone());
                progress.track(tracked);
            })
        } else {
            sender.send_blocking(frame)
        };
        if let Err(error) = tracked {
            watch.drain(seen);
            let why = match &watch.ended {
                Some(reason) => said(reason),
                None => error.to_string(),
            };
            return Err(anyhow::anyhow!(
                "frame {index} of {count} was not sent: {why}"
            ));
        }
        if args.json {
            watch.print(&Event::Sent {
                frame: index,
                status,
                files,
                bytes,
            });
        }
        watch.drain(seen);
    }
    while watch.replies < args.wait_replies {
        // `disconnected` is the handler's last report: nothing follows it.
        if watch.ended.is_none() {
            if let Ok(event) = seen.recv() {
                watch.take(event);
                continue;
            }
        }
        return Err(anyhow::anyhow!(
            "got {} of {} replies: {}",
            watch.replies,
            args.wait_replies,
            watch.ended_reason()
        ));
    }
    // A closing connection flushes what it queued for at most its
    // `close_linger` (5 s): large files must be written (or the connection
    // have ended) before it is asked to close.
    for tracked in &writing {
        let _ = tracked.wait_blocking();
    }
    if let Some(bars) = &watch.bars {
        bars.flushing();
    }
    // Closes once everything queued is written, and waits for the end:
    // `disconnected` has run, so its report is in the channel.
    let joined = client.close();
    let elapsed = started.elapsed();
    // The last progress lines, with every byte written by now.
    progress.finish();
    watch.drain(seen);
    joined.map_err(|error| anyhow::anyhow!("the connection failed: {error}"))?;
    let unsent = sender.take_unsent().len();
    match &watch.ended {
        Some(DisconnectReason::LocalClose) if unsent == 0 => {}
        Some(DisconnectReason::LocalClose) => {
            return Err(anyhow::anyhow!(
                "{unsent} frame(s) of {count} were not sent"
            ));
        }
        _ => {
            return Err(anyhow::anyhow!(
                "the connection ended before everything was sent: {}",
                watch.ended_reason()
            ))
        }
    }
    // Finished bars stay on screen; the summary goes below them.
    if let Some(bars) = watch.bars.take() {
        bars.done();
    }
    let seconds = elapsed.as_secs_f64().max(1e-9);
    watch.print(&Event::Summary {
        frames: count,
        bytes: total_bytes,
        seconds,
        bytes_per_second: total_bytes as f64 / seconds,
        replies: watch.replies,
    });
    Ok(())
}
