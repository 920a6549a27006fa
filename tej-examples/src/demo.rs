//! `tej demo`: a server and a client on loopback exchange a message, a ping
//! and files (one large, streamed from disk and spooled to disk), and every
//! byte is checked by hash.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tej_core::{
    Connection, DisconnectReason, File, FileTarget, Frame, FrameBuilder, Handler, Limits,
    SessionConfig, Status,
};

use crate::runtime::{self, Runtime};

/// How long any one step may take before the demo fails.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The runtimes to run on, in turn.
    pub runtimes: Vec<Runtime>,
    /// Size of the large file, in MiB.
    pub large_file_mib: u64,
    /// Where to put the generated and received files (removed afterwards).
    pub work_dir: PathBuf,
}

/// Why the demo failed.
#[derive(Debug)]
pub struct DemoError(pub String);

impl std::fmt::Display for DemoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DemoError {}

impl From<io::Error> for DemoError {
    fn from(error: io::Error) -> Self {
        DemoError(format!("I/O error: {error}"))
    }
}

/// Runs the demo on every runtime in `options`, writing the report to `out`.
///
/// # Errors
///
/// The first thing that did not arrive intact, or an I/O failure.
pub fn run(options: &DemoOptions, out: &mut impl Write) -> Result<(), DemoError> {
    std::fs::create_dir_all(&options.work_dir)?;
    for &runtime in &options.runtimes {
        // A fresh directory, removed with its files when dropped (on an
        // error too).
        let dir = tempfile::Builder::new()
            .prefix(&format!("tej-demo-{runtime}-"))
            .tempdir_in(&options.work_dir)?;
        run_on(runtime, dir.path(), options.large_file_mib, out)?;
        dir.close()?;
    }
    writeln!(out, "\nall checks passed")?;
    Ok(())
}

enum ServerEvent {
    Received(Frame),
    Ping,
    Disconnected(DisconnectReason),
}

/// Spools files to disk, reports every callback, acknowledges every frame.
struct DemoServer {
    spool: PathBuf,
    events: SyncSender<ServerEvent>,
    acknowledged: u64,
}

impl Handler for DemoServer {
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        self.acknowledged += 1;
        let _ = conn.send(Frame::message(format!("ack {}", self.acknowledged)));
        let _ = self.events.send(ServerEvent::Received(frame));
    }

    fn ping_received(&mut self, _conn: &mut Connection<'_>, _frame: Frame) {
        let _ = self.events.send(ServerEvent::Ping);
    }

    fn disconnected(&mut self, reason: DisconnectReason) {
        let _ = self.events.send(ServerEvent::Disconnected(reason));
    }

    fn file_target(&mut self, _name: &str, _size: u64, _index: usize) -> FileTarget {
        tej_net::spool::to_dir(self.spool.clone())
    }
}

/// Passes the server's replies on.
struct DemoClient {
    replies: SyncSender<Frame>,
}

impl Handler for DemoClient {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        let _ = self.replies.send(frame);
    }
}

fn run_on(
    runtime: Runtime,
    dir: &Path,
    large_mib: u64,
    out: &mut impl Write,
) -> Result<(), DemoError> {
    writeln!(out, "tej demo on {runtime}")?;
    let sources = dir.join("sources");
    std::fs::create_dir_all(&sources)?;
    let small = [
        ("hello.txt", b"hello world\n".to_vec()),
        ("random.bin", pseudo_random(1 << 20, 7)),
        ("empty.txt", Vec::new()),
    ];
    let large_path = sources.join("large.bin");
    let large_len = large_mib << 20;
    write_generated(&large_path, large_len)?;
    let large_hash = hash_file(&large_path)?;

    let (server_events, server_seen) = mpsc::sync_channel(64);
    let config = SessionConfig::default().limits(
        Limits::DEFAULT
            .max_file_size(u64::MAX)
            .max_frame_size(u64::MAX),
    );
    let spool = dir.join("received");
    let server = runtime::start_server(
        runtime,
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        config.clone(),
        {
            let spool = spool.clone();
            move || DemoServer {
                spool: spool.clone(),
                events: server_events.clone(),
                acknowledged: 0,
            }
        },
    )?;
    let (replies_tx, replies) = mpsc::sync_channel(64);
    let client = runtime::connect(
        runtime,
        server.addr(),
        DemoClient {
            replies: replies_tx,
        },
        config,
    )?;
    let sender = client.sender();
    let send = |frame: Frame| {
        sender
            .send_blocking(frame)
            .map_err(|error| DemoError(format!("send failed: {error}")))
    };

    let greeting = "Hello from tej demo";
    let started = Instant::now();
    send(Frame::message(greeting))?;
    let frame = expect_frame(&server_seen, "the message")?;
    check(
        frame.message.as_deref() == Some(greeting.as_bytes()),
        "the message arrived changed",
    )?;
    report(
        out,
        "message",
        &format!("{} bytes", greeting.len()),
        started.elapsed(),
        None,
    )?;

    let started = Instant::now();
    send(Frame::ping())?;
    match recv(&server_seen, "the ping")? {
        ServerEvent::Ping => {}
        _ => return Err(DemoError("the ping did not reach ping_received".into())),
    }
    report(
        out,
        "ping",
        "status 2 to ping_received",
        started.elapsed(),
        None,
    )?;

    let started = Instant::now();
    let mut builder =
        FrameBuilder::new(Status::new(5).expect("in range")).message("three small files");
    for (name, data) in &small {
        builder = builder.file(*name, data.clone());
    }
    send(builder.build())?;
    let frame = expect_frame(&server_seen, "the small files")?;
    check(frame.files.len() == small.len(), "a small file is missing")?;
    for ((name, data), file) in small.iter().zip(&frame.files) {
        let path = file
            .path()
            .ok_or_else(|| DemoError(format!("{name} was not spooled")))?;
        check(file.name == *name, "a file name arrived changed")?;
        check(
            hash_file(path)? == hex_sha256(data),
            &format!("{name} arrived changed"),
        )?;
    }
    let small_total: usize = small.iter().map(|(_, data)| data.len()).sum();
    report(
        out,
        "3 files",
        &format!("{} bytes, sha256 verified", small_total),
        started.elapsed(),
        None,
    )?;

    let started = Instant::now();
    send(
        FrameBuilder::new(Status::DEFAULT)
            .add_file(tej_net::file::from_path("large.bin", &large_path)?)
            .message("one large file")
            .build(),
    )?;
    let frame = expect_frame(&server_seen, "the large file")?;
    let moved = started.elapsed();
    let spooled = frame
        .files
        .first()
        .and_then(File::path)
        .ok_or_else(|| DemoError("large.bin was not spooled".into()))?;
    check(
        frame.files[0].len() == large_len,
        "large.bin arrived with the wrong length",
    )?;
    check(
        hash_file(spooled)? == large_hash,
        "large.bin arrived changed",
    )?;
    report(
        out,
        "large file",
        &format!("{large_mib} MiB disk to disk, sha256 verified"),
        moved,
        Some(large_len),
    )?;

    for expected in 1..=3 {
        let reply = replies
            .recv_timeout(STEP_TIMEOUT)
            .map_err(|_| DemoError(format!("reply {expected} did not arrive")))?;
        check(
            reply.message.as_deref() == Some(format!("ack {expected}").as_bytes()),
            "a reply arrived changed or out of order",
        )?;
    }
    report(
        out,
        "replies",
        "3 acknowledgements, in order",
        Duration::ZERO,
        None,
    )?;

    client.close()?;
    match recv(&server_seen, "the disconnect")? {
        ServerEvent::Disconnected(DisconnectReason::PeerClosed) => {}
        ServerEvent::Disconnected(reason) => {
            return Err(DemoError(format!("disconnected unexpectedly: {reason}")))
        }
        _ => return Err(DemoError("an unexpected frame arrived".into())),
    }
    report(
        out,
        "disconnected",
        "peer closed the connection",
        Duration::ZERO,
        None,
    )?;
    server.stop();
    Ok(())
}

fn recv(events: &Receiver<ServerEvent>, what: &str) -> Result<ServerEvent, DemoError> {
    events
        .recv_timeout(STEP_TIMEOUT)
        .map_err(|error| match error {
            RecvTimeoutError::Timeout => DemoError(format!("timed out waiting for {what}")),
            RecvTimeoutError::Disconnected => {
                DemoError(format!("the server stopped before {what}"))
            }
        })
}

fn expect_frame(events: &Receiver<ServerEvent>, what: &str) -> Result<Frame, DemoError> {
    match recv(events, what)? {
        ServerEvent::Received(frame) => Ok(frame),
        ServerEvent::Ping => Err(DemoError(format!("a ping arrived instead of {what}"))),
        ServerEvent::Disconnected(reason) => {
            Err(DemoError(format!("disconnected before {what}: {reason}")))
        }
    }
}

fn check(ok: bool, failure: &str) -> Result<(), DemoError> {
    if ok {
        Ok(())
    } else {
        Err(DemoError(failure.to_string()))
    }
}

fn report(
    out: &mut impl Write,
    step: &str,
    detail: &str,
    took: Duration,
    bytes: Option<u64>,
) -> io::Result<()> {
    let mut line = format!("  ok  {step:<13} {detail}");
    if !took.is_zero() {
        let _ = write!(line, " in {took:.1?}");
    }
    if let Some(bytes) = bytes {
        let _ = write!(
            line,
            " ({:.2} GiB/s)",
            bytes as f64 / took.as_secs_f64() / f64::from(1u32 << 30)
        );
    }
    writeln!(out, "{line}")
}

/// Deterministic bytes that do not compress or repeat in short runs.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn write_generated(path: &Path, len: u64) -> io::Result<()> {
    let block = pseudo_random(1 << 20, 11);
    let mut file = io::BufWriter::new(std::fs::File::create(path)?);
    let mut left = len;
    let mut counter = 0u64;
    while left > 0 {
        // The counter makes every block distinct, so a misplaced block shows.
        file.write_all(&counter.to_be_bytes())?;
        let take = (left.saturating_sub(8)).min(block.len() as u64 - 8) as usize;
        file.write_all(&block[..take])?;
        left = left.saturating_sub(8 + take as u64);
        counter += 1;
    }
    file.flush()
}

/// Hex SHA-256 of `data`.
pub fn hex_sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Hex SHA-256 of a file's content, read in chunks.
///
/// # Errors
///
/// The error of reading the file.
pub fn hash_file(path: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..read]);
    }
}
