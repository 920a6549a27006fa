//! Shared pieces of the hostile-peer suites (`hostile*.rs`): which runtimes
//! to attack, memory and panic watching, raw loopback peers, and a
//! well-behaved client that proves the server still serves.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::recorder::{content_digest, Record, Recorder, Seen};
use tej_core::{Assembler, Frame, FrameBuilder, Limits, SessionConfig, Status};
use tej_examples::runtime::{self, RunningServer, Runtime};

/// The longest any single wait in these suites may take before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A well-behaved client's whole round trip (connect, send, answer) must
/// take less than this while the server is under attack.
pub const PROMPT: Duration = Duration::from_secs(2);

pub fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// The runtime called `name`, if the facade has it yet.
///
/// Every suite is instantiated per runtime name by a macro; a name the
/// facade does not (yet) offer runs nothing and says so, and
/// [`assert_every_runtime_instantiated`] fails when `Runtime::ALL` has a
/// runtime that no instantiation names.
pub fn runtime_named(name: &str) -> Option<Runtime> {
    let found = Runtime::ALL
        .iter()
        .copied()
        .find(|runtime| runtime.name() == name);
    if found.is_none() {
        eprintln!("runtime {name:?} is not in Runtime::ALL yet: nothing to attack");
    }
    found
}

/// Fails if `Runtime::ALL` holds a runtime none of `instantiated` names.
pub fn assert_every_runtime_instantiated(instantiated: &[&str]) {
    for runtime in Runtime::ALL {
        assert!(
            instantiated.contains(&runtime.name()),
            "runtime {runtime} has no instantiation in this suite; add it to the macro call"
        );
    }
}

/// Starts a server on `runtime` at 127.0.0.1, one clone of `handler` per connection.
pub fn serve(runtime: Runtime, config: SessionConfig, handler: Recorder) -> RunningServer {
    watch_panics();
    runtime::start_server(runtime, loopback(), config, move || handler.clone())
        .expect("server starts")
}

/// A recorder that answers every frame with its content digest.
pub fn digest_echo(record: &Record) -> Recorder {
    let mut handler = Recorder::new(record);
    handler.echo_digest = true;
    handler
}

/// A fresh, empty directory under the system's temp dir, removed with
/// what it holds when dropped.
pub fn scratch_dir(what: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("tej-hostile-{what}-"))
        .tempdir()
        .unwrap()
}

/// Files in `dir` (none if it does not exist).
pub fn dir_entries(dir: &std::path::Path) -> Vec<(String, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|entry| {
            let entry = entry.unwrap();
            let len = entry.metadata().map(|meta| meta.len()).unwrap_or(0);
            (entry.file_name().to_string_lossy().into_owned(), len)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Memory.

/// The process's resident set now and at its peak, in KiB, from
/// `/proc/self/status`.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

pub fn memory() -> Memory {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
    };
    Memory {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    }
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Samples VmRSS every 10 ms on a thread of its own, keeping the highest.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    pub fn start() -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(memory().rss_kib));
        let thread = std::thread::Builder::new()
            .name("hostile-rss-sampler".into())
            .spawn({
                let stop = stop.clone();
                let peak = peak.clone();
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        // Under a lowered descriptor limit /proc may not open: skip.
                        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
                            if let Some(rss) = status.lines().find_map(|line| {
                                line.strip_prefix("VmRSS:").and_then(|rest| {
                                    rest.trim().trim_end_matches("kB").trim().parse().ok()
                                })
                            }) {
                                peak.fetch_max(rss, Ordering::Relaxed);
                            }
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            })
            .unwrap();
        RssSampler {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    /// The highest VmRSS seen so far, in KiB.
    pub fn peak_kib(&self) -> u64 {
        self.peak.load(Ordering::Relaxed).max(memory().rss_kib)
    }

    /// Stops sampling; returns the highest VmRSS seen, in KiB.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.peak_kib()
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Asserts the process's resident set, now and at its peak, is under `ceiling_mib`.
pub fn assert_rss_under(ceiling_mib: u64, what: &str) -> Memory {
    let now = memory();
    assert!(
        now.rss_kib < ceiling_mib * 1024 && now.hwm_kib < ceiling_mib * 1024,
        "{what}: RSS {:.1} MiB, peak {:.1} MiB; the ceiling is {ceiling_mib} MiB",
        mib(now.rss_kib),
        mib(now.hwm_kib)
    );
    now
}

/// The kernel's count of connections dropped because a listener's accept
/// queue was full (`TcpExt: ListenOverflows` in `/proc/net/netstat`; for
/// the whole network namespace). `None` if it cannot be read.
pub fn listen_overflows() -> Option<u64> {
    let netstat = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = netstat.lines().filter(|line| line.starts_with("TcpExt:"));
    let names = lines.next()?;
    let values = lines.next()?;
    let index = names
        .split_whitespace()
        .position(|name| name == "ListenOverflows")?;
    values.split_whitespace().nth(index)?.parse().ok()
}

// ---------------------------------------------------------------------------
// Panics.

static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Installs (once) a panic hook that records every panic on a thread that
/// is not a test's own: runtime workers, connection tasks, helper threads
/// of handlers. Test threads are named after their test (`module::test`);
/// this suite's own helpers are named `hostile-*`.
pub fn watch_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("<unnamed>");
            let ours = name.contains("::") || name == "main" || name.starts_with("hostile-");
            if !ours {
                PANICS
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner())
                    .push(format!("thread {name}: {info}"));
            }
            previous(info);
        }));
    });
}

/// Fails if any panic reached a runtime's (or handler's) thread so far.
pub fn assert_no_runtime_panic() {
    let panics = PANICS
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .clone();
    assert!(panics.is_empty(), "panics reached the runtime: {panics:#?}");
}

// ---------------------------------------------------------------------------
// File descriptors.

/// Raises the soft RLIMIT_NOFILE as far as the hard limit allows (at most
/// 65536), and fails unless that gives at least `needed` descriptors.
pub fn ensure_fd_limit(needed: u64) -> u64 {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    let target = hard.min(65536).max(soft);
    if target > soft {
        rlimit::setrlimit(rlimit::Resource::NOFILE, target, hard).unwrap();
    }
    assert!(
        target >= needed,
        "this test needs {needed} file descriptors; the hard limit is {hard}"
    );
    target
}

// ---------------------------------------------------------------------------
// Raw peers.

/// A raw loopback connection to `addr`, with read and write timeouts.
pub fn raw_connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

/// Reads until the peer closes; returns what came and how it ended. A
/// reset after the server closed counts as closed.
pub fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return received,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if error.kind() == io::ErrorKind::ConnectionReset => return received,
            Err(error) => panic!(
                "the server did not close the connection: {error} after {} bytes",
                received.len()
            ),
        }
    }
}

/// Whether the server has closed `stream` (EOF or reset), without waiting.
pub fn closed_by_server(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let closed = match stream.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

/// Every whole frame in `bytes`, in order; panics on anything else.
pub fn frames_in(bytes: &[u8]) -> Vec<Frame> {
    let mut assembler = Assembler::new(Limits::default());
    let mut rest = bytes;
    let mut frames = Vec::new();
    loop {
        let assembled = assembler.decode(rest).expect("the server sends valid TEJ");
        rest = &rest[assembled.consumed..];
        match assembled.frame {
            Some(frame) => frames.push(frame),
            None => break,
        }
    }
    assert!(
        assembler.decoder().is_between_frames(),
        "the server's output ends mid-frame"
    );
    frames
}

/// Reads exactly one frame from `stream` with `assembler` (keeping any
/// bytes that follow it in `pending`).
pub fn read_frame(
    stream: &mut (impl Read + ?Sized),
    assembler: &mut Assembler,
    pending: &mut Vec<u8>,
) -> io::Result<Frame> {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        if !pending.is_empty() {
            let assembled = assembler
                .decode(pending)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
            pending.drain(..assembled.consumed);
            if let Some(frame) = assembled.frame {
                return Ok(frame);
            }
        }
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        pending.extend_from_slice(&buffer[..read]);
    }
}

/// Writes `bytes`, then shuts the write side: the server sees end of stream.
pub fn send_and_finish(stream: &mut TcpStream, bytes: &[u8]) {
    // The server may close first (a protocol error early in `bytes`).
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
}

/// What a server's session says about `bytes` followed (when `then_eof`)
/// by the end of the stream: how many frames it delivers, and the
/// `disconnected` reason, if the bytes end the connection. Computed with
/// tej-core's own assembler, as an oracle for random input.
pub fn oracle(bytes: &[u8], limits: Limits, then_eof: bool) -> (usize, Option<String>) {
    let mut assembler = Assembler::new(limits);
    let mut rest = bytes;
    let mut frames = 0;
    loop {
        match assembler.decode(rest) {
            Err(error) => return (frames, Some(format!("protocol error: {error}"))),
            Ok(assembled) => {
                rest = &rest[assembled.consumed..];
                match assembled.frame {
                    Some(_) => frames += 1,
                    None => break,
                }
            }
        }
    }
    if !then_eof {
        return (frames, None);
    }
    let reason = match assembler.finish() {
        Ok(()) => "peer closed the connection".to_string(),
        Err(error) => format!("protocol error: {error}"),
    };
    (frames, Some(reason))
}

// ---------------------------------------------------------------------------
// The well-behaved client.

/// A frame with two files and a message, distinct per `tag`.
pub fn probe_frame(tag: &str) -> Frame {
    FrameBuilder::new(Status::new(7).unwrap())
        .file(format!("{tag}.txt"), format!("probe {tag}\n").repeat(100))
        .file("empty", Vec::new())
        .message(format!("probe {tag}"))
        .build()
}

/// Connects a well-behaved client on `runtime`, sends a probe frame and
/// checks the server's answer (the probe's content digest); returns how
/// long the round trip took, connect to answer. The server must run a
/// `Recorder` with `echo_digest`.
pub fn round_trip(runtime: Runtime, addr: SocketAddr, tag: &str) -> Duration {
    let started = Instant::now();
    let record = Record::default();
    let client = runtime::connect(
        runtime,
        addr,
        Recorder::new(&record),
        SessionConfig::default(),
    )
    .expect("a well-behaved client connects");
    let probe = probe_frame(tag);
    let expected = content_digest(&probe);
    client.sender().send_blocking(probe).expect("probe queued");
    let seen = record.wait_until("the probe's answer", WAIT, |seen| {
        seen.iter().any(|seen| matches!(seen, Seen::Received(_)))
    });
    let elapsed = started.elapsed();
    let answers = record.received();
    assert_eq!(answers.len(), 1, "one answer: {seen:?}");
    assert_eq!(answers[0].message_text(), expected, "the probe's digest");
    client.close().expect("the client ends cleanly");
    assert_eq!(record.disconnects(), ["closed locally"]);
    elapsed
}

/// [`round_trip`], asserting it was prompt.
pub fn assert_served_promptly(runtime: Runtime, addr: SocketAddr, tag: &str) -> Duration {
    let elapsed = round_trip(runtime, addr, tag);
    assert!(
        elapsed < PROMPT,
        "{runtime}: a well-behaved client waited {elapsed:?} ({tag}); the bound is {PROMPT:?}"
    );
    elapsed
}

/// A small deterministic generator (xorshift64*), for seeded garbage.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// The tests of a suite attacked on each runtime: for each `module:
/// "runtime name"` of `runtimes`, a module `module` of one test per line
/// `test: scenario(args…);` of `tests`, each calling the suite's
/// `scenario(runtime, args…)` (nothing where [`runtime_named`] has no such
/// runtime); and the test `check`, which fails when `Runtime::ALL` has a
/// runtime that `runtimes` leaves out.
#[macro_export]
macro_rules! per_runtime {
    (
        check: $check:ident;
        runtimes: [$($module:ident: $name:literal),* $(,)?];
        tests: $tests:tt
    ) => {
        #[test]
        fn $check() {
            $crate::hostile::assert_every_runtime_instantiated(&[$($name),*]);
        }

        $( $crate::per_runtime!(@module $module, $name, $tests); )*
    };
    (@module $module:ident, $name:literal, {
        $($test:ident: $scenario:ident($($arg:expr),* $(,)?);)*
    }) => {
        mod $module {
            use super::*;

            $(
                #[test]
                fn $test() {
                    if let Some(runtime) = $crate::hostile::runtime_named($name) {
                        super::$scenario(runtime $(, $arg)*);
                    }
                }
            )*
        }
    };
}
