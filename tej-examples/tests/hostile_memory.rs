//! What a hostile peer can make `tej serve` hold, on every adapter (issue
//! 13): peers that elicit large replies and never read them (over TCP and
//! over TLS), more
//! connections than the server takes, and a peer that drips one frame
//! while another sends a large file at full speed under a frame timeout.
//!
//! Each scenario runs `tej serve --json` as a subprocess, so that the
//! server's own resident memory (`VmHWM` in `/proc/<pid>/status`) is
//! measured apart from the test's, and so that the command-line options
//! (`--max-connections`, `--frame-timeout`, `--min-rate`) are exercised end
//! to end. The attackers are raw loopback sockets. Every wait is bounded;
//! the figures are printed (`--nocapture`) as `hostile_memory: ...` lines.

use tej_test_support::{hostile, per_runtime};

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hostile::{read_frame, read_until_closed};
use hostile::{Rng, WAIT};
use serde_json::Value;
use sha2::{Digest, Sha256};
use socket2::{Domain, Protocol, Socket, Type};
use tej_core::{Assembler, Limits};
use tej_examples::runtime::Runtime;

/// An empty frame: status 0, version 1, no files, no message.
const EMPTY_FRAME: [u8; 18] = {
    let mut frame = [0u8; 18];
    frame[0] = 0x80;
    frame[1] = 1;
    frame
};

/// The memory scenario takes a whole run of `tej serve` at a time, so that
/// the two cores of a small machine are not shared by three attacks.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

// ---------------------------------------------------------------------------
// `tej serve --json` as a subprocess.

/// A running `tej serve --json`: its events (one JSON object per stdout
/// line, parsed on a thread), the tail of its stderr, and a watchdog that
/// samples its resident memory and kills it past [`KILL_AT_MIB`].
struct Served {
    child: Child,
    addr: SocketAddr,
    events: Arc<(Mutex<Vec<Value>>, Condvar)>,
    stderr: Arc<Mutex<Vec<u8>>>,
    watchdog: Option<JoinHandle<()>>,
    stop_watching: Arc<AtomicBool>,
    killed: Arc<AtomicBool>,
    peak_sampled_kib: Arc<AtomicU64>,
}

/// A server past this much resident memory is killed by the watchdog, so
/// that a failing run cannot take the machine's memory with it.
const KILL_AT_MIB: u64 = 2048;

/// The last bytes of stderr kept for failure messages.
const STDERR_TAIL: usize = 16 * 1024;

impl Served {
    fn start<I, S>(runtime: Runtime, args: I) -> Served
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tej"))
            .args(["serve", "--bind", "127.0.0.1:0", "--json", "--runtime"])
            .arg(runtime.name())
            .args(args.into_iter().map(Into::into))
            .env("TEJ_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tej serve starts");
        let pid = child.id();

        let events = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = events.clone();
        std::thread::Builder::new()
            .name("hostile-serve-stdout".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let value = serde_json::from_str(&line)
                        .unwrap_or_else(|_| Value::String(format!("not JSON: {line}")));
                    sink.0.lock().unwrap().push(value);
                    sink.1.notify_all();
                }
            })
            .unwrap();

        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().unwrap();
        let tail = stderr.clone();
        std::thread::Builder::new()
            .name("hostile-serve-stderr".into())
            .spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(read) = pipe.read(&mut buffer) {
                    if read == 0 {
                        break;
                    }
                    let mut tail = tail.lock().unwrap();
                    tail.extend_from_slice(&buffer[..read]);
                    let excess = tail.len().saturating_sub(STDERR_TAIL);
                    tail.drain(..excess);
                }
            })
            .unwrap();

        // The child is reaped only in `drop`, after the watchdog stops: its
        // pid cannot name another process meanwhile.
        let stop_watching = Arc::new(AtomicBool::new(false));
        let killed = Arc::new(AtomicBool::new(false));
        let peak_sampled_kib = Arc::new(AtomicU64::new(0));
        let watchdog = std::thread::Builder::new()
            .name("hostile-serve-watchdog".into())
            .spawn({
                let stop = stop_watching.clone();
                let killed = killed.clone();
                let peak = peak_sampled_kib.clone();
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        let Some(memory) = memory_of(pid) else { break };
                        peak.fetch_max(memory.rss_kib, Ordering::Relaxed);
                        if memory.rss_kib > KILL_AT_MIB * 1024 {
                            killed.store(true, Ordering::Relaxed);
                            let _ = Command::new("kill")
                                .args(["-KILL", &pid.to_string()])
                                .status();
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            })
            .unwrap();

        let mut served = Served {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            events,
            stderr,
            watchdog: Some(watchdog),
            stop_watching,
            killed,
            peak_sampled_kib,
        };
        let deadline = Instant::now() + WAIT;
        let listening = loop {
            if let Ok(events) =
                served.try_wait_for(Duration::from_millis(100), |events| !events.is_empty())
            {
                break events;
            }
            if let Ok(Some(status)) = served.child.try_wait() {
                served.fail(&format!("tej serve exited at once: {status}"));
            }
            if Instant::now() > deadline {
                served.fail("no listening line from tej serve");
            }
        };
        if listening[0]["event"] != "listening" {
            served.fail(&format!(
                "the first line is not `listening`: {}",
                listening[0]
            ));
        }
        served.addr = listening[0]["addr"]
            .as_str()
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| served.fail("no address in the listening line"));
        served
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `done` holds for the events so far, and returns them.
    fn wait_for(&mut self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        match self.try_wait_for(WAIT, done) {
            Ok(events) => events,
            Err(()) => self.fail(&format!("timed out waiting for {what}")),
        }
    }

    /// Waits at most `timeout` until `done` holds for the events so far.
    fn try_wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Result<Vec<Value>, ()> {
        let deadline = Instant::now() + timeout;
        let mut seen = self.events.0.lock().unwrap();
        while !done(&seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            // A server the watchdog killed prints nothing more.
            if left.is_zero() || self.killed() {
                return Err(());
            }
            let tick = left.min(Duration::from_millis(100));
            seen = self.events.1.wait_timeout(seen, tick).unwrap().0;
        }
        Ok(seen.clone())
    }

    fn events(&self) -> Vec<Value> {
        self.events.0.lock().unwrap().clone()
    }

    /// Resident memory now and at its peak, if the server still runs.
    fn memory(&self) -> Option<Memory> {
        memory_of(self.pid())
    }

    fn killed(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }

    fn peak_sampled_kib(&self) -> u64 {
        self.peak_sampled_kib.load(Ordering::Relaxed)
    }

    /// Panics with `message`, the last events and the tail of stderr.
    fn fail(&mut self, message: &str) -> ! {
        let _ = self.child.kill();
        std::thread::sleep(Duration::from_millis(100));
        let events = self.events();
        let shown: Vec<String> = events
            .iter()
            .rev()
            .take(20)
            .rev()
            .map(Value::to_string)
            .collect();
        panic!(
            "{message}\n--- tej serve: the last {} of {} events ---\n{}\n--- stderr (tail) ---\n{}",
            shown.len(),
            events.len(),
            shown.join("\n"),
            String::from_utf8_lossy(&self.stderr.lock().unwrap())
        );
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop_watching.store(true, Ordering::Relaxed);
        if let Some(watchdog) = self.watchdog.take() {
            let _ = watchdog.join();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's resident set now and at its peak, in KiB.
#[derive(Debug, Clone, Copy)]
struct Memory {
    rss_kib: u64,
    hwm_kib: u64,
}

fn memory_of(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    // A zombie has no memory fields left.
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn count(events: &[Value], name: &str) -> usize {
    events.iter().filter(|event| event["event"] == name).count()
}

/// The `disconnected` event of the connection from `peer`, if any yet.
fn disconnected_of(events: &[Value], peer: SocketAddr) -> Option<Value> {
    events
        .iter()
        .find(|event| event["event"] == "disconnected" && event["peer"] == peer.to_string())
        .cloned()
}

// ---------------------------------------------------------------------------
// Raw peers.

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// What the scenario's peers speak to `tej serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    /// TLS with the test certificates (`testdata/tls`).
    Tls,
}

impl Transport {
    /// `tej serve`'s options for this transport.
    fn serve_args(self) -> Vec<OsString> {
        match self {
            Transport::Tcp => Vec::new(),
            Transport::Tls => vec![
                "--tls-cert".into(),
                testdata("server.pem").into(),
                "--tls-key".into(),
                testdata("server.key").into(),
            ],
        }
    }
}

fn testdata(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/tls")
        .join(name)
}

/// A rustls client for the test server, before any byte is sent.
fn tls_client() -> rustls::ClientConnection {
    let config = tej_examples::tls::client_config(Some(&testdata("ca.pem")), None).unwrap();
    let name = tej_examples::tls::server_name("localhost").unwrap();
    rustls::ClientConnection::new(config, name).unwrap()
}

/// A byte stream to the server, plain or TLS.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

fn connect_over(addr: SocketAddr, transport: Transport) -> Box<dyn Stream> {
    let stream = connect(addr);
    match transport {
        Transport::Tcp => Box::new(stream),
        Transport::Tls => Box::new(rustls::StreamOwned::new(tls_client(), stream)),
    }
}

/// Sends one empty frame on `stream` and reads one frame back: the reply,
/// whose message must be `expected`.
fn exchange(stream: &mut dyn Stream, expected: &[u8]) -> io::Result<()> {
    stream.write_all(&EMPTY_FRAME)?;
    let mut assembler = Assembler::new(Limits::default());
    let frame = read_frame(stream, &mut assembler, &mut Vec::new())?;
    assert_eq!(
        frame.message.as_deref(),
        Some(expected),
        "the reply is the server's --reply text"
    );
    assert!(frame.files.is_empty());
    Ok(())
}

/// A well-behaved client: connects, sends one frame, reads the reply whole
/// and closes. Returns how long that took.
fn good_client(served: &mut Served, transport: Transport, expected: &[u8], when: &str) -> Duration {
    let started = Instant::now();
    let mut stream = connect_over(served.addr, transport);
    if let Err(error) = exchange(&mut *stream, expected) {
        served.fail(&format!(
            "a well-behaved client was not served {when}: {error}"
        ));
    }
    started.elapsed()
}

/// The header of a frame with one file `name` of `size` bytes: everything
/// up to the file's data.
fn file_header(name: &str, size: u64) -> Vec<u8> {
    let mut header = vec![0x80, 1];
    header.extend(1u64.to_be_bytes());
    header.extend((name.len() as u16).to_be_bytes());
    header.extend(name.as_bytes());
    header.extend(size.to_be_bytes());
    header
}

// ---------------------------------------------------------------------------
// 1. Peers that elicit replies and never read.

/// Peers attacking at once.
const PEERS: usize = 32;
/// Empty frames each peer tries to send; each asks for a reply.
const FRAMES_PER_PEER: usize = 20_000;
/// The size of `--reply`, the answer to every frame.
const REPLY_LEN: usize = 64 * 1024;
/// A peer's receive buffer: the server's replies have nowhere to go.
const PEER_RECV_BUFFER: usize = 4096;
/// The longest a peer keeps writing...
const WRITE_PHASE: Duration = Duration::from_millis(2500);
/// ...and the longest one write may block before the peer gives up: the
/// server has stopped reading it.
const WRITE_STALL: Duration = Duration::from_secs(1);
/// The most the server may hold resident, at its peak, under the attack.
/// Unbounded, each peer made it hold tens of MiB of replies (the issue
/// measured 1.4 GiB for 32 peers on tokio).
const SERVER_RSS_CEILING_MIB: u64 = 128;

/// `--reply`: 64 KiB of text, numbered lines.
fn reply_text() -> String {
    let mut text = String::with_capacity(REPLY_LEN);
    let mut line = 0;
    while text.len() < REPLY_LEN {
        text.push_str(&format!("reply line {line:06} of a never-read answer\n"));
        line += 1;
    }
    text.truncate(REPLY_LEN);
    text
}

/// One attacker: a small receive buffer, then as many empty frames as the
/// server takes, for at most [`WRITE_PHASE`]. Returns the open connection
/// (never read) and how many bytes it wrote.
fn never_reading_peer(addr: SocketAddr, transport: Transport) -> (NeverRead, usize) {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket.set_recv_buffer_size(PEER_RECV_BUFFER).unwrap();
    socket.connect(&addr.into()).expect("connect");
    socket.set_write_timeout(Some(WRITE_STALL)).unwrap();
    let mut stream: TcpStream = socket.into();
    let mut tls = match transport {
        Transport::Tcp => None,
        Transport::Tls => {
            // The handshake reads; after it, nothing is ever read again.
            stream.set_read_timeout(Some(WAIT)).unwrap();
            let mut conn = tls_client();
            while conn.is_handshaking() {
                conn.complete_io(&mut stream).expect("the TLS handshake");
            }
            Some(conn)
        }
    };
    // A whole number of frames, so that any offset into it is a frame's.
    let chunk: Vec<u8> = EMPTY_FRAME.repeat(1000);
    let total = FRAMES_PER_PEER * EMPTY_FRAME.len();
    let deadline = Instant::now() + WRITE_PHASE;
    let mut written = 0;
    while written < total && Instant::now() < deadline {
        let at = written % chunk.len();
        let end = chunk.len().min(at + (total - written));
        let wrote = match &mut tls {
            None => stream.write(&chunk[at..end]),
            // Encrypt, then write the records without ever reading.
            Some(conn) => conn.writer().write(&chunk[at..end]).and_then(|wrote| {
                while conn.wants_write() {
                    conn.write_tls(&mut stream)?;
                }
                Ok(wrote)
            }),
        };
        match wrote {
            Ok(0) => break,
            Ok(wrote) => written += wrote,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            // Timed out (the server stopped reading) or closed.
            Err(_) => break,
        }
    }
    ((stream, tls), written)
}

/// A never-reading peer's connection, kept open: the socket, and its TLS
/// state when it speaks TLS.
type NeverRead = (TcpStream, Option<rustls::ClientConnection>);

fn never_reading_peers(runtime: Runtime, transport: Transport) {
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let reply = reply_text();
    let mut args = vec![OsString::from("--reply"), reply.clone().into()];
    args.extend(transport.serve_args());
    let mut served = Served::start(runtime, args);
    let addr = served.addr;
    let baseline = served.memory().expect("the server runs");
    let started = Instant::now();
    let peers: Vec<JoinHandle<(NeverRead, usize)>> = (0..PEERS)
        .map(|peer| {
            std::thread::Builder::new()
                .name(format!("hostile-never-reading-{peer}"))
                .spawn(move || never_reading_peer(addr, transport))
                .unwrap()
        })
        .collect();
    let peers: Vec<(NeverRead, usize)> = peers
        .into_iter()
        .map(|peer| peer.join().expect("an attacker failed"))
        .collect();
    let write_phase = started.elapsed();
    let frames_written: usize = peers
        .iter()
        .map(|(_, written)| written / EMPTY_FRAME.len())
        .sum();
    let accepted = served
        .try_wait_for(WAIT, |events| count(events, "connected") >= PEERS)
        .is_ok();
    // Let whatever the server was still doing for the attackers finish.
    std::thread::sleep(Duration::from_millis(300));
    let memory = served.memory();
    let peak_kib = memory
        .map_or(0, |memory| memory.hwm_kib)
        .max(served.peak_sampled_kib());
    let events = served.events();
    eprintln!(
        "hostile_memory: runtime={runtime} transport={transport:?} peers={PEERS} peak_rss_mib={:.0} ({}; VmRSS {:.1} \
         MiB before; {frames_written} frames written in {write_phase:?}, {} connections \
         accepted, {} frames received and answered with {} KiB each)",
        mib(peak_kib),
        match memory {
            Some(memory) => format!(
                "VmHWM {:.1} MiB, VmRSS {:.1} MiB under attack",
                mib(memory.hwm_kib),
                mib(memory.rss_kib)
            ),
            None if served.killed() => format!("killed at {KILL_AT_MIB} MiB"),
            None => "gone".to_string(),
        },
        mib(baseline.rss_kib),
        count(&events, "connected"),
        count(&events, "received"),
        REPLY_LEN / 1024,
    );
    if served.killed() {
        served.fail(&format!(
            "{runtime}: tej serve passed {KILL_AT_MIB} MiB and was killed"
        ));
    }
    if memory.is_none() {
        served.fail("tej serve is gone");
    }
    assert!(
        peak_kib < SERVER_RSS_CEILING_MIB * 1024,
        "{runtime}: {PEERS} peers that never read made tej serve hold {:.1} MiB at its peak; \
         the ceiling is {SERVER_RSS_CEILING_MIB} MiB",
        mib(peak_kib)
    );
    if !accepted {
        served.fail(&format!(
            "{runtime}: only {} of {PEERS} attackers were accepted in {WAIT:?}",
            count(&events, "connected")
        ));
    }

    // The attackers hold their connections, unread: a good client is
    // served meanwhile.
    let among_attackers = good_client(
        &mut served,
        transport,
        reply.as_bytes(),
        "among the attackers",
    );
    eprintln!("hostile_memory: runtime={runtime} transport={transport:?} a good client served in {among_attackers:?} among the attackers");

    // The attackers go; the server notices every one and still serves.
    drop(peers);
    served.wait_for("every attacker's end", |events| {
        count(events, "disconnected") > PEERS
    });
    good_client(
        &mut served,
        transport,
        reply.as_bytes(),
        "after the attackers left",
    );
}

// ---------------------------------------------------------------------------
// 2. The connection cap.

/// `--max-connections` in this scenario.
const CAP: usize = 4;
/// How soon a connection over the cap must be closed, and a freed slot
/// taken again. Generous: either takes milliseconds.
const PROMPTLY: Duration = Duration::from_secs(5);

fn connection_cap(runtime: Runtime) {
    let mut served = Served::start(
        runtime,
        ["--max-connections", &CAP.to_string(), "--reply", "ok"],
    );
    let addr = served.addr;
    let mut held: Vec<TcpStream> = (0..CAP)
        .map(|index| {
            let mut stream = connect(addr);
            exchange(&mut stream, b"ok")
                .unwrap_or_else(|error| panic!("connection {index} under the cap: {error}"));
            stream
        })
        .collect();
    served.wait_for("the connections under the cap", |events| {
        count(events, "connected") == CAP
    });

    // One more: accepted by the kernel, closed at once by the server,
    // without a reply and without a handler.
    let started = Instant::now();
    let mut over = connect(addr);
    let _ = over.write_all(&EMPTY_FRAME);
    let answer = read_until_closed(&mut over);
    let closed_in = started.elapsed();
    assert!(
        answer.is_empty(),
        "{runtime}: the connection over the cap got {} bytes",
        answer.len()
    );
    assert!(
        closed_in < PROMPTLY,
        "{runtime}: the connection over the cap was closed after {closed_in:?}"
    );
    // Those under the cap are untouched.
    for stream in &mut held {
        exchange(stream, b"ok").expect("a connection under the cap is still served");
    }
    let events = served.events();
    assert_eq!(
        count(&events, "connected"),
        CAP,
        "{runtime}: no handler for the connection over the cap"
    );
    assert_eq!(count(&events, "disconnected"), 0);

    // A slot frees: a new connection is served again. The slot is given
    // back as the connection's task ends, which may be just after its
    // `disconnected` line: the first tries may still be turned away.
    let leaving = held.remove(0);
    let left = leaving.local_addr().unwrap();
    drop(leaving);
    served.wait_for("the freed connection's end", |events| {
        disconnected_of(events, left).is_some()
    });
    let freed = Instant::now();
    let mut turned_away = 0;
    let newcomer = loop {
        let mut stream = connect(addr);
        match exchange(&mut stream, b"ok") {
            Ok(()) => break stream,
            Err(_) if freed.elapsed() < PROMPTLY => {
                turned_away += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(error) => served.fail(&format!(
                "{runtime}: no connection served {PROMPTLY:?} after a slot was freed \
                 ({turned_away} turned away): {error}"
            )),
        }
    };
    let served_after = freed.elapsed();
    held.push(newcomer);
    for stream in &mut held {
        exchange(stream, b"ok").expect("every connection under the cap is served");
    }
    // Its `connected` line may come just after its reply.
    served.wait_for("the newcomer's connected line", |events| {
        count(events, "connected") == CAP + 1
    });
    eprintln!(
        "hostile_memory: runtime={runtime} max_connections={CAP}: connection {} closed in \
         {closed_in:?} with no reply; after a slot freed, a new one served in {served_after:?} \
         ({turned_away} turned away first)",
        CAP + 1
    );
}

// ---------------------------------------------------------------------------
// 3. A dripped frame against a fast one, under a frame timeout.

/// `--frame-timeout` and `--min-rate`: a frame must be whole within 1 s
/// plus 1 s per 256 KiB received of it. The fast file below takes longer
/// than 1 s on a debug build (2-4 s here, 13 s on a loaded machine: 5
/// MiB/s), so it stays only by the time its bytes earn; the rate is low
/// enough that a busy machine cannot make it miss.
const FRAME_TIMEOUT_ARGS: [&str; 4] = ["--frame-timeout", "1", "--min-rate", "256K"];
/// The dripping peer's announced file.
const DRIP_FILE: u64 = 1 << 20;
/// It sends this many bytes of it...
const DRIP_BYTES: usize = 16;
/// ...this often: 160 bytes/s, far under the minimum rate.
const DRIP_EVERY: Duration = Duration::from_millis(100);
/// The most the cut may take. The rule cuts it about 1 s after its first
/// byte; this only catches a server that never does.
const CUT_DEADLINE: Duration = Duration::from_secs(10);
/// The file sent at full speed meanwhile.
const FAST_FILE: usize = 64 << 20;
const BLOCK: usize = 1 << 20;

/// The fast file's content: 64 distinct 1 MiB blocks, and its sha256.
fn fast_content() -> &'static (Vec<u8>, String) {
    static CONTENT: OnceLock<(Vec<u8>, String)> = OnceLock::new();
    CONTENT.get_or_init(|| {
        let block = Rng::new(13).bytes(BLOCK);
        let mut hasher = Sha256::new();
        for index in 0..FAST_FILE / BLOCK {
            hasher.update((index as u64).to_be_bytes());
            hasher.update(&block[8..]);
        }
        let sha256 = hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        (block, sha256)
    })
}

/// Announces a 1 MiB file, then drips it until the server closes the
/// connection. Returns our address and how long after the first byte the
/// server cut it.
fn drip(addr: SocketAddr) -> (SocketAddr, Duration, usize) {
    let mut stream = connect(addr);
    let local = stream.local_addr().unwrap();
    stream
        .write_all(&file_header("drip.bin", DRIP_FILE))
        .unwrap();
    let started = Instant::now();
    stream.set_read_timeout(Some(DRIP_EVERY)).unwrap();
    let mut dripped = 0;
    let mut buffer = [0u8; 256];
    loop {
        assert!(
            started.elapsed() < CUT_DEADLINE,
            "a peer dripping {DRIP_BYTES} bytes every {DRIP_EVERY:?} was not cut in \
             {CUT_DEADLINE:?}"
        );
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => panic!("the server sent {read} bytes to the dripping peer"),
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            // Reset: closed.
            Err(_) => break,
        }
        match stream.write(&[0x5a; DRIP_BYTES]) {
            Ok(wrote) => dripped += wrote,
            Err(_) => break,
        }
    }
    (local, started.elapsed(), dripped)
}

/// Sends a frame with the 64 MiB file as fast as the socket takes it, then
/// closes. Returns our address and how long the sending took.
fn send_fast(addr: SocketAddr) -> (SocketAddr, Duration) {
    let (block, _) = fast_content();
    let mut stream = connect(addr);
    let local = stream.local_addr().unwrap();
    let started = Instant::now();
    stream
        .write_all(&file_header("fast.bin", FAST_FILE as u64))
        .unwrap();
    let mut block = block.clone();
    for index in 0..FAST_FILE / BLOCK {
        block[..8].copy_from_slice(&(index as u64).to_be_bytes());
        stream
            .write_all(&block)
            .expect("the fast file is taken whole");
    }
    // No message.
    stream.write_all(&0u64.to_be_bytes()).unwrap();
    let took = started.elapsed();
    stream.shutdown(Shutdown::Write).unwrap();
    let answer = read_until_closed(&mut stream);
    assert!(answer.is_empty(), "no reply was asked for");
    (local, took)
}

fn drip_against_fast(runtime: Runtime) {
    let (_, expected_sha256) = fast_content();
    let mut served = Served::start(runtime, FRAME_TIMEOUT_ARGS);
    let addr = served.addr;
    let dripping = std::thread::Builder::new()
        .name("hostile-drip".into())
        .spawn(move || drip(addr))
        .unwrap();
    served.wait_for("the dripping peer", |events| {
        count(events, "connected") == 1
    });
    let (fast, fast_took) = send_fast(addr);
    let (dripper, cut_after, dripped) = dripping.join().expect("the dripping peer");

    let events = served.wait_for("both connections' ends", |events| {
        disconnected_of(events, dripper).is_some() && disconnected_of(events, fast).is_some()
    });
    let cut = disconnected_of(&events, dripper).unwrap();
    let reason = cut["reason"].as_str().unwrap_or_default().to_string();
    assert!(
        cut["kind"] == "frame_timeout" && reason.starts_with("frame timeout"),
        "{runtime}: the dripping peer's end: {cut}"
    );
    assert!(
        cut_after >= Duration::from_millis(500),
        "{runtime}: the dripping peer was cut after {cut_after:?}, before the frame timeout's \
         base of 1 s could pass"
    );
    let received: Vec<&Value> = events
        .iter()
        .filter(|event| event["event"] == "received")
        .collect();
    assert_eq!(received.len(), 1, "{runtime}: only the fast frame arrives");
    assert_eq!(received[0]["peer"], fast.to_string());
    let file = &received[0]["files"][0];
    assert_eq!(file["name"], "fast.bin");
    assert_eq!(
        file["size"], FAST_FILE as u64,
        "{runtime}: the fast file's size"
    );
    assert_eq!(
        file["sha256"],
        expected_sha256.as_str(),
        "{runtime}: the fast file's sha256"
    );
    assert_eq!(
        disconnected_of(&events, fast).unwrap()["reason"],
        "peer closed the connection",
        "{runtime}: the fast peer's end"
    );
    eprintln!(
        "hostile_memory: runtime={runtime} frame_timeout=1s min_rate=256KiB/s: a peer dripping \
         {DRIP_BYTES} B every {DRIP_EVERY:?} cut after {cut_after:?} ({dripped} bytes of \
         {DRIP_FILE} dripped; \"{reason}\"); {} MiB sent whole in {fast_took:?} meanwhile",
        FAST_FILE >> 20
    );
}

per_runtime! {
    check: every_runtime_is_bounded;
    runtimes: [tokio: "tokio", async_std: "async-std", smol: "smol", mio: "mio"];
    tests: {
        never_reading_peers: never_reading_peers(Transport::Tcp);
        never_reading_peers_over_tls: never_reading_peers(Transport::Tls);
        connection_cap: connection_cap();
        drip_against_fast: drip_against_fast();
    }
}
