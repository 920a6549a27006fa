//! One mio server, 1,000 connections open at once, every frame accounted for.
//!
//! In its own test binary so that the peak RSS it prints is this test's.
//! `cargo test -p tej-mio --test thousand -- --nocapture` shows the figures.

use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Instant;

use tej_mio::{Connection, DisconnectReason, Frame, FrameBuilder, Handler, SessionConfig, Status};
use tej_test_support::{
    mio::Running,
    peer::{pattern, peak_rss_kib, text, wait_until, Peer},
};

const CLIENTS: usize = 1000;
const THREADS: usize = 4;
const ROUNDS: usize = 10;
const FILE_LEN: usize = 512;

#[derive(Default)]
struct Counts {
    connected: AtomicUsize,
    received: AtomicUsize,
    disconnected: AtomicUsize,
}

/// Echoes every frame with "echo: " before its message, counting.
struct Counter(Arc<Counts>);

impl Handler for Counter {
    fn connected(&mut self, _conn: &mut Connection<'_>) {
        self.0.connected.fetch_add(1, Ordering::SeqCst);
    }
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        self.0.received.fetch_add(1, Ordering::SeqCst);
        let mut echo = FrameBuilder::new(frame.status);
        for file in &frame.files {
            echo = echo.file(file.name.clone(), file.data().unwrap().clone());
        }
        let echo = echo.message(format!("echo: {}", text(&frame))).build();
        conn.send(echo).unwrap();
    }
    fn disconnected(&mut self, reason: DisconnectReason) {
        assert!(
            matches!(reason, DisconnectReason::PeerClosed),
            "unexpected end: {reason}"
        );
        self.0.disconnected.fetch_add(1, Ordering::SeqCst);
    }
}

/// A status for client `id`: any but 2, which is a ping and not echoed.
fn status_of(id: usize) -> Status {
    let status = (id % 128) as u8;
    Status::new(if status == 2 { 127 } else { status }).unwrap()
}

/// Makes sure this process may open enough sockets: both ends of every
/// connection live here.
fn ensure_fd_limit() {
    let needed = (2 * CLIENTS + 256) as u64;
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    if soft < needed {
        let raised = rlimit::increase_nofile_limit(needed).unwrap();
        assert!(
            raised >= needed,
            "need {needed} file descriptors, the hard limit allows {hard}"
        );
    }
}

#[test]
fn a_thousand_concurrent_clients() {
    ensure_fd_limit();
    let started = Instant::now();
    let counts = Arc::new(Counts::default());
    let server = Running::start(SessionConfig::default(), {
        let counts = Arc::clone(&counts);
        move || Counter(Arc::clone(&counts))
    });
    let addr = server.addr;
    let echoes = Arc::new(AtomicUsize::new(0));
    // Everyone connected, then everyone exchanges, then everyone closes.
    let connected = Arc::new(Barrier::new(THREADS + 1));
    let go = Arc::new(Barrier::new(THREADS + 1));

    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (connected, go, echoes) =
                (Arc::clone(&connected), Arc::clone(&go), Arc::clone(&echoes));
            std::thread::spawn(move || {
                let ids: Vec<usize> = (t..CLIENTS).step_by(THREADS).collect();
                let mut peers: Vec<Peer> = ids
                    .iter()
                    .map(|_| Peer::with_buffer(TcpStream::connect(addr).unwrap(), 4096))
                    .collect();
                connected.wait();
                go.wait();
                for round in 0..ROUNDS {
                    for (peer, id) in peers.iter_mut().zip(&ids) {
                        let frame = FrameBuilder::new(status_of(*id))
                            .file("f.bin", pattern(FILE_LEN, (id * ROUNDS + round) as u64))
                            .message(format!("c{id}-r{round}"))
                            .build();
                        peer.send(&frame);
                    }
                    for (peer, id) in peers.iter_mut().zip(&ids) {
                        let echo = peer.recv().unwrap().expect("an echo");
                        assert_eq!(text(&echo), format!("echo: c{id}-r{round}"));
                        assert_eq!(echo.status, status_of(*id));
                        assert_eq!(
                            echo.files[0].data().unwrap()[..],
                            pattern(FILE_LEN, (id * ROUNDS + round) as u64)[..]
                        );
                        echoes.fetch_add(1, Ordering::SeqCst);
                    }
                }
                drop(peers);
            })
        })
        .collect();

    connected.wait();
    wait_until("1,000 connections at the server", || {
        counts.connected.load(Ordering::SeqCst) == CLIENTS
    });
    let connect_time = started.elapsed();
    let exchange = Instant::now();
    go.wait();
    for thread in threads {
        thread.join().unwrap();
    }
    let exchange_time = exchange.elapsed();
    wait_until("1,000 disconnects", || {
        counts.disconnected.load(Ordering::SeqCst) == CLIENTS
    });
    server.stop();

    assert_eq!(counts.connected.load(Ordering::SeqCst), CLIENTS);
    assert_eq!(counts.received.load(Ordering::SeqCst), CLIENTS * ROUNDS);
    assert_eq!(echoes.load(Ordering::SeqCst), CLIENTS * ROUNDS);
    assert_eq!(counts.disconnected.load(Ordering::SeqCst), CLIENTS);
    let total = started.elapsed();
    let rss = peak_rss_kib().map_or("unknown".to_string(), |kib| {
        format!("{:.1} MiB", kib as f64 / 1024.0)
    });
    eprintln!(
        "{CLIENTS} concurrent clients x {ROUNDS} round trips ({} frames each way): \
         connect {connect_time:?}, exchange {exchange_time:?}, total {total:?}, \
         peak RSS (VmHWM, whole test process) {rss}",
        CLIENTS * ROUNDS
    );
}
