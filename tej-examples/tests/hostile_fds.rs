//! Running out of file descriptors, on every adapter (issue 9): with the
//! process's soft `RLIMIT_NOFILE` lowered and sockets opened until no
//! descriptor is left, the server's accepts fail with EMFILE. It must delay
//! (or refuse) new connections, not exit, not spin, keep serving the
//! connections it has, and serve the waiting and new clients once
//! descriptors are back.
//!
//! In its own test binary because the limit is process-wide, and one
//! runtime at a time (a lock) for the same reason.

use tej_test_support::recorder;
use tej_test_support::{hostile, peer, per_runtime};

use std::fs::File;
use std::io::{self, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hostile::*;
use recorder::{content_digest, Record, Seen};
use rlimit::Resource;
use tej_core::{Assembler, Limits, SessionConfig};
use tej_examples::runtime::Runtime;

/// Linux's "too many open files".
const EMFILE: i32 = 24;
/// Descriptors left free under the lowered limit, for the sockets to take.
const HEADROOM: u64 = 64;
/// How long the server is kept starved.
const STARVED: Duration = Duration::from_millis(600);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Restores the descriptor limit when dropped, even if the test fails.
struct LimitGuard {
    soft: u64,
    hard: u64,
}

impl LimitGuard {
    fn restore(&self) {
        rlimit::setrlimit(Resource::NOFILE, self.soft, self.hard).unwrap();
    }
}

impl Drop for LimitGuard {
    fn drop(&mut self) {
        let _ = rlimit::setrlimit(Resource::NOFILE, self.soft, self.hard);
    }
}

/// The lowest descriptor number free in this process.
fn lowest_free_fd() -> u64 {
    File::open("/dev/null").unwrap().as_raw_fd() as u64
}

fn count_connected(seen: &[Seen]) -> usize {
    seen.iter()
        .filter(|seen| matches!(seen, Seen::Connected))
        .count()
}

/// Sends a probe frame on `stream` and checks the answer.
fn exchange(stream: &mut TcpStream, tag: &str) {
    let probe = probe_frame(tag);
    stream.write_all(&probe.encode_to_vec().unwrap()).unwrap();
    let mut assembler = Assembler::new(Limits::default());
    let answer = read_frame(stream, &mut assembler, &mut Vec::new()).unwrap();
    assert_eq!(
        answer.message.as_deref(),
        Some(content_digest(&probe).as_bytes())
    );
}

fn descriptor_exhaustion(runtime: Runtime) {
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let record = Record::default();
    let server = serve(runtime, SessionConfig::default(), digest_echo(&record));
    let addr = server.addr();
    let mut first = raw_connect(addr);
    exchange(&mut first, "before");

    // Placeholders, freed one at a time below to hand the waiting client
    // exactly one descriptor.
    let spares: Vec<File> = (0..8).map(|_| File::open("/dev/null").unwrap()).collect();
    let (soft, hard) = rlimit::getrlimit(Resource::NOFILE).unwrap();
    let guard = LimitGuard { soft, hard };
    let limit = lowest_free_fd() + HEADROOM;
    let ticks_before = peer::cpu_ticks();
    rlimit::setrlimit(Resource::NOFILE, limit, hard).unwrap();

    // Open sockets until none can be had: the server accepts some of them,
    // with the same descriptors, until its accepts fail too.
    let mut hogs = Vec::new();
    loop {
        match TcpStream::connect(addr) {
            Ok(stream) => hogs.push(stream),
            Err(error) if error.raw_os_error() == Some(EMFILE) => break,
            Err(error) => panic!("connect under the lowered limit: {error}"),
        }
        assert!(
            hogs.len() < 2 * HEADROOM as usize,
            "the limit does not bind"
        );
    }
    // One descriptor back: a client takes it, and the server, which has
    // none, cannot accept that client. (If the server's own retry wins a
    // freed descriptor for a hog still queued, free another.)
    let mut spares = spares.into_iter();
    let mut waiting = loop {
        drop(spares.next().expect("a descriptor for the waiting client"));
        match TcpStream::connect(addr) {
            Ok(stream) => break stream,
            Err(error) if error.raw_os_error() == Some(EMFILE) => continue,
            Err(error) => panic!("connect with a freed descriptor: {error}"),
        }
    };
    let waiting_since = Instant::now();
    let probe = probe_frame("waiting");
    waiting.write_all(&probe.encode_to_vec().unwrap()).unwrap();

    std::thread::sleep(STARVED);
    let accepted_starved = count_connected(&record.snapshot());
    let clients = hogs.len() + 2;
    assert!(
        accepted_starved < clients,
        "{accepted_starved} accepted of {clients}: the server had descriptors after all"
    );
    assert!(
        !closed_by_server(&waiting) && !answered_yet(&waiting),
        "the waiting client was served without a descriptor"
    );
    // Established connections are unaffected.
    exchange(&mut first, "starved");

    guard.restore();
    drop(spares);
    let ticks = peer::cpu_ticks() - ticks_before;
    // A loop retrying accept without pause burns ~60 ticks per 600 ms.
    assert!(
        ticks < 40,
        "{runtime}: {ticks} CPU ticks while starved for {STARVED:?}: the accept loop spins"
    );

    // Delayed, not lost: the waiting client is served now.
    let mut assembler = Assembler::new(Limits::default());
    let answer = read_frame(&mut waiting, &mut assembler, &mut Vec::new()).unwrap();
    let waited = waiting_since.elapsed();
    assert_eq!(
        answer.message.as_deref(),
        Some(content_digest(&probe).as_bytes())
    );
    let hog_count = hogs.len();
    drop(hogs);
    record.wait_until("every client accepted", WAIT, |seen| {
        count_connected(seen) == clients
    });
    let served_after = assert_served_promptly(runtime, addr, "after-exhaustion");
    exchange(&mut first, "after");
    drop((first, waiting));
    record.wait_until("every connection's end", WAIT, |seen| {
        seen.iter()
            .filter(|seen| matches!(seen, Seen::Disconnected(_)))
            .count()
            == clients + 1
    });
    for reason in record.disconnects() {
        assert_eq!(reason, "peer closed the connection");
    }
    assert_no_runtime_panic();
    server.stop();
    eprintln!(
        "[hostile] {runtime} descriptors: soft limit lowered to {limit}; {hog_count} sockets \
         opened until EMFILE; {accepted_starved} of {clients} accepted while starved; the \
         waiting client served {waited:?} after connecting ({STARVED:?} starved); {ticks} CPU \
         ticks meanwhile; a new client served in {served_after:?} afterwards"
    );
}

/// Whether anything has arrived on `stream` (without waiting).
fn answered_yet(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let answered = match stream.peek(&mut byte) {
        Ok(read) => read > 0,
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => false,
        Err(error) => panic!("{error}"),
    };
    stream.set_nonblocking(false).unwrap();
    answered
}

per_runtime! {
    check: every_runtime_is_starved;
    runtimes: [tokio: "tokio", async_std: "async-std", smol: "smol", mio: "mio"];
    tests: {
        descriptor_exhaustion: descriptor_exhaustion();
    }
}
