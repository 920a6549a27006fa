//! The soak's load (`scripts/soak.sh`): mixed traffic against a `tej
//! serve` for a while, then a count of what happened.
//!
//! ```text
//! cargo run -p tej-examples --example soak_load -- \
//!     --server 127.0.0.1:4000 --proxy 127.0.0.1:4100 --seconds 600
//! ```
//!
//! At once, until `--seconds` pass: large files (32 MiB) on fresh
//! connections; a long-lived connection sending bursts of small frames;
//! connection churn (connect, one frame, close); hostile raw peers
//! (garbage, a frame cut short, a huge length, a drip, a peer that never
//! reads); and uploads through the fault proxy (`--proxy`, its faults
//! mixed). The server is expected to answer every frame (`--reply`).
//! `--only KIND` (large, small, churn, hostile, proxied) runs one kind
//! alone; churn alone runs without its pause between connections.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tej_core::{Connection, DisconnectReason, Frame, FrameBuilder, Handler, SessionConfig, Status};
use tej_examples::runtime::{self, Runtime};
use tej_test_support::fault_proxy::Rng;
use tej_test_support::peer::pattern;

/// What a client's connection tells its driving thread.
enum Seen {
    Reply,
    Gone,
}

struct Client(mpsc::Sender<Seen>);

impl Handler for Client {
    fn received(&mut self, _conn: &mut Connection<'_>, _frame: Frame) {
        let _ = self.0.send(Seen::Reply);
    }

    fn disconnected(&mut self, reason: DisconnectReason) {
        let _ = reason;
        let _ = self.0.send(Seen::Gone);
    }
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

struct Load {
    server: SocketAddr,
    proxy: Option<SocketAddr>,
    runtime: Runtime,
    until: Instant,
    stop: AtomicBool,
    /// Between one churn connection and the next, per thread.
    churn_pause: Duration,
    counts: [(&'static str, Counts); 5],
}

const LARGE: usize = 0;
const SMALL: usize = 1;
const CHURN: usize = 2;
const HOSTILE: usize = 3;
const PROXIED: usize = 4;

impl Load {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && Instant::now() < self.until
    }

    fn count(&self, kind: usize, ok: bool) {
        let counts = &self.counts[kind].1;
        if ok { &counts.ok } else { &counts.failed }.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs `attempt` again and again until the time is up, each counted
    /// under `kind`, with `pause` after each.
    fn repeat(&self, kind: usize, pause: Duration, mut attempt: impl FnMut() -> bool) {
        while self.running() {
            let ok = attempt();
            self.count(kind, ok);
            thread::sleep(pause);
        }
    }

    fn config(&self) -> SessionConfig {
        let mut config = SessionConfig::default();
        config.idle_timeout = Some(Duration::from_secs(20));
        config.stall_timeout = Some(Duration::from_secs(20));
        config
    }

    /// Connects, sends `frames`, waits for as many replies; true if all came.
    fn exchange(&self, to: SocketAddr, frames: Vec<Frame>, wait: Duration) -> bool {
        let (tx, rx) = mpsc::channel();
        let Ok(client) = runtime::connect(self.runtime, to, Client(tx), self.config()) else {
            return false;
        };
        let sender = client.sender();
        let count = frames.len();
        let mut ok = true;
        for frame in frames {
            if sender.send_blocking(frame).is_err() {
                ok = false;
                break;
            }
        }
        ok = ok && replies(&rx, count, wait);
        let _ = client.close();
        ok
    }
}

fn replies(rx: &Receiver<Seen>, count: usize, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut got = 0;
    while got < count {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Seen::Reply) => got += 1,
            Ok(Seen::Gone) | Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                return false
            }
        }
    }
    true
}

/// A frame of one file, `name` holding `data`, and `message`.
fn upload(name: &str, data: &bytes::Bytes, message: &'static str) -> Frame {
    FrameBuilder::new(Status::DEFAULT)
        .file(name, data.clone())
        .message(message)
        .build()
}

fn large(load: &Load) {
    let data = bytes::Bytes::from(pattern(32 << 20, 3));
    load.repeat(LARGE, Duration::from_secs(2), || {
        let frame = upload("large.bin", &data, "large");
        load.exchange(load.server, vec![frame], Duration::from_secs(120))
    });
}

fn small(load: &Load) {
    while load.running() {
        let (tx, rx) = mpsc::channel();
        let Ok(client) = runtime::connect(load.runtime, load.server, Client(tx), load.config())
        else {
            load.count(SMALL, false);
            thread::sleep(Duration::from_secs(1));
            continue;
        };
        let sender = client.sender();
        // One connection for a minute: bursts of 100 small frames.
        let until = Instant::now() + Duration::from_secs(60);
        while load.running() && Instant::now() < until {
            let mut ok = true;
            for i in 0..100u32 {
                let frame = FrameBuilder::new(Status::new(1).unwrap())
                    .file(format!("small-{i}.txt"), pattern(1024, u64::from(i)))
                    .message(format!("small {i}"))
                    .build();
                ok &= sender.send_blocking(frame).is_ok();
            }
            ok = ok && replies(&rx, 100, Duration::from_secs(30));
            load.count(SMALL, ok);
            if !ok {
                break;
            }
            thread::sleep(Duration::from_millis(200));
        }
        let _ = client.close();
    }
}

fn churn(load: &Load) {
    load.repeat(CHURN, load.churn_pause, || {
        let frame = Frame::message("churn");
        load.exchange(load.server, vec![frame], Duration::from_secs(20))
    });
}

/// A raw peer doing one of five bad things; true once the server closed it.
fn attack(server: SocketAddr, kind: u64) -> bool {
    let Ok(mut stream) = TcpStream::connect(server) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let frame = FrameBuilder::new(Status::DEFAULT)
        .file("cut.bin", pattern(100_000, 9))
        .build()
        .encode_to_vec()
        .expect("a small frame encodes");
    let sent = match kind {
        // Garbage: no status bit.
        0 => stream.write_all(&[0x00; 64]),
        // A frame cut short, then the end of stream.
        1 => stream
            .write_all(&frame[..frame.len() / 2])
            .and_then(|()| stream.shutdown(Shutdown::Write)),
        // A message length far over the limit.
        2 => {
            let mut header = vec![0x80, 1];
            header.extend_from_slice(&0u64.to_be_bytes());
            header.extend_from_slice(&(1u64 << 40).to_be_bytes());
            stream.write_all(&header)
        }
        // A drip: a byte a second of a frame, for 10 s.
        3 => frame[..10].iter().try_for_each(|byte| {
            thread::sleep(Duration::from_secs(1));
            stream.write_all(&[*byte])
        }),
        // Frames it never reads the answers to, then a wait.
        _ => {
            let small = Frame::message("unread")
                .encode_to_vec()
                .expect("a small frame encodes");
            let sent = (0..2000).try_for_each(|_| stream.write_all(&small));
            thread::sleep(Duration::from_secs(10));
            sent
        }
    };
    let _ = sent;
    // The server ends it: an end of stream or a reset, within its timeouts.
    let mut sink = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error) => return error.kind() != std::io::ErrorKind::WouldBlock,
        }
    }
}

fn hostile(load: &Load) {
    let mut rng = Rng::new(11);
    load.repeat(HOSTILE, Duration::from_millis(200), || {
        attack(load.server, rng.below(5))
    });
}

fn proxied(load: &Load) {
    let Some(proxy) = load.proxy else { return };
    let data = bytes::Bytes::from(pattern(2 << 20, 5));
    // Most faults cut it: "ok" counts the transfers that went through.
    load.repeat(PROXIED, Duration::from_millis(100), || {
        let frame = upload("proxied.bin", &data, "through the proxy");
        load.exchange(proxy, vec![frame], Duration::from_secs(30))
    });
}

/// One kind of load, run on a thread of its own until the time is up.
type Driver = fn(&Load);

fn run() -> Result<(), String> {
    let mut server = None;
    let mut proxy = None;
    let mut seconds = 60;
    let mut runtime = Runtime::Tokio;
    let mut only = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--server" => server = Some(value.parse().map_err(|_| "--server: IP:PORT")?),
            "--proxy" => proxy = Some(value.parse().map_err(|_| "--proxy: IP:PORT")?),
            "--seconds" => seconds = value.parse().map_err(|_| "--seconds: a number")?,
            "--runtime" => runtime = value.parse()?,
            "--only" => only = Some(value),
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    let load = Arc::new(Load {
        server: server.ok_or("--server is required")?,
        proxy,
        runtime,
        until: Instant::now() + Duration::from_secs(seconds),
        stop: AtomicBool::new(false),
        // Churn alone runs flat out, to show a per-connection leak sooner.
        churn_pause: if only.as_deref() == Some("churn") {
            Duration::ZERO
        } else {
            Duration::from_millis(50)
        },
        counts: [
            ("large", Counts::default()),
            ("small bursts", Counts::default()),
            ("churn", Counts::default()),
            ("hostile closed", Counts::default()),
            ("proxied", Counts::default()),
        ],
    });
    let drivers: [(&str, Driver, usize); 5] = [
        ("large", large, 1),
        ("small", small, 1),
        ("churn", churn, 4),
        ("hostile", hostile, 2),
        ("proxied", proxied, 2),
    ];
    if let Some(only) = &only {
        if !drivers.iter().any(|(name, ..)| name == only) {
            return Err("--only: one of large, small, churn, hostile, proxied".into());
        }
    }
    let threads: Vec<_> = drivers
        .iter()
        .filter(|(name, ..)| only.as_deref().is_none_or(|only| only == *name))
        .map(|&(_, driver, count)| (driver, count))
        .flat_map(|(driver, count)| (0..count).map(move |_| driver).collect::<Vec<_>>())
        .map(|driver| {
            let load = load.clone();
            thread::spawn(move || driver(&load))
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    for (name, counts) in &load.counts {
        println!(
            "{name}: {} ok, {} failed",
            counts.ok.load(Ordering::Relaxed),
            counts.failed.load(Ordering::Relaxed)
        );
    }
    Ok(())
}

fn main() {
    if let Err(error) = run() {
        eprintln!("soak_load: {error}");
        std::process::exit(2);
    }
}
